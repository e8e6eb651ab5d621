"""The OpenAPI 3.1 description of the API: the platform events API and the funnel API (shared/spec/events-api.md),
with the parts other packages contribute.

The kernel's own parts, and those of `channels`, rewards and referrals, are merged in directly. A package the
kernel may not import (`campaigns`) registers its part with the app instead (`register_contribution`, called by
the composition root), and the served description is built per app from those (`openapi_of`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from flask import Flask

from channels.openapi import MESSAGES_PATH, message_schemas, messages_operation
from growth.acquisition.openapi import COSTS_PATH, cost_schemas, costs_operation
from growth.events.rules import (
    CONSENT_CHANNELS,
    FUTURE_TOLERANCE,
    MAX_BODY_BYTES,
    MAX_EMAIL_LENGTH,
    MAX_EVENTS,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_OPENID_LENGTH,
)
from growth.money import MONEY_OR_ZERO_PATTERN, MONEY_PATTERN, RATE_PATTERN
from growth.referrals.openapi import REFERRAL_CODE_PATH, referral_code_operation, referral_code_schemas
from growth.rewards.openapi import REWARDS_PATH, reward_schemas, rewards_operation

# The patterns say exactly what growth.money and growth.events.rules accept (tests hold them to it).
# Not blank and no NUL (PostgreSQL text cannot hold one).
IDENTIFIER_PATTERN = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
NO_NUL_PATTERN = r"^[^\u0000]*$"
# The canonical spellings; the server also tolerates spaces, hyphens, parentheses and a 00 prefix.
PHONE_PATTERN = r"^(?:\+[1-9][0-9]{6,14}|(?:86)?1[3-9][0-9]{9})$"
EMAIL_PATTERN = r"^[^@\u0000]+@[^@\u0000]+$"
TIMESTAMP_PATTERN = r"^[0-9]{1,12}$"

EVENTS_PATH = "/api/v1/events"
FUNNEL_PATH = "/api/v1/funnel"
FUNNEL_STEPS = ("registered", "kyc_verified", "card_bound", "first_deposit", "first_investment",
                "repeat_investment")

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _identifier(description: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": IDENTIFIER_PATTERN,
            "description": description}


def _optional_text(description: str, max_length: int = MAX_ID_LENGTH) -> dict[str, Any]:
    return {"type": ["string", "null"], "maxLength": max_length, "pattern": NO_NUL_PATTERN,
            "description": description + " Optional; null counts as absent."}


def _data(required: list[str], properties: dict[str, Any], description: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "description": description}
    if required:  # OpenAPI 3.0 forbids an empty list here
        schema["required"] = required
    return schema


# type -> (data schema name, data is required, summary)
EVENT_VARIANTS: dict[str, tuple[str, bool, str]] = {
    "user.registered": ("UserRegisteredData", False, "The user registered at the platform."),
    "user.kyc_verified": ("NoData", False, "The user passed identity verification (实名认证)."),
    "user.card_bound": ("NoData", False, "The user bound a bank card."),
    "funds.deposited": ("FundsDepositedData", True, "The user deposited money."),
    "investment.created": ("InvestmentCreatedData", True, "The user invested in a product."),
    "investment.redeemed": ("InvestmentRedeemedData", True, "The user exited an investment before maturity."),
    "investment.matured": ("InvestmentMaturedData", True, "An investment matured; principal and interest returned."),
    "funds.withdrawn": ("FundsWithdrawnData", True, "The user withdrew money."),
    "user.consent_changed": ("ConsentChangedData", True, "The user granted or withdrew marketing consent."),
}


def _variant_name(event_type: str) -> str:
    return "Event_" + event_type.replace(".", "_")


def _event_variant(event_type: str) -> dict[str, Any]:
    data_schema, data_required, summary = EVENT_VARIANTS[event_type]
    required = ["id", "type", "occurred_at", "user"] + (["data"] if data_required else [])
    data = _ref(data_schema) if data_required else {"anyOf": [_ref(data_schema), {"type": "null"}],
                                                    "description": "Optional; missing or null means {}."}
    return {
        "type": "object",
        "title": event_type,
        "description": summary,
        "required": required,
        "properties": {
            "id": _ref("EventId"),
            "type": {"type": "string", "const": event_type},
            "occurred_at": _ref("OccurredAt"),
            "user": _ref("User"),
            "data": data,
        },
    }


def _schemas() -> dict[str, Any]:
    money = {"type": "string", "pattern": MONEY_PATTERN, "example": "10000.00",
             "description": "Yuan as a decimal string, greater than 0, at most 2 decimal places."}
    schemas: dict[str, Any] = {
        "Money": money,
        "MoneyOrZero": {"type": "string", "pattern": MONEY_OR_ZERO_PATTERN, "example": "0.00",
                        "description": "Yuan as a decimal string, 0 or more, at most 2 decimal places."},
        "AnnualRate": {"type": "string", "pattern": RATE_PATTERN, "example": "0.0850",
                       "description": 'Annual rate as a decimal fraction string: "0.0850" is 8.50 %.'},
        "EventId": _identifier("Unique per event at the platform; the idempotency key."),
        "OccurredAt": {
            "type": "string", "format": "date-time", "example": "2026-11-30T10:15:00+08:00",
            "description": ("RFC 3339 with a UTC offset. Any past time is accepted (backfill); more than "
                            f"{int(FUTURE_TOLERANCE.total_seconds() // 60)} minutes in the future is rejected."),
        },
        "User": {
            "type": "object",
            "required": ["id"],
            "description": "The platform user; fields other than id update the investor's profile when present "
                           "(latest occurred_at wins).",
            "properties": {
                "id": _identifier("The platform's user id."),
                "phone": {"type": ["string", "null"], "example": "+8613800138000",
                          "description": "E.164; a mainland mobile without +86 is normalised. Optional."},
                "name": _optional_text("Full name.", MAX_NAME_LENGTH),
                "email": {"type": ["string", "null"], "maxLength": MAX_EMAIL_LENGTH, "pattern": EMAIL_PATTERN,
                          "example": "z@example.com", "description": "Email address (one @). Optional."},
                "wechat_openid": _optional_text("WeChat OpenID.", MAX_OPENID_LENGTH),
            },
        },
        "NoData": {"type": "object", "description": "This type has no data fields; any given are ignored."},
        "UserRegisteredData": _data([], {
            "channel_code": _optional_text("Acquisition channel code."),
            "click_id": _optional_text("Click id from a tracking link."),
            "referral_code": _optional_text("The referrer's referral code."),
            "device_id": _optional_text("Device id."),
            "ip": _optional_text("IP address."),
        }, "Registration attribution; every field optional."),
        "FundsDepositedData": _data(["deposit_id", "amount"], {
            "deposit_id": _identifier("The platform's deposit id."),
            "amount": _ref("Money"),
        }, "A deposit."),
        "Product": {
            "type": "object",
            "required": ["id", "name", "term_days", "annual_rate"],
            "properties": {
                "id": _identifier("Product id."),
                "name": _identifier("Product name."),
                "term_days": {"type": "integer", "minimum": 1, "description": "Term in days, a positive integer."},
                "annual_rate": _ref("AnnualRate"),
            },
        },
        "InvestmentCreatedData": _data(["investment_id", "amount", "product"], {
            "investment_id": _identifier("The platform's investment id."),
            "amount": _ref("Money"),
            "product": _ref("Product"),
            "reward_ids": {"type": ["array", "null"], "items": _identifier("A reward id."),
                           "description": "Rewards the investor applied to this investment. Optional."},
        }, "A new investment."),
        "InvestmentRedeemedData": _data(["investment_id", "amount"], {
            "investment_id": _identifier("The platform's investment id."),
            "amount": _ref("Money"),
        }, "An early exit before maturity."),
        "InvestmentMaturedData": _data(["investment_id", "amount", "interest"], {
            "investment_id": _identifier("The platform's investment id."),
            "amount": {**_ref("Money"), "description": "Principal returned."},
            "interest": _ref("MoneyOrZero"),
        }, "A matured investment."),
        "FundsWithdrawnData": _data(["withdrawal_id", "amount"], {
            "withdrawal_id": _identifier("The platform's withdrawal id."),
            "amount": _ref("Money"),
        }, "A withdrawal."),
        "ConsentChangedData": _data(["channel", "granted"], {
            "channel": {"type": "string", "enum": list(CONSENT_CHANNELS)},
            "granted": {"type": "boolean"},
        }, "Marketing consent for one channel."),
        "Event": {
            "description": "One platform event; `type` selects the shape of `data`.",
            "oneOf": [_ref(_variant_name(t)) for t in EVENT_VARIANTS],
            "discriminator": {"propertyName": "type",
                              "mapping": {t: _REF + _variant_name(t) for t in EVENT_VARIANTS}},
        },
        "EventBatch": {
            "type": "object",
            "required": ["events"],
            "properties": {"events": {"type": "array", "maxItems": MAX_EVENTS, "items": _ref("Event")}},
            "description": f"At most {MAX_EVENTS:,} events and {MAX_BODY_BYTES // (1024 * 1024)} MiB in total.",
        },
        "IngestResult": {
            "type": "object",
            "required": ["accepted", "duplicates", "rejected"],
            "additionalProperties": False,
            "properties": {
                "accepted": {"type": "integer", "minimum": 0, "description": "Events newly stored."},
                "duplicates": {"type": "integer", "minimum": 0,
                               "description": "Valid events whose id was already accepted (nothing changed)."},
                "rejected": {"type": "array", "items": _ref("Rejection")},
            },
        },
        "Rejection": {
            "type": "object",
            "required": ["index", "id", "errors"],
            "additionalProperties": False,
            "properties": {
                "index": {"type": "integer", "minimum": 0, "description": "Position of the event in the batch."},
                "id": {"type": ["string", "null"], "description": "The event's id; null when it has none."},
                "errors": {"type": "array", "minItems": 1, "items": {"type": "string"},
                           "example": ["data.amount: must be greater than 0"],
                           "description": "One message per problem, prefixed with its field path."},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
        },
        "FunnelCounts": {
            "type": "array", "minItems": len(FUNNEL_STEPS), "maxItems": len(FUNNEL_STEPS),
            "items": {"type": "integer", "minimum": 0},
            "description": "Investors of the cohort at each step, in the order of `steps`.",
        },
        "Funnel": {
            "type": "object",
            "required": ["steps", "window_days", "total", "groups"],
            "properties": {
                "steps": {"type": "array", "minItems": len(FUNNEL_STEPS), "maxItems": len(FUNNEL_STEPS),
                          "items": {"type": "string", "enum": list(FUNNEL_STEPS)},
                          "example": list(FUNNEL_STEPS)},
                "window_days": {"type": "integer", "minimum": 1},
                "total": {"type": "object", "required": ["counts"],
                          "properties": {"counts": _ref("FunnelCounts")}},
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["key", "label", "counts"],
                        "properties": {
                            "key": {"type": "string", "description": "Channel code, or ISO week YYYY-Www."},
                            "label": {"type": "string", "description": "Channel name, or the week."},
                            "counts": _ref("FunnelCounts"),
                        },
                    },
                },
            },
        },
    }
    for event_type in EVENT_VARIANTS:
        schemas[_variant_name(event_type)] = _event_variant(event_type)
    return schemas


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


_EVENTS_DESCRIPTION = f"""\
The investment platform tells this system what its users do by POSTing signed events.

