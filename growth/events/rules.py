"""Pure per-event validation for the platform events API (shared/spec/events-api.md)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from flask_babel import lazy_gettext as _l

from growth.crypto import Keyring
from growth.investors.rules import PhoneFormatError, normalize_phone
from growth.money import MoneyFormatError, parse_rate, parse_yuan

# The one list of event types the platform may send, with the labels every page shows for them.
EVENT_TYPE_LABELS = {
    "user.registered": _l("注册"),
    "user.kyc_verified": _l("实名认证"),
    "user.card_bound": _l("绑卡"),
    "funds.deposited": _l("充值"),
    "investment.created": _l("投资"),
    "investment.redeemed": _l("提前赎回"),
    "investment.matured": _l("到期回款"),
    "funds.withdrawn": _l("提现"),
    "user.consent_changed": _l("营销授权变更"),
}
EVENT_TYPES: frozenset[str] = frozenset(EVENT_TYPE_LABELS)
MAX_EVENTS = 5000
MAX_BODY_BYTES = 5 * 1024 * 1024
FUTURE_TOLERANCE = timedelta(minutes=5)

MAX_ID_LENGTH = 200
MAX_NAME_LENGTH = 100
MAX_EMAIL_LENGTH = 254
MAX_OPENID_LENGTH = 128
CONSENT_CHANNELS = ("sms", "email", "wechat")

# Types whose data fields are all optional: a missing or null "data" means {}.
_DATA_OPTIONAL = frozenset({"user.kyc_verified", "user.card_bound", "user.registered"})

# RFC 3339 date-time (section 5.6). fromisoformat alone is too lenient: it also takes dates
# without a time, "10:15" without seconds, basic "20261130T1015" and week dates.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_NAIVE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?")
_ZERO_MONEY = re.compile(r"0(?:\.0{1,2})?")
_MONEY_FORMAT = 'must be a decimal string such as "1000.00"'
_RATE_FORMAT = 'must be a decimal fraction string such as "0.0850"'
# PostgreSQL text cannot hold NUL; refusing it here keeps the log and every projection of it storable.
_NUL = "must not contain the NUL character (\\u0000)"
# A list field reports at most this many bad items, so a hostile body cannot blow up the response.
_MAX_ITEM_ERRORS = 10
# Nesting deeper than this rejects the event (a spec event is 3 levels deep; the JSON serialiser stops at 255).
MAX_DEPTH = 32

# The fields the spec defines; anything else a platform sends is dropped before the event is stored,
# so personal data the contract does not ask for (an ID number, a bank card) never reaches the database.
ENVELOPE_FIELDS = ("id", "type", "occurred_at", "user", "data")
USER_FIELDS = ("id", "phone", "name", "email", "wechat_openid")
PRODUCT_FIELDS = ("id", "name", "term_days", "annual_rate")
DATA_FIELDS: dict[str, tuple[str, ...]] = {
    "user.registered": ("channel_code", "click_id", "referral_code", "device_id", "ip"),
    "user.kyc_verified": (),
    "user.card_bound": (),
    "funds.deposited": ("deposit_id", "amount"),
    "investment.created": ("investment_id", "amount", "product", "reward_ids"),
    "investment.redeemed": ("investment_id", "amount"),
    "investment.matured": ("investment_id", "amount", "interest"),
    "funds.withdrawn": ("withdrawal_id", "amount"),
    "user.consent_changed": ("channel", "granted"),
}

# A stored event's user.phone/name/email are encrypted together (growth.crypto) into one `user["$sealed"]` token:
# the log holds no contact data in the clear. `open_payload` gives the event back as it was received.
SEALED_USER_FIELDS = ("phone", "name", "email")
SEALED = "$sealed"
SEALED_PURPOSE = "platform_events.user"


def seal_payload(payload: dict[str, Any], ring: Keyring) -> dict[str, Any]:
    """Return the event with its user's contact fields sealed into `user["$sealed"]` (the same object if none)."""
    user = payload.get("user")
    if not isinstance(user, dict) or not any(f in user for f in SEALED_USER_FIELDS):
        return payload
    contact = {f: user[f] for f in SEALED_USER_FIELDS if f in user}
    rest = {k: v for k, v in user.items() if k not in SEALED_USER_FIELDS}
    rest[SEALED] = ring.seal(orjson.dumps(contact).decode(), SEALED_PURPOSE)
    return {**payload, "user": rest}


