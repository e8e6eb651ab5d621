"""The one place that knows which stored data is personal, and pure functions that take it out.

Encryption at rest (growth/crypto.py) covers the investors row's phone, name and email (growth.crypto.Sealed
columns, found through SEARCH_INDEX_COLUMNS); erasure takes those and the hashes with the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from growth.investors.rules import SEARCH_INDEX_COLUMNS, PhoneFormatError, normalize_phone

# What erased text is replaced by (staff notes, call notes, review notes): the row stays, its words go.
ERASED_TEXT = "[已删除]"

# Personal fields of a platform event (spec events-api.md): the `user` object's profile fields and the
# registration's device and address. Everything else (ids, channel_code, click_id, referral_code, amounts,
# products, terms, times) is what the funnel, attribution and economics are built from, and is kept.
EVENT_USER_FIELDS = ("phone", "name", "email", "wechat_openid")
EVENT_DATA_FIELDS = ("device_id", "ip")

# The investors row: each personal column, with the `<field>_at` stamp the profile keeps beside it (or None).
# Phone, name and email are stored encrypted (growth.crypto.Sealed); their keyed hashes (SEARCH_INDEX_COLUMNS)
# go with them.
INVESTOR_PERSONAL_COLUMNS: dict[str, str | None] = {
    "phone": "phone_at",
    "name": "name_at",
    "email": "email_at",
    "wechat_openid": "wechat_openid_at",
    "device_id": None,
    "registration_ip": None,
}
# An event field → the investor column it feeds (retention keeps a value the investor still holds).
EVENT_FIELD_COLUMNS = {"user.phone": "phone", "user.name": "name", "user.email": "email",
                       "user.wechat_openid": "wechat_openid", "data.device_id": "device_id",
                       "data.ip": "registration_ip"}

# Consent evidence keys that say when and how consent was given or withdrawn and hold no personal data;
# the rest (an SMS reply's words, an address) is dropped when the investor is erased.
CONSENT_EVIDENCE_KEPT = frozenset({"seq", "issued_at", "one_click", "event", "call_id", "agent_id", "send_time",
                                   "sequence_id", "dest_code", "migrated"})

# Outbox content keys that hold no personal data (which template, which kind); the rendered text, subject, html,
# template parameters, WeChat data and links go when a body is erased or retained no longer.
OUTBOX_CONTENT_KEPT = frozenset({"template_code", "wechat_kind", "template_id"})
# The channels whose bodies are messages to a person; webhook bodies are instructions to the platform
# (a reward to credit: ids and amounts) and are kept.
PERSONAL_MESSAGE_CHANNELS = ("sms", "email", "wechat")


@dataclass(frozen=True, slots=True)
class Stripped:
    """A payload with personal fields taken out, and whether anything was."""

    body: dict[str, Any]
    changed: bool


def strip_event(body: Mapping[str, Any], *, keep: Mapping[str, Any] | None = None, profile_only: bool = False
                ) -> Stripped:
    """Return an event body without its personal fields; `keep` maps a field (e.g. "user.phone") to a value kept.

    A field whose value equals its `keep` value stays (retention keeps what the investor still holds, so a
    replay gives the same profile); with no `keep` every personal field goes (erasure). `profile_only` leaves
    the registration's device and address alone (retention: attribution and the referral checks read them).
    """
    keep = keep or {}
    out = dict(body)
    changed = False
    parts = [("user", EVENT_USER_FIELDS)] + ([] if profile_only else [("data", EVENT_DATA_FIELDS)])
    for part, fields in parts:
        section = out.get(part)
        if not isinstance(section, dict):
            continue
        copy = dict(section)
        for name in fields:
            if name not in copy:
                continue
            kept = keep.get(f"{part}.{name}")
            if kept is not None and _same(copy[name], kept, name):
                continue
            del copy[name]
            changed = True
        out[part] = copy
    return Stripped(out, changed)


def _same(value: Any, kept: Any, name: str) -> bool:
    """Return whether an event's value is the one the investor holds (a phone compared normalised)."""
    if name == "phone":
        try:
            return bool(normalize_phone(str(value)) == kept)
        except PhoneFormatError:
            return False
    return bool(value == kept)


def keep_values(investor: Mapping[str, Any]) -> dict[str, Any]:
    """Return the event fields an investor's row still holds (field → value), for `strip_event(keep=...)`."""
    return {field: investor.get(column) for field, column in EVENT_FIELD_COLUMNS.items()
            if investor.get(column) is not None}


def consent_evidence(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """Return consent evidence without anything personal: how and when stays, words and addresses go."""
    kept = {k: v for k, v in evidence.items() if k in CONSENT_EVIDENCE_KEPT}
    if len(kept) != len(evidence):
        kept["erased"] = True
    return kept


def message_content(content: Mapping[str, Any], *, why: str) -> dict[str, Any]:
    """Return an outbox message's content without its body: the template's code stays, `redacted` says why."""
    return {**{k: v for k, v in content.items() if k in OUTBOX_CONTENT_KEPT}, "redacted": why}


def investor_erased_values() -> dict[str, None]:
    """Return the investors row's personal columns (and their stamps) set to nothing."""
    columns: Iterable[str] = (c for pair in INVESTOR_PERSONAL_COLUMNS.items() for c in pair if c)
    return dict.fromkeys([*columns, *SEARCH_INDEX_COLUMNS])
