"""Referral rules (pure): program settings, qualification, fraud checks, the record's status, K-factor.

Plain data in, plain data out; the current time is never read here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l

from growth.money import MoneyFormatError, fen_to_api, parse_yuan
from growth.overrides import SettingsError
from growth.timeutil import local_date

MAX_CHAIN = 64  # referrer links followed when looking for a cycle (a longer one is not a fraud ring worth a walk)
_PREFIX = re.compile(r"^1[0-9]{2,3}$")


@dataclass(frozen=True, slots=True)
class ProgramSettings:
    """The referral program's settings (spec campaigns-api.md §4 for the qualification defaults)."""

    qualify_amount_fen: int = 100_000
    min_term_days: int = 30
    window_days: int = 30
    hold_days: int = 30
    max_referees_per_day: int = 5  # K: more referees than this on one day flags them
    subnet_window_hours: int = 72
    virtual_prefixes: tuple[str, ...] = ("170", "171", "162", "165", "167")

    def as_text(self) -> dict[str, str]:
        """Return the settings as the strings they are stored and edited as."""
        return {
            "qualify_amount": fen_to_api(self.qualify_amount_fen),
            "min_term_days": str(self.min_term_days),
            "window_days": str(self.window_days),
            "hold_days": str(self.hold_days),
            "max_referees_per_day": str(self.max_referees_per_day),
            "subnet_window_hours": str(self.subnet_window_hours),
            "virtual_prefixes": ",".join(self.virtual_prefixes),
        }


SETTING_KEYS = tuple(ProgramSettings().as_text())
SETTING_LABELS = {
    "qualify_amount": _l("首投达标金额（元）"),
    "min_term_days": _l("首投最短期限（天）"),
    "window_days": _l("注册后达标期限（天）"),
    "hold_days": _l("持有期（天）"),
    "max_referees_per_day": _l("单日邀请人数上限 K"),
    "subnet_window_hours": _l("同网段注册间隔（小时）"),
    "virtual_prefixes": _l("虚拟运营商号段"),
}
_INT_LIMITS = {
    "min_term_days": (1, 3650), "window_days": (1, 3650), "hold_days": (0, 3650),
    "max_referees_per_day": (1, 10_000), "subnet_window_hours": (1, 24 * 365),
}


def parse_settings(values: Mapping[str, str], *, base: ProgramSettings | None = None) -> ProgramSettings:
    """Return settings from their text values (missing keys keep `base`'s); raise SettingsError on a bad one."""
    out = base or ProgramSettings()
    changes: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in SETTING_KEYS:
            raise SettingsError(key, _l("未知的设置项"))
        text = (raw or "").strip()
        if key == "qualify_amount":
            try:
                changes["qualify_amount_fen"] = parse_yuan(text)
            except MoneyFormatError:
                raise SettingsError(key, _l("请填写大于 0 的金额，最多两位小数，例如 1000.00")) from None
        elif key == "virtual_prefixes":
            prefixes = tuple(dict.fromkeys(p.strip() for p in re.split(r"[,，\s]+", text) if p.strip()))
            bad = [p for p in prefixes if not _PREFIX.fullmatch(p)]
            if bad:
                raise SettingsError(key, _l("号段应为 1 开头的 3–4 位数字，以逗号分隔：%(bad)s", bad="、".join(bad)))
            changes["virtual_prefixes"] = prefixes
        else:
            low, high = _INT_LIMITS[key]
            if not re.fullmatch(r"[0-9]{1,6}", text) or not low <= int(text) <= high:
                raise SettingsError(key, _l("请填写 %(low)d 到 %(high)d 之间的整数", low=low, high=high))
            changes[key] = int(text)
    return replace(out, **changes)


# --- the parties and what the log tells about them --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Party:
    """A referrer or referee as the fraud checks see them."""

    investor_id: int
    phone: str | None = None
    device_id: str | None = None
    ip: str | None = None
    registered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FirstInvestment:
    """The referee's first investment (the earliest created)."""

    investment_id: str
    amount_fen: int
    term_days: int
    started_at: datetime
    redeemed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Flag:
    """One fraud reason: its code and what triggered it (ids, counts, a subnet; shown masked where personal)."""

    code: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Return the flag as stored on the record."""
        return {"code": self.code, "detail": self.detail}


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _national(phone: str | None) -> str | None:
    """Return a mainland mobile's national number (+8617012345678 -> 17012345678), else None."""
    if phone and phone.startswith("+86"):
        return phone[3:]
    return None


# --- BLOCK ---------------------------------------------------------------------------------------


