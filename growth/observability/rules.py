"""Pure rules: masking personal data in log text, sane request ids, readiness from facts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

# A mainland mobile number (optionally +86), not inside a longer run of digits (an order id, a timestamp).
_PHONE = re.compile(r"(?<![\d])(?:\+?86[- ]?)?(1[3-9]\d)(\d{4})(\d{4})(?![\d])")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
# A resident identity card number: 17 digits and a digit or X.
_ID_NUMBER = re.compile(r"(?<![\d])(\d{3})\d{11}(\d{3}[\dXx])(?![\dA-Za-z])")
_IPV4 = re.compile(r"(?<![\d.])(\d{1,3}\.\d{1,3})\.\d{1,3}\.\d{1,3}(?![\d.])")
# `name=…`, `"name": "…"`, `'real_name': '…'` in dumped payloads and dicts: the value goes, whatever its script.
_NAMED = re.compile(
    r"""(?P<key>["']?\b(?:name|real_name|realname|full_name|nickname|display_name|contact_name)["']?\s*[:=]\s*)"""
    r"""(?P<quote>["']?)(?P<value>[^"',;}\s][^"',;}\n]*?)(?P=quote)(?=[\s,;}\]]|$)""",
    re.IGNORECASE,
)
# Keys of `extra` fields (and of dicts inside them) whose values are personal data as a whole.
PII_KEYS = frozenset({"name", "real_name", "realname", "full_name", "nickname", "display_name", "contact_name",
                      "phone", "mobile", "phone_number", "email", "id_number", "id_card", "address", "ip",
                      "remote_addr", "openid", "unionid"})
# SQLAlchemy's "[parameters: (...)]" in a database error (the engine hides them; an error from elsewhere may not).
_SQL_PARAMETERS = re.compile(r"\[parameters: .*?\](?=\s*\(Background|\s*$|\n)", re.DOTALL)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def mask_name(value: str) -> str:
    """Keep a name's first character only (张三 → 张*)."""
    value = value.strip()
    return value[:1] + "*" * max(1, len(value) - 1) if value else value


def mask_text(text: str) -> str:
    """Mask every phone number, email address, ID number, IPv4 address and `name=` value in free text."""
    if not text:
        return text
    text = _SQL_PARAMETERS.sub("[parameters: hidden]", text)
    text = _NAMED.sub(lambda m: f"{m['key']}{m['quote']}{mask_name(m['value'])}{m['quote']}", text)
    text = _ID_NUMBER.sub(lambda m: f"{m[1]}{'*' * 11}{m[2]}", text)
    text = _PHONE.sub(lambda m: f"{m[1]}****{m[3]}", text)
    text = _EMAIL.sub(lambda m: f"{m[1]}***@{m[2]}", text)
    return _IPV4.sub(lambda m: f"{m[1]}.*.*", text)


def mask_value(value: Any, *, key: str | None = None) -> Any:
    """Return a log field's value with personal data masked (a PII key masks the whole value)."""
    if key is not None and key.lower() in PII_KEYS and value not in (None, ""):
        if isinstance(value, str) and key.lower() in {"phone", "mobile", "phone_number", "email", "id_number"}:
            masked = mask_text(value)
            return masked if masked != value else "***"
        return mask_name(value) if isinstance(value, str) and "name" in key.lower() else "***"
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: mask_value(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_value(v) for v in value]
    return value


def sane_request_id(value: str | None) -> str | None:
    """Return a caller's X-Request-ID when it is a short token of safe characters, else None."""
    if value and _REQUEST_ID.fullmatch(value.strip()):
        return value.strip()
    return None


def heartbeat_fresh(newest: datetime | None, *, now: datetime, max_age: timedelta) -> bool:
    """Tell whether the newest worker heartbeat is recent enough for the deployment to be ready."""
    return newest is not None and now - newest <= max_age