def open_payload(payload: dict[str, Any], ring: Keyring) -> dict[str, Any]:
    """Return a stored event with its user's contact fields opened (the same object if none were sealed)."""
    user = payload.get("user")
    if not isinstance(user, dict) or SEALED not in user:
        return payload
    rest = {k: v for k, v in user.items() if k != SEALED}
    return {**payload, "user": {**rest, **orjson.loads(ring.open(user[SEALED], SEALED_PURPOSE))}}


def load_payload(text: str | bytes, ring: Keyring) -> dict[str, Any]:
    """Return a stored event as received: parsed, its contact fields opened."""
    return open_payload(orjson.loads(text), ring)


def dump_payload(payload: dict[str, Any], ring: Keyring) -> str:
    """Return an event as it is stored: its contact fields sealed, as JSON text."""
    return orjson.dumps(seal_payload(payload, ring)).decode()


@dataclass(slots=True, frozen=True)
class ValidEvent:
    """An event that passed validation, ready to be stored."""

    event_id: str
    type: str
    occurred_at: datetime
    user_id: str
    payload: dict


def split_envelope(doc: object) -> list[object] | None:
    """Return the event objects of a parsed body, or None when it is neither an event nor an envelope."""
    if not isinstance(doc, dict):
        return None
    if "events" in doc:
        events = doc["events"]
        return events if isinstance(events, list) else None
    return [doc]


def validate_event(obj: object, now: datetime) -> ValidEvent | list[str]:
    """Return a ValidEvent, or the list of error strings for this event; `now` must be aware."""
    if not isinstance(obj, dict):
        return ["event: must be an object"]
    errors: list[str] = []
    too_deep = _too_deep(obj)
    if too_deep is not None:
        errors.append(f"{too_deep}: nested more than {MAX_DEPTH} levels deep")
    event_id = _text(obj.get("id"), "id", MAX_ID_LENGTH, errors)

    event_type = obj.get("type")
    known_type: str | None = None
    if event_type is None:
        errors.append("type: required")
    elif not isinstance(event_type, str):
        errors.append("type: must be a string")
    elif event_type in _DATA_CHECKS:
        known_type = event_type
    else:
        errors.append(f"type: unknown event type {_clip(event_type)!r}")

    occurred_at = _occurred_at(obj.get("occurred_at"), now, errors)
    user_id = _user(obj.get("user"), errors)

    # Data of an unknown type cannot be judged; the type error already rejects the event.
    if known_type is not None:
        data = obj.get("data")
        if data is None:
            if known_type not in _DATA_OPTIONAL:
                errors.append("data: required")
        elif not isinstance(data, dict):
            errors.append("data: must be an object")
        else:
            _DATA_CHECKS[known_type](data, errors)

    if errors or event_id is None or known_type is None or occurred_at is None or user_id is None:
        return errors
    return ValidEvent(event_id, known_type, occurred_at, user_id, spec_fields(obj, known_type))


_ENVELOPE_KEYS = frozenset(ENVELOPE_FIELDS)
_USER_KEYS = frozenset(USER_FIELDS)
_PRODUCT_KEYS = frozenset(PRODUCT_FIELDS)
_DATA_KEYS = {event_type: frozenset(fields) for event_type, fields in DATA_FIELDS.items()}


def _only_spec_fields(obj: dict, event_type: str) -> bool:
    """Tell whether a valid event already holds nothing but the spec's fields (the usual case)."""
    data = obj.get("data")
    product = data.get("product") if isinstance(data, dict) else None
    return (obj.keys() <= _ENVELOPE_KEYS and obj["user"].keys() <= _USER_KEYS
            and (not isinstance(data, dict) or data.keys() <= _DATA_KEYS[event_type])
            and (not isinstance(product, dict) or product.keys() <= _PRODUCT_KEYS))


def spec_fields(obj: dict, event_type: str) -> dict:
    """Return a valid event with only the fields the spec defines (top level, user, data, product)."""
    if _only_spec_fields(obj, event_type):  # nothing to drop: no copy
        return obj
    kept = {key: obj[key] for key in ENVELOPE_FIELDS if key in obj}
    kept["user"] = {key: value for key, value in obj["user"].items() if key in USER_FIELDS}
    data = obj.get("data")
    if isinstance(data, dict):
        fields = DATA_FIELDS[event_type]
        kept["data"] = {key: value for key, value in data.items() if key in fields}
        product = data.get("product")
        if "product" in fields and isinstance(product, dict):
            kept["data"]["product"] = {key: value for key, value in product.items() if key in PRODUCT_FIELDS}
    return kept