def same_phone(referrer: Party, referee: Party) -> Flag | None:
    """Block a referee whose phone is the referrer's."""
    if referrer.phone and referrer.phone == referee.phone:
        return Flag("same_phone")
    return None


def same_device(referrer: Party, referee: Party) -> Flag | None:
    """Block a referee registered on the referrer's device."""
    if referrer.device_id and referrer.device_id.strip() and referrer.device_id == referee.device_id:
        return Flag("same_device")
    return None


def same_ip(referrer: Party, referee: Party) -> Flag | None:
    """Block a referee registered from the referrer's registration address."""
    a, b = _address(referrer.ip), _address(referee.ip)
    if a is not None and a == b:
        return Flag("same_ip")
    return None


# --- FLAG ----------------------------------------------------------------------------------------


def network_of(ip: str | None) -> str | None:
    """Return the /24 (IPv4) or /64 (IPv6) network of an address, e.g. "10.2.3.0/24"."""
    address = _address(ip)
    if address is None:
        return None
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def shared_subnet(referrer: Party, referee: Party, *, window_hours: int) -> Flag | None:
    """Flag two different addresses in one /24 (/64) whose registrations lie within `window_hours` of each other."""
    a, b = _address(referrer.ip), _address(referee.ip)
    if a is None or b is None or a == b or a.version != b.version:
        return None
    if referrer.registered_at is None or referee.registered_at is None:
        return None
    net = network_of(referrer.ip)
    if net != network_of(referee.ip):
        return None
    apart = abs(referee.registered_at - referrer.registered_at)
    if apart > timedelta(hours=window_hours):
        return None
    return Flag("shared_subnet", {"network": net, "hours": round(apart.total_seconds() / 3600, 1)})


def too_many_referees(referees_that_day: int, day: date | None, *, limit: int) -> Flag | None:
    """Flag every referee of a referrer's day (Asia/Shanghai) with more than `limit` referees."""
    if day is None or referees_that_day <= limit:
        return None
    return Flag("too_many_referees", {"day": day.isoformat(), "count": referees_that_day, "limit": limit})


def referral_cycle(referee_id: int, chain: Sequence[int], user_ids: Mapping[int, str]) -> Flag | None:
    """Flag a referee found among their own referrer's referrers (`chain`: the referrer, its referrer, ...)."""
    if referee_id not in chain:
        return None
    loop = [referee_id, *chain[:chain.index(referee_id)]]
    return Flag("referral_cycle", {"members": sorted(loop), "users": [user_ids.get(i, str(i)) for i in loop]})


def virtual_operator(referee: Party, *, prefixes: Iterable[str]) -> Flag | None:
    """Flag a referee whose mainland mobile starts with a virtual operator's prefix (170, 171, ...)."""
    national = _national(referee.phone)
    if national is None:
        return None
    for prefix in prefixes:
        if national.startswith(prefix):
            return Flag("virtual_operator", {"prefix": prefix})
    return None


def block_flags(referrer: Party, referee: Party) -> list[Flag]:
    """Return the BLOCK reasons between a referrer and a referee."""
    return [f for f in (same_phone(referrer, referee), same_device(referrer, referee), same_ip(referrer, referee))
            if f is not None]


# --- qualification and status ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Qualification:
    """What the referee's first investment means for the referral."""

    state: str  # pending / qualified / not_qualifying / redeemed_early
    window_ends_at: datetime | None
    qualified_at: datetime | None = None
    hold_ends_at: datetime | None = None


def qualify(registered_at: datetime | None, first: FirstInvestment | None, s: ProgramSettings) -> Qualification:
    """Apply the spec: the FIRST investment ≥ amount with term ≥ min term within the window qualifies;
    redeemed before the hold ends → rejected."""
    window_ends = None if registered_at is None else registered_at + timedelta(days=s.window_days)
    if first is None:
        return Qualification("pending", window_ends)
    in_window = window_ends is None or first.started_at <= window_ends
    if first.amount_fen < s.qualify_amount_fen or first.term_days < s.min_term_days or not in_window:
        return Qualification("not_qualifying", window_ends)
    hold_ends = first.started_at + timedelta(days=s.hold_days)
    if first.redeemed_at is not None and first.redeemed_at < hold_ends:
        return Qualification("redeemed_early", window_ends, first.started_at, hold_ends)
    return Qualification("qualified", window_ends, first.started_at, hold_ends)


@dataclass(frozen=True, slots=True)
class Decision:
    """The staff decision that applies to a referral."""

    decision: str  # approved / rejected
    note: str
    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """A referral's derived status."""

    status: str
    rejected_reason: str | None = None
    confirmed_at: datetime | None = None
    confirmed_how: str | None = None


