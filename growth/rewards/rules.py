"""Pure rules of the incentive ledger: terms, exact costs in fen, budget value, validity of a use, derived status.

Costs follow campaigns-api.md §2 exactly, in integer arithmetic (fen × basis points × days), rounded
half-up to the fen once, at the end. Rates are integer basis points (1 bp = 0.0001).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l

from growth.errors import DomainError
from growth.money import fen_to_api, format_rate
from growth.rewards.models import KIND_LABELS
from growth.timeutil import SHANGHAI, local_date

BP = 10_000  # basis points in 1
YEAR_DAYS = 365
MAX_DAYS = 3650  # no term of ours is longer than ten years
# The share of outstanding rewards assumed to be used when a kind has no settled history yet: all of
# them, so the liability is never understated before the first rewards have settled.
DEFAULT_USE_RATE = 1.0


class InvalidTerms(DomainError):
    """Terms a reward of that kind cannot have."""

    status = 422


class BudgetExhausted(DomainError):
    """A grant that would break a budget limit (`limit`: max_grants, max_amount or per_investor)."""

    status = 409

    def __init__(self, limit: str) -> None:
        super().__init__(_l("预算已用完：%(limit)s", limit=limit), field=limit)
        self.limit = limit


def half_up(numerator: int, denominator: int) -> int:
    """Divide non-negative integers, rounding half up (0.5 fen → 1 fen)."""
    if numerator < 0 or denominator <= 0:
        raise ValueError("half_up takes a non-negative numerator and a positive denominator")
    return (2 * numerator + denominator) // (2 * denominator)


def cash_cost(amount_fen: int) -> int:
    """Return a cash red packet's cost: its amount."""
    return amount_fen


def voucher_cost(amount_fen: int) -> int:
    """Return a redeemed voucher's cost: its amount."""
    return amount_fen


def rate_boost_cost(principal_fen: int, annual_rate_bp: int, max_days: int, term_days: int) -> int:
    """Return principal × annual_rate × min(max_days, term_days) / 365, in fen, rounded half-up once."""
    return half_up(principal_fen * annual_rate_bp * min(max_days, term_days), BP * YEAR_DAYS)


def experience_funds_cost(amount_fen: int, annual_rate_bp: int, days: int) -> int:
    """Return amount × annual_rate × days / 365 (only the interest is paid), in fen, rounded half-up once."""
    return half_up(amount_fen * annual_rate_bp * days, BP * YEAR_DAYS)


def cashback_cost(principal_fen: int, rate_bp: int) -> int:
    """Return principal × rate, in fen, rounded half-up once."""
    return half_up(principal_fen * rate_bp, BP)


