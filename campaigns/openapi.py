"""The OpenAPI description of the campaigns API (spec campaigns-api.md §2–§3), registered by the composition root.

The kernel's description (`growth.events.openapi`) may not import `campaigns`, so `growth/app.py` registers
`contribution` with the app. The definition document's schema is the pydantic model's own
(`campaigns.definition.Definition`), so the description cannot drift from what the API accepts; its nested
models are named `Campaign<Model>` beside the other packages' schemas.
"""

from __future__ import annotations

from typing import Any

from campaigns.compliance import CODES as COMPLIANCE_CODES
from campaigns.definition import CAMPAIGN_TYPES, Definition
from campaigns.models import STATUSES
from campaigns.results import PEOPLE_CHANNELS
from channels.models import STATUSES as MESSAGE_STATUSES
from growth.events.openapi import Contribution

CAMPAIGNS_PATH = "/api/v1/campaigns"
CAMPAIGN_PATH = "/api/v1/campaigns/{campaign_id}"
KILL_SWITCH_PATH = "/api/v1/kill-switch"
TAG = "campaigns"
_REF = "#/components/schemas/"
_PREFIX = "Campaign"  # the definition's nested models, e.g. CampaignTrigger, CampaignSmsMessage

# What the model's own validators add to the schema (spec §2), said where a reader of the document looks.
_FIELD_NOTES = {
    "type": "Chooses defaults and the editor's form; the fields below decide behaviour.",
    "class": "`marketing`: consent, quiet hours, caps, opt-out text and the compliance check apply; `service`: "
             "notices about the investor's own account and rewards.",
    "trigger": "Exactly one of `trigger` (an event enters the investor) or `schedule` (runs select an audience). "
               "Beyond spec §2's list, `crm_call` enters the investor an agent called when the call's outcome is "
               "one of `conditions.outcomes` (required there, and only there): `interested`, `not_interested`, "
               "`no_answer`, `refused`, `invalid_number`, `do_not_contact`, `invested`; once per call.",
    "schedule": "Exactly one of `trigger` or `schedule`. `cron` (Asia/Shanghai) needs `window.end`.",
    "audience": "Conditions that must all hold; omitted: everyone. Unknown fields or operators are a 422.",
    "window": "Optional: without it a trigger campaign is active from its approval until paused, cancelled or out "
              "of budget.",
    "entry": '`{"once": true}` (default) or `{"every_days": N}`: how often one investor may enter.',
    "holdout_percent": "Members whose stable hash of (campaign, investor) falls in the holdout get nothing.",
    "rewards": "The reward list one member gets, as ONE grant of the budget. For `referral` campaigns each reward "
               "says `to`: `referrer` or `referee`; other types may not.",
    "budget": "A member whose grant would break a limit gets no reward and no message (`budget_exhausted`).",
    "messages": "One per channel. A message with `fallback: true` is tried only when the one before it cannot "
                "reach the investor; the others are all sent.",
    "crm_task": "Beyond spec §2, optional: `{\"note\": \"...\", \"due_hours\": 24}` makes one CRM follow-up task "
                "(reason `campaign`, in the agents' pool, due `due_hours` — 1 to 720, default 24 — after fulfilment) "
                "for each member who got what the campaign gives: not the holdout, not those out of budget, never "
                "an investor who asked not to be contacted; once per member.",
}