def status_of(q: Qualification, flags: Sequence[Flag], decision: Decision | None,
              confirmation: tuple[datetime, str] | None) -> Outcome:
    """Decide a referral's status, in order: blocked, staff-rejected, not qualifying / redeemed early,
    waiting for review, confirmed (the feed has it), qualified, pending."""
    codes = {f.code for f in flags}
    if codes & {"same_phone", "same_device", "same_ip"}:
        return Outcome("rejected", "blocked")
    if decision is not None and decision.decision == "rejected":
        return Outcome("rejected", "staff_rejected")
    if q.state in ("not_qualifying", "redeemed_early"):
        return Outcome("rejected", q.state)
    if flags and (decision is None or decision.decision != "approved"):
        return Outcome("in_review")
    if confirmation is not None and q.state == "qualified":
        return Outcome("confirmed", confirmed_at=confirmation[0], confirmed_how=confirmation[1])
    return Outcome(q.state)


def confirmation_how(decision: Decision | None) -> str:
    """Return how a due referral is confirmed: by staff when its flags needed an approval, else automatically."""
    return "staff" if decision is not None and decision.decision == "approved" else "automatic"


# --- showing it -----------------------------------------------------------------------------------


def mask_ip(ip: str | None) -> str:
    """Hide the last two parts of an address: 10.2.3.4 -> 10.2.*.*; IPv6 keeps its first 2 groups."""
    address = _address(ip)
    if address is None:
        return "****" if ip else ""
    if address.version == 4:
        return ".".join(str(address).split(".")[:2]) + ".*.*"
    return ":".join(format(int(g, 16), "x") for g in address.exploded.split(":")[:2]) + ":*"


def mask_network(network: str | None) -> str:
    """Hide a /24 or /64 network like an address: 10.2.3.0/24 -> 10.2.*.*/24."""
    if not network or "/" not in network:
        return ""
    address, prefix = network.split("/", 1)
    return f"{mask_ip(address)}/{prefix}"


def flag_detail_text(flag: Mapping[str, Any], *, reveal: bool) -> str:
    """Return a flag's detail for people, with networks masked unless `reveal`."""
    detail = flag.get("detail") or {}
    code = flag.get("code")
    if code == "shared_subnet":
        net = detail.get("network")
        return str(_l("%(net)s，注册相隔 %(hours)s 小时", net=net if reveal else mask_network(net),
                      hours=detail.get("hours")))
    if code == "too_many_referees":
        return str(_l("%(day)s 共 %(n)s 人（上限 %(k)s）", day=detail.get("day"), n=detail.get("count"),
                      k=detail.get("limit")))
    if code == "referral_cycle":
        return " → ".join(detail.get("users") or [])
    if code == "virtual_operator":
        return str(_l("号段 %(prefix)s", prefix=detail.get("prefix")))
    return ""


# --- program statistics ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WeekFactor:
    """One weekly registration cohort's referral K-factor."""

    week_start: date
    cohort: int
    referred: int  # registrations referred by cohort members within the window of their own registration

    @property
    def k_factor(self) -> float | None:
        """Return referred ÷ cohort (None for an empty cohort)."""
        return None if not self.cohort else self.referred / self.cohort


def week_start(at: datetime) -> date:
    """Return the Monday (Asia/Shanghai) of an instant's ISO week."""
    day = local_date(at)
    return day - timedelta(days=day.weekday())


def k_factors(members: Iterable[tuple[int, datetime]], referrals: Iterable[tuple[int, datetime]], *,
              window_days: int = 30) -> list[WeekFactor]:
    """Return the K-factor of each weekly registration cohort (ISO weeks, Asia/Shanghai), oldest first.

    `members`: (investor id, registered_at) of every registered investor; `referrals`: (referrer id,
    referee registered_at). A cohort member's referral counts when the referee registered within
    `window_days` × 24 h after the member did.
    """
    registered = dict(members)
    cohorts: dict[date, int] = {}
    for at in registered.values():
        cohorts[week_start(at)] = cohorts.get(week_start(at), 0) + 1
    referred: dict[date, int] = {}
    window = timedelta(days=window_days)
    for referrer_id, at in referrals:
        own = registered.get(referrer_id)
        if own is not None and own <= at <= own + window:
            referred[week_start(own)] = referred.get(week_start(own), 0) + 1
    return [WeekFactor(week, cohorts[week], referred.get(week, 0)) for week in sorted(cohorts)]