def _too_deep(obj: dict) -> str | None:
    """Return the path (its first two steps) of a value nested deeper than MAX_DEPTH, or None.

    Iterative, so a hostile nesting cannot exhaust Python's stack; only containers are visited.
    """
    # JSON gives exactly dict and list; `type(...) is` is several times cheaper than isinstance on a union,
    # and this runs for every event the API takes.
    stack: list[tuple[Any, int, str]] = [(obj, 1, "")]
    pop, push = stack.pop, stack.append
    while stack:
        value, depth, path = pop()
        if depth > MAX_DEPTH:
            return path
        items: Iterable[tuple[object, object]] = value.items() if type(value) is dict else enumerate(value)
        for key, child in items:
            kind = type(child)
            if kind is dict or kind is list:
                if depth == 1:
                    step = _clip(str(key))
                elif depth == 2:
                    step = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{_clip(str(key))}"
                else:
                    step = path
                push((child, depth + 1, step))
    return None


# --- envelope fields -------------------------------------------------------------------------


def _occurred_at(value: object, now: datetime, errors: list[str]) -> datetime | None:
    if value is None:
        errors.append("occurred_at: required")
        return None
    if not isinstance(value, str):
        errors.append("occurred_at: must be an RFC 3339 string such as 2026-11-30T10:15:00+08:00")
        return None
    if _RFC3339.fullmatch(value) is None:
        if _NAIVE.fullmatch(value) is not None:
            errors.append("occurred_at: must include a UTC offset such as +08:00 or Z")
        else:
            errors.append("occurred_at: must be an RFC 3339 string such as 2026-11-30T10:15:00+08:00")
        return None
    text = value.upper()  # fromisoformat rejects the lower-case "t"/"z" that RFC 3339 allows
    if text[17:19] == "60":
        # Python cannot hold a leap second; RFC 3339 allows it, so keep the last representable second.
        text = text[:17] + "59.999999" + text[19:].lstrip(".0123456789")
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:  # the regex demands an offset; stay safe if it ever changes
            errors.append("occurred_at: must include a UTC offset such as +08:00 or Z")
            return None
        occurred = parsed.astimezone(UTC)
    except ValueError:
        errors.append("occurred_at: not a valid date and time")
        return None
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 has no UTC equivalent
        errors.append("occurred_at: out of range")
        return None
    if occurred > now + FUTURE_TOLERANCE:
        errors.append("occurred_at: more than 5 minutes in the future")
        return None
    return occurred


def _user(user: object, errors: list[str]) -> str | None:
    if user is None:
        errors.append("user: required")
        return None
    if not isinstance(user, dict):
        errors.append("user: must be an object")
        return None
    user_id = _text(user.get("id"), "user.id", MAX_ID_LENGTH, errors)

    phone = user.get("phone")
    if phone is not None:
        if not isinstance(phone, str):
            errors.append("user.phone: must be a string")
        else:
            try:
                normalize_phone(phone)
            except PhoneFormatError as exc:
                errors.append(f"user.phone: {exc}")

    _optional_string(user.get("name"), "user.name", MAX_NAME_LENGTH, errors)

    email = user.get("email")
    if email is not None:
        if not isinstance(email, str):
            errors.append("user.email: must be a string")
        elif len(email) > MAX_EMAIL_LENGTH:
            errors.append(f"user.email: at most {MAX_EMAIL_LENGTH} characters")
        elif email.count("@") != 1 or email[0] == "@" or email[-1] == "@":
            errors.append("user.email: must be an email address such as z@example.com")
        elif "\x00" in email:
            errors.append(f"user.email: {_NUL}")

    _optional_string(user.get("wechat_openid"), "user.wechat_openid", MAX_OPENID_LENGTH, errors)
    return user_id


# --- per-type data ---------------------------------------------------------------------------


def _no_data(data: dict, errors: list[str]) -> None:
    """Accept any data: the type has no fields, and unknown fields are ignored."""


def _registered(data: dict, errors: list[str]) -> None:
    for key in ("channel_code", "click_id", "referral_code", "device_id", "ip"):
        _optional_string(data.get(key), "data." + key, MAX_ID_LENGTH, errors)


def _deposited(data: dict, errors: list[str]) -> None:
    _text(data.get("deposit_id"), "data.deposit_id", MAX_ID_LENGTH, errors)
    _money(data.get("amount"), "data.amount", errors)


