"""Campaign results across campaigns (活动效果): the SQL, grouped across campaigns, and the rows it assembles.

A campaign has a row when someone entered it on a business day (Asia/Shanghai) of the period. Its figures are
those of the entries of the period: members (entries, treated and holdout), members granted, the messages and
rewards of those entries (joined by the entry's cause, so a referral's referrer counts with its referee and an
earlier entry of a recurring campaign does not), and, per side, the people who invested after entering — an
investment started at or after the investor's first entry in the period and before the period's end — with
the amounts and annualised amounts (amount × term_days / 365). The statistics are `campaigns.results`'s pure
functions: each side's rate with its interval, the lift with its 95 % interval, the incremental annualised
amount and its ratio to the incentive cost.

Four queries whatever the number of campaigns (entries, investments, messages, rewards); sorting and paging
happen here, on the assembled rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from campaigns.definition import CAMPAIGN_TYPES
from campaigns.models import STATUSES, Campaign, CampaignMember
from campaigns.results import (
    PEOPLE_CHANNELS,
    Interval,
    annualised,
    incremental_annualised,
    lift,
    per_yuan_exact,
    rate_interval,
)
from channels.models import OutboxMessage
from growth.acquisition import rules as acquisition_rules
from growth.acquisition.rules import Period
from growth.errors import Invalid, Problem
from growth.investors.models import Investment
from growth.money import fen_to_api
from growth.rewards.models import Reward
from growth.timeutil import local_day_bounds

PER_PAGE, MAX_PER_PAGE = 50, 200
SORTS = ("members", "lift", "per_yuan", "incremental", "cost", "treated_rate", "entered", "name")
ORDERS = ("desc", "asc")
SENT = ("sent", "delivered")  # handed to the provider; `delivered` alone is a receipt that it arrived
FIRST_DAY, LAST_DAY = date(1, 1, 2), date(9999, 12, 30)


# ---------------------------------------------------------------- the query in the URL


@dataclass(frozen=True, slots=True)
class CampaignQuery:
    """Validated filters: the period of entry, a campaign type and status (None: all), sorting and the page."""

    period: Period
    type: str | None = None
    status: str | None = None
    sort: str = "members"
    order: str = "desc"
    page: int = 1
    per_page: int = PER_PAGE

    def url_args(self, **changes: Any) -> dict[str, Any]:
        """Return the query arguments that select these filters again (links, the CSV)."""
        args: dict[str, Any] = dict(self.period.url_args())
        if self.type:
            args["type"] = self.type
        if self.status:
            args["status"] = self.status
        args.update(sort=self.sort, order=self.order)
        args.update(changes)
        return args


def _positive(raw: str | None, name: str, default: int, most: int, problems: list[Problem]) -> int:
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= most:
        problems.append(Problem(name, "invalid_value", _l("%(name)s 应为 1 到 %(max)d 之间的整数。", name=name,
                                                           max=most)))
        return default
    return int(raw)


def parse_query(args: dict[str, str], *, today: date) -> CampaignQuery:
    """Read period (or start and end), type, status, sort, order, page and per_page; raise Invalid listing every
    problem."""
    problems: list[Problem] = []
    try:
        period = acquisition_rules.resolve_period(args.get("period"), args.get("start"), args.get("end"), today=today)
    except acquisition_rules.RuleError as err:
        problems.append(Problem("period", "invalid_period", err.message))
        period = acquisition_rules.default_period(today)
    kind = args.get("type") or None
    if kind is not None and kind not in CAMPAIGN_TYPES:
        problems.append(Problem("type", "invalid_value", _l("未知的活动类型：%(value)s", value=kind)))
    status = args.get("status") or None
    if status is not None and status not in STATUSES:
        problems.append(Problem("status", "invalid_value", _l("未知的活动状态：%(value)s", value=status)))
    sort = args.get("sort") or "members"
    if sort not in SORTS:
        problems.append(Problem("sort", "invalid_value", _l("排序字段应为以下之一：%(values)s",
                                                             values=", ".join(SORTS))))
    order = args.get("order") or "desc"
    if order not in ORDERS:
        problems.append(Problem("order", "invalid_value", _l("排序方向应为 asc 或 desc。")))
    page = _positive(args.get("page"), "page", 1, 1_000_000, problems)
    per_page = _positive(args.get("per_page"), "per_page", PER_PAGE, MAX_PER_PAGE, problems)
    if problems:
        raise Invalid(problems)
    return CampaignQuery(period, kind, status, sort, order, page, per_page)


# ---------------------------------------------------------------- figures


@dataclass(slots=True)
class SideFigures:
    """One side (treated or holdout) of a campaign's entries in the period, exact."""

    entries: int = 0
    people: int = 0  # distinct investors
    investors: int = 0  # of them, those who invested after entering
    amount_fen: int = 0
    amount_term_fen_days: int = 0  # Σ amount × term_days of those investments

    @property
    def rate(self) -> Interval | None:
        """Return the share of people who invested, with its 95 % interval."""
        return rate_interval(self.investors, self.people)

    @property
    def annualised(self) -> Fraction:
        """Return Σ amount × term_days / 365 in fen, exact."""
        return annualised(self.amount_term_fen_days)


