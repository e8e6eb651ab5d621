"""Pure rules about investors: phone normalisation, referral codes, masking."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from growth.crypto import Keyring

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


def _partial(text: str, *, most: int = 4) -> str:
    """Keep at most `most` trailing characters and never more than a third: the rest become "*".

    A third (rounded down) means a 1- or 2-character value is hidden whole and at least two
    thirds of any value stay hidden, so short numbers cannot be read off their tail.
    """
    keep = min(most, len(text) // 3)
    return "*" * (len(text) - keep) + (text[len(text) - keep:] if keep else "")


def _phone_parts(phone: str) -> tuple[str, str]:
    """Split a stored phone into the prefix shown in full ("+86 " or "+") and its national digits."""
    text = phone.strip()
    if text.startswith("+86") and _MAINLAND_MOBILE.match(text[3:]):
        return "+86 ", text[3:]
    return ("+" if text.startswith("+") else ""), text.lstrip("+")


def format_phone(phone: str | None) -> str:
    """Show a phone in full, in the layout its masked form uses: +8613800138000 -> +86 13800138000."""
    if not phone:
        return ""
    prefix, national = _phone_parts(phone)
    return prefix + national


def mask_phone(phone: str | None) -> str:
    """Mask a phone: +8613800138000 -> +86 138****8000; other numbers keep at most their last 4 digits."""
    if not phone:
        return ""
    prefix, national = _phone_parts(phone)
    if prefix == "+86 ":  # a mainland mobile: the carrier prefix and the last 4, as people know it
        return f"{prefix}{national[:3]}****{national[-4:]}"
    return prefix + _partial(national) if national else "*"


def mask_name(name: str | None) -> str:
    """Mask a personal name: 张三丰 -> 张**, 张三 -> 张*, a one-character name -> *."""
    if not name:
        return ""
    if len(name) == 1:
        return "*"
    return name[0] + "*" * (len(name) - 1)


# Where a browser session keeps its audited reveals: {investor id: unix time the reveal ends} (no personal data).
REVEALED_KEY = "investors_revealed"


def reveal_holds(revealed: object, investor_id: int, now: float) -> bool:
    """Tell whether the session's reveals (`REVEALED_KEY`'s value) still show this investor at `now` (unix time)."""
    until = revealed.get(str(investor_id)) if isinstance(revealed, dict) else None
    return isinstance(until, int | float) and until > now


def mask_email(email: str | None) -> str:
    """Mask an email address: zhang@example.com -> z****@example.com (a one-letter local part is hidden whole)."""
    if not email or "@" not in email:
        return ""
    local, domain = email.rsplit("@", 1)
    if len(local) < 2:
        return f"****@{domain}"
    return f"{local[:1]}****@{domain}"


def mask_ip(ip: str | None) -> str:
    """Hide the host part of an IP: 203.0.113.7 -> 203.0.113.*, IPv6 keeps its first 3 groups; other text -> ****."""
    if not ip:
        return ""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return "****"
    if isinstance(address, ipaddress.IPv6Address):
        groups = address.exploded.split(":")[:3]
        return ":".join(format(int(group, 16), "x") for group in groups) + ":*"
    return ".".join(str(address).split(".")[:3]) + ".*"


def mask_identifier(value: str | None) -> str:
    """Mask an identifier such as a device id: at most its last 4 characters stay visible."""
    if not value:
        return ""
    return _partial(value)


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


# --- searching investors -----------------------------------------------------------------------

# A query that is only digits and phone punctuation may be (part of) a phone number.
_PHONE_LIKE = re.compile(r"\+?[0-9\s\-()]+")
_REFERRAL_CODE = re.compile(r"[A-Z2-7]{8}")
PHONE_TAIL_DIGITS = 4  # what a masked phone already shows, so anyone may search by it
# A stored (E.164) phone this long or longer shows its last 4 digits masked (mask_phone: a mainland mobile, or
# 12+ national digits); a shorter one shows fewer, so a last-4 search must not find it for a role without PII.
TAIL_SHOWN_MIN_LENGTH = 13


def tail_shown(phone: str) -> bool:
    """Tell whether a stored phone's masked form shows its last 4 digits (what a last-4 search may match)."""
    return len(phone) >= TAIL_SHOWN_MIN_LENGTH


# The keyed hashes stored beside the encrypted profile (growth.crypto): one column per way of finding an investor.
# `phone_tail` hashes the last 4 digits with whether the masked phone shows them, so a role without personal data
# finds only the phones whose masked form already shows those digits (tail_shown).
SEARCH_INDEX_OF = {"phone": ("phone_index", "phone_tail_index"), "name": ("name_index",),
                   "email": ("email_index",)}
SEARCH_INDEX_COLUMNS = tuple(c for columns in SEARCH_INDEX_OF.values() for c in columns)
_SPACES = re.compile(r"\s+")


def name_form(name: str) -> str:
    """Return a name as the search compares it: NFKC, lower case, no spaces (张 三 = 张三, John Smith = johnsmith)."""
    return _SPACES.sub("", unicodedata.normalize("NFKC", name)).lower()


def email_form(email: str) -> str:
    """Return an email as the search compares it."""
    return email.strip().lower()