@dataclass(frozen=True, slots=True)
class Terms:
    """A reward's terms; which fields apply depends on its kind (see REQUIRED)."""

    amount_fen: int | None = None
    annual_rate_bp: int | None = None
    rate_bp: int | None = None
    max_days: int | None = None
    days: int | None = None
    hold_days: int | None = None
    principal_fen: int | None = None  # cashback: the triggering investment's amount
    investment_id: str | None = None  # cashback: the triggering investment
    min_investment_fen: int | None = None
    max_investment_fen: int | None = None  # rate boost: a condition that also bounds its cost
    min_term_days: int | None = None
    valid_days: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the terms that are set, as plain data (JSON for a pending request)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Terms:
        """Build terms from `as_dict` output."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


REQUIRED: dict[str, tuple[str, ...]] = {
    "cash": ("amount_fen",),
    "voucher": ("amount_fen", "valid_days"),
    "rate_boost": ("annual_rate_bp", "max_days", "valid_days"),
    "experience_funds": ("amount_fen", "annual_rate_bp", "days"),
    "cashback": ("rate_bp", "hold_days", "principal_fen", "investment_id"),
}
ALLOWED: dict[str, frozenset[str]] = {
    "cash": frozenset({"amount_fen"}),
    "voucher": frozenset({"amount_fen", "valid_days", "min_investment_fen", "min_term_days"}),
    "rate_boost": frozenset({"annual_rate_bp", "max_days", "valid_days", "min_investment_fen", "max_investment_fen",
                             "min_term_days"}),
    "experience_funds": frozenset({"amount_fen", "annual_rate_bp", "days", "valid_days"}),
    "cashback": frozenset({"rate_bp", "hold_days", "principal_fen", "investment_id"}),
}


def check_terms(kind: str, terms: Terms) -> Terms:
    """Return the terms if a reward of `kind` may have them; raise InvalidTerms naming the first bad field."""
    if kind not in REQUIRED:
        raise InvalidTerms(_l("未知的红包类型：%(kind)s", kind=kind), field="kind")
    for name in REQUIRED[kind]:
        if getattr(terms, name) is None:
            raise InvalidTerms(_l("缺少必填项：%(name)s", name=name), field=name)
    for name, value in terms.as_dict().items():
        if name not in ALLOWED[kind]:
            raise InvalidTerms(_l("该类型不适用：%(name)s", name=name), field=name)
        if name == "investment_id":
            if not isinstance(value, str) or not 0 < len(value) <= 200:
                raise InvalidTerms(_l("投资编号无效"), field=name)
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise InvalidTerms(_l("须为正整数：%(name)s", name=name), field=name)
        if name.endswith("_bp") and value >= BP:
            raise InvalidTerms(_l("利率须小于 100%%：%(name)s", name=name), field=name)
        if name.endswith("days") and value > MAX_DAYS:
            raise InvalidTerms(_l("天数过大：%(name)s", name=name), field=name)
    if terms.min_investment_fen and terms.max_investment_fen and terms.min_investment_fen > terms.max_investment_fen:
        raise InvalidTerms(_l("起投金额不能高于投资上限"), field="max_investment_fen")
    return terms


def known_cost(kind: str, terms: Terms) -> int | None:
    """Return the cost fixed at grant (cash, experience funds, cashback), or None when it depends on a use."""
    if kind == "cash":
        return cash_cost(terms.amount_fen or 0)
    if kind == "experience_funds":
        return experience_funds_cost(terms.amount_fen or 0, terms.annual_rate_bp or 0, terms.days or 0)
    if kind == "cashback":
        return cashback_cost(terms.principal_fen or 0, terms.rate_bp or 0)
    return None


def budget_value(kind: str, terms: Terms) -> int | None:
    """Return what a grant consumes of a budget's max_amount (spec §2), or None when it cannot be bounded.

    Face value for cash, vouchers and experience funds (their `amount`: the spec counts face value); the
    maximum cost for a rate boost (its `max_investment_fen` condition × rate × max_days / 365: without
    such a bound its cost has no maximum) and for cashback (principal × rate: known at grant, since it
    is on the triggering investment).
    """
    if kind in ("cash", "voucher", "experience_funds"):
        return terms.amount_fen or 0
    if kind == "cashback":
        return cashback_cost(terms.principal_fen or 0, terms.rate_bp or 0)
    if kind == "rate_boost":
        if terms.max_investment_fen is None:
            return None
        return rate_boost_cost(terms.max_investment_fen, terms.annual_rate_bp or 0, terms.max_days or 0,
                               terms.max_days or 0)
    raise ValueError(kind)


def expires_at(kind: str, terms: Terms, granted_at: datetime) -> datetime | None:
    """Return when an unused voucher or rate boost expires: the end of the business day `valid_days` after the grant.

    Granted on 1 December with valid_days 30, it is usable through 31 December (Asia/Shanghai). Other
    kinds never expire: cash is paid at grant, experience funds run from the grant, cashback is held.
    """
    if kind not in ("voucher", "rate_boost") or not terms.valid_days:
        return None
    last = local_date(granted_at) + timedelta(days=terms.valid_days + 1)
    return datetime(last.year, last.month, last.day, tzinfo=SHANGHAI).astimezone(UTC)


def payable_at(kind: str, *, granted_at: datetime, days: int | None, hold_days: int | None,
               investment_started_at: datetime | None) -> datetime | None:
    """Return when a granted reward is paid by the job: experience funds after their days, cashback after its hold."""
    if kind == "experience_funds" and days:
        return granted_at + timedelta(days=days)
    if kind == "cashback" and hold_days:
        return hold_start(granted_at, investment_started_at) + timedelta(days=hold_days)
    return None


def hold_start(granted_at: datetime, investment_started_at: datetime | None) -> datetime:
    """Return when a cashback's hold starts: its investment's occurred_at (the grant time until that is known)."""
    return investment_started_at if investment_started_at is not None else granted_at


def clawed_back(*, hold_days: int, hold_from: datetime, redeemed_at: datetime | None) -> bool:
    """Tell whether an early exit falls inside a cashback's hold (so it is clawed back)."""
    return redeemed_at is not None and redeemed_at < hold_from + timedelta(days=hold_days)


# --- uses on investments -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RewardView:
    """What deciding a use needs to know of a reward."""

    id: int
    investor_id: int
    kind: str
    granted_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    min_investment_fen: int | None
    max_investment_fen: int | None
    min_term_days: int | None


@dataclass(frozen=True, slots=True)
class Claim:
    """A reward named on an investment."""

    investment_id: str
    investor_id: int
    occurred_at: datetime
    amount_fen: int
    term_days: int