@dataclass(slots=True)
class CampaignResult:
    """One campaign's results for the entries of a period."""

    id: int
    name: str
    type: str
    status: str
    first_entered: datetime | None = None
    last_entered: datetime | None = None
    treated: SideFigures = field(default_factory=SideFigures)
    holdout: SideFigures = field(default_factory=SideFigures)
    granted_members: int = 0
    messages: dict[str, int] = field(default_factory=dict)  # per status, people's channels only
    rewards: dict[str, int] = field(default_factory=dict)  # per current status
    cost_fen: int = 0  # the rewards' current cost (campaigns-api.md §2)

    @property
    def members(self) -> int:
        """Return every entry of the period."""
        return self.treated.entries + self.holdout.entries

    @property
    def messages_total(self) -> int:
        """Return every message to a person."""
        return sum(self.messages.values())

    @property
    def messages_sent(self) -> int:
        """Return the messages handed to a provider (sent or with a delivery receipt)."""
        return sum(self.messages.get(s, 0) for s in SENT)

    @property
    def messages_delivered(self) -> int:
        """Return the messages with a delivery receipt."""
        return self.messages.get("delivered", 0)

    @property
    def rewards_granted(self) -> int:
        """Return every reward granted, whatever became of it."""
        return sum(self.rewards.values())

    @property
    def rewards_redeemed(self) -> int:
        """Return the rewards used on an investment."""
        return self.rewards.get("redeemed", 0)

    @property
    def lift(self) -> Interval | None:
        """Return treated rate − holdout rate with its 95 % interval (None without both sides)."""
        t, h = self.treated, self.holdout
        return lift(t.investors, t.people, h.investors, h.people)

    @property
    def incremental(self) -> Fraction | None:
        """Return the incremental annualised investment in fen, exact (None without both sides)."""
        t, h = self.treated, self.holdout
        return incremental_annualised(t.amount_term_fen_days, t.people, h.amount_term_fen_days, h.people)

    @property
    def per_yuan(self) -> Fraction | None:
        """Return the incremental annualised investment per yuan of incentive cost (None without a cost)."""
        return per_yuan_exact(self.incremental, self.cost_fen)


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """Return the UTC [lo, hi) instants of the Asia/Shanghai days start..end."""
    lo, _ = local_day_bounds(max(start, FIRST_DAY))
    _, hi = local_day_bounds(min(end, LAST_DAY))
    return lo, hi