def phone_tail_form(tail: str, *, shown: bool) -> str:
    """Return a phone's last 4 digits as hashed, with whether its masked form shows them."""
    return f"{tail[-PHONE_TAIL_DIGITS:]}|{'shown' if shown else 'hidden'}"


def search_index(ring: Keyring, field: str, value: str | None) -> dict[str, str | None]:
    """Return the hash columns of a profile field's new value (all None when the value is None)."""
    if field == "phone":
        if value is None:
            return {"phone_index": None, "phone_tail_index": None}
        return {"phone_index": ring.blind(value, "phone"),
                "phone_tail_index": ring.blind(phone_tail_form(value, shown=tail_shown(value)), "phone_tail")}
    if field == "name":
        return {"name_index": None if value is None else ring.blind(name_form(value), "name")}
    if field == "email":
        return {"email_index": None if value is None else ring.blind(email_form(value), "email")}
    return {}


def prefix_end(prefix: str) -> str | None:
    """Return the least string above every string that starts with `prefix` (None: there is none).

    `prefix <= s < prefix_end(prefix)` is "s starts with prefix" for strings compared code point by code
    point, which an index answers as one range.
    """
    text = prefix
    while text:
        last = ord(text[-1])
        if last < 0x10FFFF:
            return text[:-1] + chr(last + 1)
        text = text[:-1]
    return None


@dataclass(frozen=True, slots=True)
class SearchTerms:
    """How one search box query is matched against investors.

    `audited` is set when the search is made with personal data (a whole phone, a name, an email or a
    phone fragment longer than the masked tail), whether or not the role may search by it. `withheld`
    is set when the query looked like a name, email or phone fragment that the searcher's role may not
    search by, so nothing matched it as such.
    """

    platform_id_prefix: str | None = None
    referral_code: str | None = None
    phone: str | None = None
    phone_suffix: str | None = None  # the last 4 digits, or (roles with PII) a longer tail
    name: str | None = None  # a name's beginning (lower-cased): 张三 finds 张三 and 张三丰
    email: str | None = None  # an email's beginning (lower-cased)
    audited: bool = False
    withheld: bool = False
    # Match a phone tail only where the masked phone shows it (roles without PII: see tail_shown).
    tail_shown_only: bool = False

    @property
    def empty(self) -> bool:
        """Tell whether the query matches nothing at all."""
        return not (self.platform_id_prefix or self.referral_code or self.phone or self.phone_suffix
                    or self.name or self.email)


def search_terms(q: str | None, *, may_see_pii: bool) -> SearchTerms:
    """Decide what a search query may match for a role (with or without the reveal permission).

    Everyone may search by platform id (prefix), referral code, the last 4 phone digits (of phones whose
    masked form shows them) or a whole phone number, none of which tells them more than they knew or see
    masked. Names, emails (by their beginning) and longer phone fragments only for roles that may see
    personal data: otherwise a name could be confirmed, or a phone rebuilt digit by digit from suffix
    searches.
    """
    q = (q or "").strip()
    if not q:
        return SearchTerms()
    code = q.upper()
    platform_id_prefix = q
    referral_code = code if _REFERRAL_CODE.fullmatch(code) else None
    phone = phone_suffix = name = email = None
    personal = False  # the query is personal data the searcher typed in
    if _PHONE_LIKE.fullmatch(q):
        digits = re.sub(r"[^0-9]", "", q)
        try:
            phone = normalize_phone(q)
            personal = True
        except PhoneFormatError:
            if len(digits) == PHONE_TAIL_DIGITS:
                phone_suffix = digits
            elif len(digits) > PHONE_TAIL_DIGITS:
                personal = True
                phone_suffix = digits if may_see_pii else None
    elif "@" in q:
        personal = True
        email = q.lower() if may_see_pii else None
    else:
        # Any other text may be part of a name; letters only (zhang), spaces or non-ASCII are taken as
        # one, while ids and codes (u_10023, ABCD2345) mix in digits or punctuation.
        personal = not q.isascii() or " " in q or q.isalpha()
        name = q.lower() if may_see_pii else None
    return SearchTerms(
        platform_id_prefix=platform_id_prefix, referral_code=referral_code, phone=phone,
        phone_suffix=phone_suffix, name=name, email=email,
        audited=personal,
        withheld=personal and not may_see_pii and phone is None,
        tail_shown_only=not may_see_pii,
    )


def mask_query(q: str) -> str:
    """Mask a search query for the audit log: the log records the search, not the personal data."""
    q = q.strip()
    if "@" in q:
        return mask_email(q)
    if _PHONE_LIKE.fullmatch(q):
        try:
            return mask_phone(normalize_phone(q))
        except PhoneFormatError:
            return mask_identifier(re.sub(r"[^0-9]", "", q))
    return mask_name(q)


def recent_within(times: list[datetime], *, now: datetime, window: timedelta) -> list[datetime]:
    """Return the times that lie within `window` before `now` (a sliding window's contents)."""
    start = now - window
    return [t for t in times if start < t <= now]


def may_search(times: list[datetime], *, now: datetime, limit: int, window: timedelta) -> bool:
    """Tell whether one more search fits: fewer than `limit` searches within `window` before `now`."""
    return len(recent_within(times, now=now, window=window)) < limit