**Body**: one event object, or `{{"events": [event, ...]}}` with at most {MAX_EVENTS:,} events and at most
{MAX_BODY_BYTES // (1024 * 1024)} MiB in total.

**Signature** ([Standard Webhooks](https://www.standardwebhooks.com)): `webhook-signature` is
`v1,<base64 HMAC-SHA256 of "{{webhook-id}}.{{webhook-timestamp}}.{{raw body}}">` (a space-separated list is
allowed) keyed with the secret `GROWTH_WEBHOOK_SECRET` (`whsec_<base64>`; several space-separated secrets are
all accepted). A timestamp more than 5 minutes from the server clock, a missing header or a wrong signature is
answered 401 and nothing is stored.

**Semantics**: idempotent by event `id` (an id already accepted counts as a duplicate and changes nothing,
in the same batch, a later one, or concurrently); order-free; an event that fails validation is rejected
alone and the others of the batch are stored; accepted events are durable once the response is sent.
"""


def _events_operation() -> dict[str, Any]:
    return {
        "operationId": "receiveEvents",
        "tags": ["events"],
        "summary": "Receive signed platform events",
        "description": _EVENTS_DESCRIPTION,
        "security": [],
        "parameters": [
            {"name": "webhook-id", "in": "header", "required": True,
             "description": "Unique message id (the platform's delivery id).",
             "schema": {"type": "string", "minLength": 1}},
            {"name": "webhook-timestamp", "in": "header", "required": True,
             "description": "Unix seconds when the message was signed; within 5 minutes of the server clock.",
             "schema": {"type": "string", "pattern": TIMESTAMP_PATTERN}},
            {"name": "webhook-signature", "in": "header", "required": True,
             "description": "Space-separated list of `v1,<base64 signature>`.",
             "schema": {"type": "string", "minLength": 1}},
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [_ref("Event"), _ref("EventBatch")]},
                    "example": {"events": [{
                        "id": "evt_01J9Z0000000000000000000",
                        "type": "investment.created",
                        "occurred_at": "2026-11-30T10:15:00+08:00",
                        "user": {"id": "u_10023", "phone": "+8613800138000", "name": "张三"},
                        "data": {"investment_id": "inv_77", "amount": "10000.00",
                                 "product": {"id": "p30", "name": "30天标", "term_days": 30,
                                             "annual_rate": "0.0850"}},
                    }]},
                }
            },
        },
        "responses": {
            "200": {"description": "The envelope parsed: counts of accepted and duplicate events, and the "
                                   "rejected ones with their errors.",
                    "content": {"application/json": {"schema": _ref("IngestResult")}}},
            "400": _error('Not JSON, or neither an event nor {"events": [...]}.'),
            "401": _error("Signature or timestamp check failed (nothing stored)."),
            "413": _error(f"More than {MAX_EVENTS:,} events or {MAX_BODY_BYTES // (1024 * 1024)} MiB."),
            "415": _error("Content-Type is not application/json."),
        },
    }


def _funnel_operation() -> dict[str, Any]:
    return {
        "operationId": "getFunnel",
        "tags": ["dashboards"],
        "summary": "The standard funnel of a registration cohort",
        "description": (
            "The cohort is the investors whose `registered` date (Asia/Shanghai) lies in [start, end]. An investor "
            "counts at step k when every step 1..k happened within `window_days` days of `registered`. "
            "Needs a staff API token of a role that may view funnels."
        ),
        "security": [{"bearerAuth": []}],
        "parameters": [
            {"name": "start", "in": "query", "required": False, "schema": {"type": "string", "format": "date"},
             "description": "First registration date (YYYY-MM-DD, Asia/Shanghai); default: start of the "
                            "default range; 2000-01-01 at the earliest."},
            {"name": "end", "in": "query", "required": False, "schema": {"type": "string", "format": "date"},
             "description": "Last registration date (YYYY-MM-DD, Asia/Shanghai), inclusive; 2099-12-31 at the "
                            "latest."},
            {"name": "window_days", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 3650, "default": 30}},
            {"name": "group_by", "in": "query", "required": False,
             "schema": {"type": "string", "enum": ["none", "channel", "week", "campaign", "referral"],
                        "default": "none"},
             "description": "`channel`: key is the channel code, label its name; `week`: ISO week YYYY-Www "
                            "(Monday start, Asia/Shanghai); `campaign` (beyond the contract): the first campaign "
                            "the investor entered within the window, key its id (`<id>-holdout` for its held-out "
                            "members, `none` for nobody's), label its name; `referral` (beyond the contract): "
                            "`referred` or `not_referred`."},
        ],
        "responses": {
            "200": {"description": "Counts per step, in total and per group.",
                    "content": {"application/json": {"schema": _ref("Funnel")}}},
            "400": _error("A parameter is malformed (bad date, a date outside 2000-01-01..2099-12-31, start "
                          "after end, window_days out of range, unknown group_by); `field` names it."),
            "401": _error("No or an invalid bearer token."),
            "403": _error("The token's role may not view funnels."),
        },
    }


@dataclass(frozen=True, slots=True)
class Contribution:
    """A package's part of the description: its paths, the schemas they refer to, and its tags."""

    paths: dict[str, dict[str, Any]]
    schemas: dict[str, Any] = field(default_factory=dict)
    tags: tuple[dict[str, str], ...] = ()


def _merge(target: dict[str, Any], part: dict[str, Any], what: str) -> None:
    """Add a contribution's entries; a name taken twice is a programming error, never silently overwritten."""
    taken = target.keys() & part.keys()
    if taken:
        raise ValueError(f"OpenAPI {what} contributed twice: {', '.join(sorted(taken))}")
    target.update(part)


def build_openapi(contributions: Iterable[Contribution] = ()) -> dict[str, Any]:
    """Return the OpenAPI 3.1 description of the kernel's APIs and the given contributions."""
    paths: dict[str, Any] = {
        EVENTS_PATH: {"post": _events_operation()},
        FUNNEL_PATH: {"get": _funnel_operation()},
        MESSAGES_PATH: {"get": messages_operation()},
        REWARDS_PATH: {"get": rewards_operation()},
        REFERRAL_CODE_PATH: {"get": referral_code_operation()},
        COSTS_PATH: {"post": costs_operation()},
    }
    schemas = _schemas() | message_schemas() | reward_schemas() | referral_code_schemas() | cost_schemas()
    tags = [{"name": "events", "description": "Signed platform events"},
            {"name": "dashboards", "description": "Metrics for staff (bearer token)"},
            {"name": "messages", "description": "The message outbox for staff (bearer token)"},
            {"name": "rewards", "description": "The incentive ledger for the platform (bearer token)"},
            {"name": "referrals", "description": "Referral codes for the platform (bearer token)"},
            {"name": "acquisition", "description": "Acquisition costs pushed by ad platforms' exports (bearer token)"}]
    for part in contributions:
        _merge(paths, part.paths, "paths")
        _merge(schemas, part.schemas, "schemas")
        tags += part.tags
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Growth platform API",
            "version": "1.0.0",
            "description": "The integration contract with the investment platform (signed events in) and the "
                           "staff APIs (funnel, messages, rewards, referrals, campaigns).",
        },
        "servers": [{"url": "/"}],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "A staff API token (`growth tokens create EMAIL`)."},
            },
        },
    }