def campaign_results(*, session: Session, start: date, end: date, type: str | None = None,
                     status: str | None = None) -> list[CampaignResult]:
    """Return every campaign with an entry on a Shanghai day in [start, end] (of the type and status, if given),
    in id order: four grouped queries however many campaigns there are."""
    lo, hi = _bounds(start, end)
    m, c = CampaignMember, Campaign
    where = [m.entered_at >= lo, m.entered_at < hi]
    if type is not None:
        where.append(c.type == type)
    if status is not None:
        where.append(c.status == status)

    def entries() -> Any:
        return select().select_from(m).join(c, c.id == m.campaign_id).where(*where)

    by_id: dict[int, CampaignResult] = {}
    for cid, name, kind, state, holdout, n, people, granted, first, last in session.execute(
            entries().add_columns(c.id, c.name, c.type, c.status, m.holdout, func.count(),
                                  func.count(func.distinct(m.investor_id)),
                                  func.sum(case((m.rewards_granted > 0, 1), else_=0)),
                                  func.min(m.entered_at), func.max(m.entered_at))
            .group_by(c.id, c.name, c.type, c.status, m.holdout)):
        row = by_id.setdefault(cid, CampaignResult(cid, name, kind, state))
        side = row.holdout if holdout else row.treated
        side.entries, side.people = int(n), int(people)
        row.granted_members += int(granted or 0)
        row.first_entered = first if row.first_entered is None else min(row.first_entered, first)
        row.last_entered = last if row.last_entered is None else max(row.last_entered, last)
    if not by_id:
        return []

    # Each investor's first entry in the period, per campaign and side: investments from then on count.
    first = (entries().add_columns(m.campaign_id, m.investor_id, m.holdout, func.min(m.entered_at).label("at"))
             .group_by(m.campaign_id, m.investor_id, m.holdout).subquery())
    amount = func.coalesce(Investment.amount_fen, 0)
    for cid, holdout, investors, fen, fen_days in session.execute(
            select(first.c.campaign_id, first.c.holdout, func.count(func.distinct(Investment.investor_id)),
                   func.sum(amount), func.sum(amount * func.coalesce(Investment.term_days, 0)))
            .join(Investment, and_(Investment.investor_id == first.c.investor_id,
                                   Investment.started_at >= first.c.at, Investment.started_at < hi))
            .group_by(first.c.campaign_id, first.c.holdout)):
        side = by_id[cid].holdout if holdout else by_id[cid].treated
        # SUM over BIGINT is NUMERIC on PostgreSQL: back to ints of fen.
        side.investors, side.amount_fen, side.amount_term_fen_days = int(investors), int(fen or 0), int(fen_days or 0)

    # The period's entries by cause: a run's members share theirs, so DISTINCT keeps each message once.
    causes = entries().add_columns(m.campaign_id, m.cause).distinct().subquery()
    o = OutboxMessage
    for cid, state, n in session.execute(
            select(o.campaign_id, o.status, func.count())
            .join(causes, and_(causes.c.campaign_id == o.campaign_id, causes.c.cause == o.cause))
            .where(o.channel.in_(PEOPLE_CHANNELS)).group_by(o.campaign_id, o.status)):
        assert cid is not None  # joined to a member's campaign
        by_id[cid].messages[state] = int(n)
    for cid, state, n, fen in session.execute(
            select(Reward.campaign_id, Reward.status, func.count(), func.sum(Reward.cost_fen))
            .join(causes, and_(causes.c.campaign_id == Reward.campaign_id, causes.c.cause == Reward.cause))
            .group_by(Reward.campaign_id, Reward.status)):
        assert cid is not None  # joined to a member's campaign
        row = by_id[cid]
        row.rewards[state] = int(n)
        row.cost_fen += int(fen or 0)
    return [by_id[cid] for cid in sorted(by_id)]


# ---------------------------------------------------------------- sorting, paging, totals


def _sort_value(row: CampaignResult, sort: str) -> Any:
    match sort:
        case "members":
            return row.members
        case "lift":
            return None if row.lift is None else row.lift.value
        case "per_yuan":
            return row.per_yuan
        case "incremental":
            return row.incremental
        case "cost":
            return row.cost_fen
        case "treated_rate":
            rate = row.treated.rate
            return None if rate is None else rate.value
        case "entered":
            return row.last_entered
        case _:
            return row.name


def ordered(rows: Iterable[CampaignResult], sort: str, order: str) -> list[CampaignResult]:
    """Return the rows sorted by a column; rows without a value (no holdout, no cost) last either way, then id."""
    known = [(v, r) for r in rows if (v := _sort_value(r, sort)) is not None]
    unknown = [r for r in rows if _sort_value(r, sort) is None]
    known.sort(key=lambda pair: pair[1].id)
    known.sort(key=lambda pair: pair[0], reverse=order == "desc")
    return [r for _v, r in known] + sorted(unknown, key=lambda r: r.id)