def _investment_created(data: dict, errors: list[str]) -> None:
    _text(data.get("investment_id"), "data.investment_id", MAX_ID_LENGTH, errors)
    _money(data.get("amount"), "data.amount", errors)

    product = data.get("product")
    if product is None:
        errors.append("data.product: required")
    elif not isinstance(product, dict):
        errors.append("data.product: must be an object")
    else:
        _text(product.get("id"), "data.product.id", MAX_ID_LENGTH, errors)
        _text(product.get("name"), "data.product.name", MAX_ID_LENGTH, errors)
        term_days = product.get("term_days")
        if term_days is None:
            errors.append("data.product.term_days: required")
        # bool is an int subclass: true must not pass as a 1-day term.
        elif type(term_days) is not int or term_days <= 0:
            errors.append("data.product.term_days: must be a positive integer")
        rate = product.get("annual_rate")
        if rate is None:
            errors.append("data.product.annual_rate: required")
        elif isinstance(rate, str) and rate.endswith("\n"):
            errors.append(f"data.product.annual_rate: {_RATE_FORMAT}")
        else:
            try:
                parse_rate(rate)
            except MoneyFormatError as exc:
                errors.append(f"data.product.annual_rate: {exc}")

    reward_ids = data.get("reward_ids")
    if reward_ids is not None:
        if not isinstance(reward_ids, list):
            errors.append("data.reward_ids: must be a list of strings")
        else:
            before = len(errors)
            for index, reward_id in enumerate(reward_ids):
                _text(reward_id, f"data.reward_ids[{index}]", MAX_ID_LENGTH, errors)
                if len(errors) - before >= _MAX_ITEM_ERRORS:
                    break


def _redeemed(data: dict, errors: list[str]) -> None:
    _text(data.get("investment_id"), "data.investment_id", MAX_ID_LENGTH, errors)
    _money(data.get("amount"), "data.amount", errors)


def _matured(data: dict, errors: list[str]) -> None:
    _text(data.get("investment_id"), "data.investment_id", MAX_ID_LENGTH, errors)
    _money(data.get("amount"), "data.amount", errors)
    _money(data.get("interest"), "data.interest", errors, zero_allowed=True)


def _withdrawn(data: dict, errors: list[str]) -> None:
    _text(data.get("withdrawal_id"), "data.withdrawal_id", MAX_ID_LENGTH, errors)
    _money(data.get("amount"), "data.amount", errors)


def _consent_changed(data: dict, errors: list[str]) -> None:
    channel = data.get("channel")
    if channel is None:
        errors.append("data.channel: required")
    elif channel not in CONSENT_CHANNELS:  # tuple membership: safe for unhashable JSON values
        errors.append("data.channel: must be one of sms, email, wechat")
    granted = data.get("granted")
    if granted is None:
        errors.append("data.granted: required")
    elif not isinstance(granted, bool):
        errors.append("data.granted: must be true or false")


_DATA_CHECKS: dict[str, Callable[[dict, list[str]], None]] = {
    "user.registered": _registered,
    "user.kyc_verified": _no_data,
    "user.card_bound": _no_data,
    "funds.deposited": _deposited,
    "investment.created": _investment_created,
    "investment.redeemed": _redeemed,
    "investment.matured": _matured,
    "funds.withdrawn": _withdrawn,
    "user.consent_changed": _consent_changed,
}


# --- field helpers (null counts as missing) ----------------------------------------------------


def _text(value: object, path: str, max_length: int, errors: list[str]) -> str | None:
    """Check a required identifier-like string: present, not blank, not too long."""
    if value is None:
        errors.append(f"{path}: required")
        return None
    if not isinstance(value, str):
        errors.append(f"{path}: must be a string")
        return None
    if not value or value.isspace():
        errors.append(f"{path}: must not be empty")
        return None
    if len(value) > max_length:
        errors.append(f"{path}: at most {max_length} characters")
        return None
    if "\x00" in value:
        errors.append(f"{path}: {_NUL}")
        return None
    return value


def _optional_string(value: object, path: str, max_length: int, errors: list[str]) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        errors.append(f"{path}: must be a string")
    elif len(value) > max_length:
        errors.append(f"{path}: at most {max_length} characters")
    elif "\x00" in value:
        errors.append(f"{path}: {_NUL}")


def _money(value: object, path: str, errors: list[str], zero_allowed: bool = False) -> None:
    if value is None:
        errors.append(f"{path}: required")
        return
    if isinstance(value, str):
        # parse_yuan's regex ends in "$", which also matches before a final newline.
        if value.endswith("\n"):
            errors.append(f"{path}: {_MONEY_FORMAT}")
            return
        if zero_allowed and _ZERO_MONEY.fullmatch(value) is not None:
            return
    try:
        parse_yuan(value)
    except MoneyFormatError as exc:
        errors.append(f"{path}: {exc}")


def _clip(text: str, limit: int = 50) -> str:
    """Shorten untrusted text quoted back in an error message."""
    return text if len(text) <= limit else text[:limit] + "…"