def _downgrade(node: Any) -> Any:
    """Rewrite the 3.1-only schema keywords used above into their 3.0 spelling."""
    if isinstance(node, list):
        return [_downgrade(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _downgrade(value) for key, value in node.items()}
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if "examples" in out and isinstance(out["examples"], list):  # JSON Schema's list; 3.0 has one example
        examples = out.pop("examples")
        if examples:
            out.setdefault("example", examples[0])
    prefix = out.pop("prefixItems", None)
    if isinstance(prefix, list):  # a fixed-length tuple: 3.0 can only say "items of these kinds", with the length
        kinds = [item for n, item in enumerate(prefix) if item not in prefix[:n]]
        out["items"] = kinds[0] if len(kinds) == 1 else {"anyOf": kinds}
    patterns = out.pop("patternProperties", None)
    if isinstance(patterns, dict) and patterns:  # 3.0 cannot constrain map keys: it keeps what the values are
        values = list(patterns.values())
        out.setdefault("additionalProperties", values[0] if len(values) == 1 else {"anyOf": values})
    types = out.get("type")
    if isinstance(types, list):
        rest = [t for t in types if t != "null"]
        out["type"] = rest[0] if len(rest) == 1 else rest
        if "null" in types:
            out["nullable"] = True
    any_of = out.get("anyOf")
    if isinstance(any_of, list) and {"type": "null"} in any_of:
        # anyOf [X, null] -> a nullable X: 3.0 has no null type.
        kept = [s for s in any_of if s != {"type": "null"}]
        out.pop("anyOf")
        out["allOf" if len(kept) == 1 else "anyOf"] = kept
        out["nullable"] = True
    return out


def build_openapi_30(contributions: Iterable[Contribution] = ()) -> dict[str, Any]:
    """Return the same description spelled as OpenAPI 3.0, for the bundled Swagger UI 4 (it cannot read 3.1)."""
    doc = _downgrade(copy.deepcopy(build_openapi(contributions)))
    doc["openapi"] = "3.0.3"
    return doc


_EXTENSION = "growth.openapi"


@dataclass
class _Registry:
    contributors: list[Callable[[], Contribution]] = field(default_factory=list)
    served: dict[str, bytes] = field(default_factory=dict)


def _registry(app: Flask) -> _Registry:
    registry: _Registry = app.extensions.setdefault(_EXTENSION, _Registry())
    return registry


def register_contribution(app: Flask, contributor: Callable[[], Contribution]) -> None:
    """Add a package's part to the app's description (built when first served)."""
    registry = _registry(app)
    registry.contributors.append(contributor)
    registry.served.clear()


def contributions_of(app: Flask) -> list[Contribution]:
    """Return the parts registered with the app, built now."""
    return [contributor() for contributor in _registry(app).contributors]


def openapi_of(app: Flask, version: str = "3.1") -> dict[str, Any]:
    """Return the app's description (the kernel's and every registered part) as OpenAPI 3.1 or 3.0."""
    parts = contributions_of(app)
    return build_openapi_30(parts) if version == "3.0" else build_openapi(parts)


def served_openapi(app: Flask, version: str) -> bytes:
    """Return the app's description as JSON, built once per app and version."""
    registry = _registry(app)
    if version not in registry.served:
        registry.served[version] = orjson.dumps(openapi_of(app, version))
    return registry.served[version]