def use_problem(reward: RewardView | None, claim: Claim) -> str | None:
    """Return why a reward cannot be used on an investment on its own (an INVALID_REASONS code), or None."""
    if reward is None:
        return "not_found"
    if reward.investor_id != claim.investor_id:
        return "wrong_owner"
    if reward.kind not in ("voucher", "rate_boost") or claim.occurred_at < reward.granted_at:
        return "not_usable"
    if reward.revoked_at is not None and claim.occurred_at >= reward.revoked_at:
        return "not_usable"
    if reward.expires_at is not None and claim.occurred_at >= reward.expires_at:
        return "expired"
    if reward.min_investment_fen is not None and claim.amount_fen < reward.min_investment_fen:
        return "conditions_unmet"
    if reward.max_investment_fen is not None and claim.amount_fen > reward.max_investment_fen:
        return "conditions_unmet"
    if reward.min_term_days is not None and claim.term_days < reward.min_term_days:
        return "conditions_unmet"
    return None


def decide_claims(reward: RewardView | None, claims: Sequence[Claim]) -> tuple[Claim | None, dict[str, str | None]]:
    """Decide every use of one reward together: the earliest valid one wins (tie: investment id), in any arrival order.

    Return the winning claim and, per investment id, the reason each claim is invalid (None for the winner).
    """
    reasons: dict[str, str | None] = {}
    winner: Claim | None = None
    for claim in sorted(claims, key=lambda c: (c.occurred_at, c.investment_id)):
        problem = use_problem(reward, claim)
        if problem is None and winner is not None:
            problem = "not_usable"  # used already, on an earlier investment
        if problem is None:
            winner = claim
        reasons[claim.investment_id] = problem
    return winner, reasons


# --- derived state ---------------------------------------------------------------------------------


def derive_status(entry_kinds: Collection[str]) -> str:
    """Return a reward's status from the kinds of its entries, whatever order they were written in.

    A redemption that happened before a revoke or an expiry wins over them (the projection only books
    uses that were valid when they occurred); a clawback wins over a payment (a debt entry records it).
    """
    for entry, status in (("clawed_back", "clawed_back"), ("redeemed", "redeemed"), ("revoked", "revoked"),
                          ("paid", "paid"), ("expired", "expired")):
        if entry in entry_kinds:
            return status
    return "granted"


def derive_cost(kind: str, status: str, terms: Terms, redeemed_cost: int | None) -> int:
    """Return what a reward costs in its current status (spec §7: revoked or expired rewards cost nothing)."""
    if status in ("revoked", "expired", "clawed_back"):
        return 0
    if kind in ("voucher", "rate_boost"):
        return (redeemed_cost or 0) if status == "redeemed" else 0
    return known_cost(kind, terms) or 0


def redeemed_cost(kind: str, terms: Terms, claim: Claim) -> int:
    """Return the cost of a voucher or rate boost redeemed on an investment."""
    if kind == "voucher":
        return voucher_cost(terms.amount_fen or 0)
    return rate_boost_cost(claim.amount_fen, terms.annual_rate_bp or 0, terms.max_days or 0, claim.term_days)


# --- liability -------------------------------------------------------------------------------------


def use_rate(used: int, lapsed: int) -> float:
    """Return the historical share of settled rewards that were used (DEFAULT_USE_RATE without history)."""
    settled = used + lapsed
    return used / settled if settled else DEFAULT_USE_RATE


@dataclass(frozen=True, slots=True)
class Outstanding:
    """Outstanding (granted, unsettled) rewards of one kind: how many, at face value and at full cost."""

    kind: str
    count: int
    face_fen: int
    cost_fen: int  # if every one of them is used (a rate boost at its maximum cost)


def expected_cost(outstanding: Outstanding, rate: float) -> int:
    """Return the expected cost of outstanding rewards: full cost × historical use rate, rounded half-up."""
    scaled = round(rate * 1_000_000)
    return half_up(outstanding.cost_fen * scaled, 1_000_000)


def with_terms(terms: Terms, **changes: Any) -> Terms:
    """Return the terms with some fields changed."""
    return replace(terms, **changes)



def message_variables(reward: Any | None) -> dict[str, str]:
    """Return a granted reward's `reward.*` message variables, as `channels.templates.context` takes them.

    `reward` is a ledger row — a Reward, or a mapping — with its kind, amount_fen, annual_rate_bp, rate_bp
    and expires_at; None gives empty values (a campaign that grants nothing).
    """
    if reward is None:
        return {"reward_amount": "", "reward_expires_on": "", "reward_kind_label": ""}
    r = reward if isinstance(reward, Mapping) else {name: getattr(reward, name) for name in (
        "kind", "amount_fen", "annual_rate_bp", "rate_bp", "expires_at")}
    if r["kind"] == "rate_boost":
        amount = format_rate(r["annual_rate_bp"])
    elif r["kind"] == "cashback":
        amount = format_rate(r["rate_bp"])
    else:
        amount = fen_to_api(r["amount_fen"] or 0)
    # expires_at is the first moment it no longer works; people are told the last day it does.
    expires = local_date(r["expires_at"] - timedelta(microseconds=1)).isoformat() if r["expires_at"] else ""
    return {"reward_amount": amount, "reward_expires_on": expires,
            "reward_kind_label": str(KIND_LABELS.get(r["kind"], r["kind"]))}