def page_of(rows: list[CampaignResult], page: int, per_page: int) -> list[CampaignResult]:
    """Return one page of rows (1-based; past the end: none)."""
    return rows[(page - 1) * per_page: page * per_page]


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums over the campaigns of the filter (every page): counts, cost and the incremental amounts."""

    campaigns: int
    members: int
    cost_fen: int
    incremental: Fraction | None  # Σ over campaigns with both sides
    per_yuan: Fraction | None  # that sum over the cost of those same campaigns


def totals(rows: list[CampaignResult]) -> Totals:
    """Return the totals of every row."""
    compared = [r for r in rows if r.incremental is not None]
    incremental = sum((r.incremental for r in compared if r.incremental is not None), Fraction(0)) if compared \
        else None
    return Totals(len(rows), sum(r.members for r in rows), sum(r.cost_fen for r in rows), incremental,
                  per_yuan_exact(incremental, sum(r.cost_fen for r in compared)))


# ---------------------------------------------------------------- the API's shape and the CSV


def round_fen(value: Fraction) -> int:
    """Round an exact amount of fen to a whole fen, half away from zero."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def money(value: Fraction | int | None) -> str | None:
    """Format fen (exact or whole) as the API's yuan string, rounded half away from zero: "-1234.50"."""
    if value is None:
        return None
    return fen_to_api(round_fen(Fraction(value)))


def ratio(value: Fraction | float | None, places: int = 4) -> str | None:
    """Format a ratio as a decimal string rounded half away from zero to `places`: "0.0523"."""
    if value is None:
        return None
    exact = Decimal(value.numerator) / Decimal(value.denominator) if isinstance(value, Fraction) else Decimal(value)
    return str(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def _interval(value: Interval | None) -> dict[str, str | None] | None:
    if value is None:
        return None
    return {"value": ratio(value.value), "low": ratio(value.low), "high": ratio(value.high)}


def _side(side: SideFigures) -> dict[str, Any]:
    return {"entries": side.entries, "people": side.people, "investors": side.investors,
            "rate": _interval(side.rate), "amount": fen_to_api(side.amount_fen),
            "annualised_amount": money(side.annualised)}


def result_json(row: CampaignResult) -> dict[str, Any]:
    """Return one campaign's row as the API answers it."""
    return {
        "id": row.id, "name": row.name, "type": row.type, "status": row.status,
        "first_entered_at": row.first_entered.isoformat() if row.first_entered else None,
        "last_entered_at": row.last_entered.isoformat() if row.last_entered else None,
        "members": row.members, "treated": row.treated.entries, "holdout": row.holdout.entries,
        "granted": row.granted_members,
        "messages": {"total": row.messages_total, "sent": row.messages_sent, "delivered": row.messages_delivered},
        "rewards": {"granted": row.rewards_granted, "redeemed": row.rewards_redeemed, "cost": fen_to_api(row.cost_fen)},
        "invested": {"treated": _side(row.treated), "holdout": _side(row.holdout)},
        "lift": _interval(row.lift),
        "incremental_annualised": money(row.incremental),
        "incremental_annualised_per_yuan": ratio(row.per_yuan),
    }


def totals_json(total: Totals) -> dict[str, Any]:
    """Return the totals as the API answers them."""
    return {"campaigns": total.campaigns, "members": total.members, "cost": fen_to_api(total.cost_fen),
            "incremental_annualised": money(total.incremental),
            "incremental_annualised_per_yuan": ratio(total.per_yuan)}


CSV_COLUMNS = (
    "id", "name", "type", "status", "members", "treated", "holdout", "granted", "messages", "messages_sent",
    "messages_delivered", "rewards_granted", "rewards_redeemed", "incentive_cost",
    "treated_people", "treated_investors", "treated_rate", "treated_amount", "treated_annualised",
    "holdout_people", "holdout_investors", "holdout_rate", "holdout_amount", "holdout_annualised",
    "lift", "lift_low", "lift_high", "incremental_annualised", "incremental_annualised_per_yuan",
)


def csv_row(row: CampaignResult) -> list[object]:
    """Return one campaign as a CSV row of `CSV_COLUMNS` (empty where the API says null)."""
    d = result_json(row)
    t, h = d["invested"]["treated"], d["invested"]["holdout"]
    lift_ = d["lift"] or {}
    values: list[object] = [
        d["id"], d["name"], d["type"], d["status"], d["members"], d["treated"], d["holdout"], d["granted"],
        d["messages"]["total"], d["messages"]["sent"], d["messages"]["delivered"], d["rewards"]["granted"],
        d["rewards"]["redeemed"], d["rewards"]["cost"],
        t["people"], t["investors"], (t["rate"] or {}).get("value"), t["amount"], t["annualised_amount"],
        h["people"], h["investors"], (h["rate"] or {}).get("value"), h["amount"], h["annualised_amount"],
        lift_.get("value"), lift_.get("low"), lift_.get("high"), d["incremental_annualised"],
        d["incremental_annualised_per_yuan"],
    ]
    return ["" if v is None else v for v in values]