# Spec §2's example document (its wording compliant: a marketing SMS with the risk warning and an opt-out).
EXAMPLE = {
    "name": "新手礼包 12月", "type": "new_user", "class": "marketing",
    "trigger": {"on": "registered"},
    "audience": {"all": [{"field": "channel", "op": "in", "value": ["baidu_sem", "wechat_ad"]}]},
    "window": {"start": "2026-12-01T00:00:00+08:00", "end": "2026-12-31T23:59:59+08:00"},
    "entry": {"once": True}, "holdout_percent": 10,
    "rewards": [{"kind": "voucher", "amount": "50.00", "min_investment": "5000.00", "min_term_days": 30,
                 "valid_days": 30}],
    "budget": {"max_grants": 1000, "max_amount": "50000.00", "per_investor": 1},
    "messages": [{"channel": "sms", "template_code": "SMS_2026120101",
                  "params": {"name": "{{ investor.name }}", "amount": "{{ reward.amount }}"},
                  "text": "{{ investor.name }}您好，{{ reward.amount }}元投资红包已到账，30天内有效。"
                          "投资有风险，理财需谨慎。回T退订"}],
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def definition_schemas() -> dict[str, Any]:
    """Return the definition document's schema (`CampaignDefinition`) and its nested models' schemas."""
    schema = Definition.model_json_schema(by_alias=True, ref_template=_REF + _PREFIX + "{model}")
    nested = schema.pop("$defs", {})
    schema["title"] = "Campaign definition"
    schema["description"] = ("A campaign as spec §2 defines it: money as yuan strings, rates as fraction strings, "
                             "times RFC 3339 with an offset. Unknown fields are refused (422), at every level.")
    for name, note in _FIELD_NOTES.items():
        schema["properties"][name]["description"] = note
    return {_PREFIX + "Definition": schema} | {_PREFIX + name: part for name, part in nested.items()}


def _time(description: str) -> dict[str, Any]:
    return {"type": ["string", "null"], "format": "date-time", "description": description}


def _counts(keys: tuple[str, ...], description: str) -> dict[str, Any]:
    return {"type": "object", "description": description, "required": list(keys),
            "properties": {k: {"type": "integer", "minimum": 0} for k in keys}}


def _schemas(definition: dict[str, Any]) -> dict[str, Any]:
    money = _ref("MoneyOrZero")
    side = {"type": "object", "required": ["investors", "amount"],
            "properties": {"investors": {"type": "integer", "minimum": 0}, "amount": money}}
    return {
        "CampaignProblem": {
            "type": "object", "required": ["path", "code", "message"],
            "description": "A compliance problem of the wording (submit and approve refuse a campaign with any).",
            "properties": {"path": {"type": "string", "example": "messages[0].text"},
                           "code": {"type": "string", "enum": list(COMPLIANCE_CODES)},
                           "message": {"type": "string"}},
        },
        "Campaign": {
            "type": "object",
            "description": "The definition document (see CampaignDefinition) plus the campaign's state; `compliance` "
                           "lists the wording problems a draft may hold.",
            "required": [*definition["required"], "id", "status", "created_by", "approved_by", "compliance"],
            "properties": {
                **definition["properties"],
                "id": {"type": "integer", "minimum": 1},
                "status": {"type": "string", "enum": list(STATUSES)},
                "version": {"type": "integer", "minimum": 1,
                            "description": "Grows with every change; two people acting at once cannot both win."},
                "created_by": {"type": ["string", "null"], "description": "The author's e-mail."},
                "approved_by": {"type": ["string", "null"], "description": "The approver's e-mail (never the "
                                                                           "author: four eyes)."},
                "submitted_at": _time("When it was submitted for approval."),
                "approved_at": _time("When it was approved."),
                "rejection_reason": {"type": ["string", "null"]},
                "created_at": _time("When it was created."),
                "updated_at": _time("When it last changed."),
                "compliance": {"type": "array", "items": _ref("CampaignProblem")},
            },
        },
        "CampaignPage": {
            "type": "object", "required": ["campaigns", "total", "limit", "offset"],
            "properties": {"campaigns": {"type": "array", "items": _ref("Campaign")},
                           "total": {"type": "integer", "minimum": 0, "description": "Campaigns matching the "
                                                                                      "filters."},
                           "limit": {"type": "integer", "minimum": 1}, "offset": {"type": "integer", "minimum": 0}},
        },
        "CampaignRejection": {
            "type": "object", "required": ["reason"],
            "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 1000}},
        },
        "CampaignPreview": {
            "type": "object",
            "required": ["audience", "holdout", "messages", "sms_parts", "estimated_cost", "compliance", "samples"],
            "properties": {
                "audience": {"type": "integer", "minimum": 0,
                             "description": "Every member it would have now, before holdout and consent."},
                "holdout": {"type": "integer", "minimum": 0},
                "messages": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0},
                             "description": "Per channel, the messages that would be sent (consent, addresses "
                                            "and fallback chains applied).", "example": {"sms": 120}},
                "sms_parts": {"type": "integer", "minimum": 0, "description": "Segments of one SMS."},
                "estimated_cost": {**money, "description": "Within the budget, if every reward is used."},
                "compliance": {"type": "array", "items": _ref("CampaignProblem")},
                "samples": {"type": "array", "items": {"type": "object"},
                            "description": "Each message rendered for a made-up investor."},
                "budget": {"type": "object", "properties": {
                    "max_grants": {"type": ["integer", "null"]}, "per_investor": {"type": ["integer", "null"]},
                    "max_amount": {"anyOf": [_ref("Money"), {"type": "null"}]},
                    "estimated_grants": {"type": "integer", "minimum": 0}}},
                "crm_tasks": {"type": "integer", "minimum": 0,
                              "description": "With a `crm_task`: treated members a CRM follow-up task would be made "
                                             "for (not those who asked not to be contacted)."},
                "recent_calls": {"type": "integer", "minimum": 0,
                                 "description": "With a `crm_call` trigger: calls of the last 7 days it would have "
                                                "taken (its outcomes, its audience)."},
            },
        },
        "CampaignResults": {
            "type": "object",
            "required": ["members", "holdout", "treated", "granted", "budget_exhausted", "messages", "rewards",
                         "invested"],
            "description": "members = holdout + treated; `granted` counts the members who got their rewards, "
                           "`rewards` every reward granted by its current state; `invested` the members who "
                           "invested after entering, per side (treated against holdout is the lift).",
            "properties": {
                "members": {"type": "integer", "minimum": 0},
                "holdout": {"type": "integer", "minimum": 0},
                "treated": {"type": "integer", "minimum": 0},
                "granted": {"type": "integer", "minimum": 0},
                "budget_exhausted": {"type": "integer", "minimum": 0},
                "messages": {"type": "object", "required": list(PEOPLE_CHANNELS),
                             "properties": {c: _counts(MESSAGE_STATUSES, "Messages by status.")
                                            for c in PEOPLE_CHANNELS}},
                "rewards": {"type": "object", "required": ["granted", "redeemed", "expired", "revoked", "cost"],
                            "properties": {**{k: {"type": "integer", "minimum": 0} for k in (
                                "granted", "redeemed", "expired", "revoked", "paid", "clawed_back")},
                                "cost": {**money, "description": "What the rewards have cost so far."}}},
                "invested": {"type": "object", "required": ["treated", "holdout"],
                             "properties": {"treated": side, "holdout": side}},
            },
        },
        "KillSwitch": {"type": "object", "required": ["on"], "properties": {"on": {"type": "boolean"}}},
        "KillSwitchResult": {
            "type": "object", "required": ["on", "paused_campaigns", "messages"],
            "properties": {"on": {"type": "boolean"},
                           "paused_campaigns": {"type": "array", "items": {"type": "integer"},
                                                "description": "The campaigns it paused."},
                           "messages": {"type": "integer", "minimum": 0,
                                        "description": "Marketing messages it held (on) or released (off)."}},
        },
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("ApiError"), "The body is not JSON (`errors[0].code` is `malformed`)."),
    "401": _json(_ref("Error"), "No or an invalid bearer token."),
    "403": _json(_ref("Error"), "The token's role may not do this."),
    "404": _json(_ref("Error"), "No such campaign."),
    "409": _json(_ref("Error"), "The campaign's status does not allow this, or someone changed it meanwhile."),
    "413": _json(_ref("Error"), "The body is too large."),
    "422": _json(_ref("ApiError"), "Valid JSON that breaks a rule: every problem under `errors`, each with its "
                                   "`path`, a stable `code` and a `message`."),
}
_ID = {"name": "campaign_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}


def _operation(operation_id: str, summary: str, who: str, ok: tuple[str, dict[str, Any], str], errors: str, *,
               body: dict[str, Any] | None = None, by_id: bool = True, description: str = "",
               parameters: list[dict[str, Any]] | None = None, overrides: dict[str, str] | None = None,
               ) -> dict[str, Any]:
    status, schema, said = ok
    responses = {status: _json(schema, said)}
    for code in ("401", "403", *errors.split()):
        responses[code] = _ERRORS[code]
    for code, text in (overrides or {}).items():
        responses[code] = {**responses[code], "description": text}
    op: dict[str, Any] = {
        "operationId": operation_id, "tags": [TAG], "summary": summary,
        "description": (description + " " if description else "") + f"Who: {who}.",
        "security": [{"bearerAuth": []}],
        "parameters": ([_ID] if by_id else []) + (parameters or []),
        "responses": responses,
    }
    if body is not None:
        media: dict[str, Any] = {"schema": body}
        if body == _ref(_PREFIX + "Definition"):
            media["example"] = EXAMPLE
        op["requestBody"] = {"required": True, "content": {"application/json": media}}
    return op


def _step(action: str, summary: str, who: str, description: str, errors: str = "404 409",
          **kw: Any) -> dict[str, Any]:
    return _operation(f"{action}Campaign", summary, who, ("200", _ref("Campaign"), "The campaign after the step."),
                      errors, description=description, **kw)


def _paths() -> dict[str, Any]:
    marketer, controller = "marketer, admin", "marketer, approver, admin"
    listing = [
        {"name": "status", "in": "query", "required": False, "schema": {"type": "string", "enum": list(STATUSES)}},
        {"name": "type", "in": "query", "required": False,
         "schema": {"type": "string", "enum": list(CAMPAIGN_TYPES)}},
        {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
        {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0, "default": 0}},
    ]
    edited = "Create and replace refuse only what breaks the schema; a draft may hold compliance problems."
    return {
        CAMPAIGNS_PATH: {
            "post": _operation("createCampaign", "Create a draft campaign", marketer,
                               ("201", _ref("Campaign"), "The draft, with its `id` and `status`."), "400 413 422",
                               body=_ref("CampaignDefinition"), by_id=False, description=edited),
            "get": _operation("listCampaigns", "The campaigns, newest first", "staff",
                              ("200", _ref("CampaignPage"), "A page of campaigns."), "422", by_id=False,
                              parameters=listing, overrides={"422": "An unknown status or type, or a limit or "
                                                                    "offset out of range."}),
        },
        CAMPAIGN_PATH: {
            "get": _operation("getCampaign", "A campaign", "staff", ("200", _ref("Campaign"), "The campaign."), "404"),
            "put": _operation("replaceCampaign", "Replace a campaign's definition", marketer,
                              ("200", _ref("Campaign"), "The campaign as replaced."), "400 404 409 413 422",
                              body=_ref("CampaignDefinition"),
                              description=edited + " Changing anything but the name of a campaign that is not a "
                                                   "draft returns it to draft (it must be approved again).",
                              overrides={"409": "A finished or cancelled campaign cannot change, or someone "
                                                "changed it meanwhile."}),
        },
        CAMPAIGN_PATH + "/submit": {"post": _step(
            "submit", "Submit a draft for approval", marketer, "draft → pending_approval.", "404 409 422",
            overrides={"422": "The wording breaks compliance rules (every problem listed)."})},
        CAMPAIGN_PATH + "/approve": {"post": _step(
            "approve", "Approve a campaign", "approver, admin — never the campaign's author",
            "pending_approval → active (a trigger campaign) or scheduled.", "404 409 422",
            overrides={"403": "The role may not approve, or the caller is the campaign's author (four eyes).",
                       "422": "The wording breaks compliance rules (every problem listed)."})},
        CAMPAIGN_PATH + "/reject": {"post": _step(
            "reject", "Reject a campaign back to draft", "approver, admin", "pending_approval → draft, with the "
            "reason.", "400 404 409 422", body=_ref("CampaignRejection"),
            overrides={"422": "The reason is missing or too long."})},
        CAMPAIGN_PATH + "/pause": {"post": _step(
            "pause", "Pause a campaign", controller, "active, scheduled or running → paused.")},
        CAMPAIGN_PATH + "/resume": {"post": _step(
            "resume", "Resume a paused campaign", controller, "paused → the status it was paused from.")},
        CAMPAIGN_PATH + "/cancel": {"post": _step(
            "cancel", "Cancel a campaign", controller, "any status but finished → cancelled; its members waiting "
            "for rewards or messages get nothing.")},
        CAMPAIGN_PATH + "/preview": {"post": _operation(
            "previewCampaign", "What the campaign would do if it ran now", "marketer, approver, admin",
            ("200", _ref("CampaignPreview"), "Audience, holdout, messages per channel, SMS length, cost estimate, "
                                             "compliance problems and rendered samples."), "404")},
        CAMPAIGN_PATH + "/results": {"get": _operation(
            "getCampaignResults", "A campaign's results", "staff",
            ("200", _ref("CampaignResults"), "Members, grants, messages, rewards and investments after entry."),
            "404")},
        KILL_SWITCH_PATH: {"post": _operation(
            "killSwitch", "Stop or release all marketing at once", "approver, admin",
            ("200", _ref("KillSwitchResult"), "What it paused, held or released."), "400 422", by_id=False,
            body=_ref("KillSwitch"),
            description='`{"on": true}` pauses every active, scheduled or running marketing campaign and holds every '
                        'queued or deferred marketing message; `{"on": false}` releases the held messages (the '
                        "campaigns stay paused).",
            overrides={"422": 'The body is not {"on": true} or {"on": false}.'})},
    }


def contribution() -> Contribution:
    """Return the campaigns API's part of the description."""
    document = definition_schemas()
    return Contribution(
        paths=_paths(),
        schemas=document | _schemas(document[_PREFIX + "Definition"]),
        tags=({"name": TAG, "description": "Campaigns: definition, life cycle with four-eyes approval, preview, "
                                           "results and the kill switch (bearer token)"},),
    )
