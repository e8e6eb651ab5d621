"""Pure rules about investors: phone normalisation, referral codes, masking."""

from __future__ import annotations

import base64
import hashlib
import re

_NON_DIGIT = re.compile(r"[\s\-()]")
_MAINLAND_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class PhoneFormatError(ValueError):
    """A phone number that cannot be normalised to E.164."""


def normalize_phone(text: str) -> str:
    """Normalise a phone number to E.164; a bare mainland mobile gets +86."""
    compact = _NON_DIGIT.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if _MAINLAND_MOBILE.match(compact):
        return "+86" + compact
    if compact.startswith("86") and _MAINLAND_MOBILE.match(compact[2:]):
        return "+" + compact
    if _E164.match(compact):
        return compact
    raise PhoneFormatError("must be an E.164 number such as +8613800138000")


def referral_code_for(user_id: str) -> str:
    """Return the investor's stable referral code (8 characters, derived from the platform id)."""
    digest = hashlib.sha256(b"growth-referral:" + user_id.encode()).digest()
    return base64.b32encode(digest)[:8].decode()


def mask_phone(phone: str | None) -> str:
    """Mask a phone for people who may not see it: +8613800138000 -> 138****8000."""
    if not phone:
        return ""
    local = phone[3:] if phone.startswith("+86") else phone.lstrip("+")
    if len(local) < 7:
        return "*" * len(local)
    return f"{local[:3]}****{local[-4:]}"


def mask_name(name: str | None) -> str:
    """Mask a personal name: 张三丰 -> 张**."""
    if not name:
        return ""
    return name[0] + "*" * (len(name) - 1)


def mask_email(email: str | None) -> str:
    """Mask an email address: zhang@example.com -> z****@example.com."""
    if not email or "@" not in email:
        return ""
    local, domain = email.split("@", 1)
    return f"{local[:1]}****@{domain}"


def newer_value_wins(current: object, current_at: object, value: object, at: object) -> bool:
    """Tell whether a profile value seen at `at` replaces the current one (latest wins; ties by value).

    Breaking ties by value, not arrival, keeps the result the same in any arrival order.
    """
    if current_at is None:
        return True
    if at != current_at:
        return at > current_at  # type: ignore[operator]
    return current is None or (value is not None and str(value) > str(current))


def nth_earliest(times: list, n: int) -> object:
    """Return the n-th earliest (1-based) of some times, or None when there are fewer."""
    known = sorted(t for t in times if t is not None)
    return known[n - 1] if len(known) >= n else None


def attribution_kind(*, click_channel: bool, channel_code: str | None, referrer_known: bool) -> str:
    """Decide where a registration came from: "click", "code", "referral" or "organic" (the spec's order)."""
    if click_channel:
        return "click"
    if channel_code:
        return "code"
    if referrer_known:
        return "referral"
    return "organic"
