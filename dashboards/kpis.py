"""Home KPIs: registrations, first investors, volume invested and incentive spend per Asia/Shanghai day, against the
previous period of the same length (the queries, and the plain arithmetic over their rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from growth.investors.models import Investment, Investor
from growth.money import fen_to_api
from growth.rewards.models import Reward
from growth.timeutil import local_date, local_day_bounds

# The one list of the strip's periods, with their labels; rolling periods end today (Asia/Shanghai).
KPI_PERIODS = {"today": _l("今天"), "7d": _l("近 7 天"), "30d": _l("近 30 天"), "this_month": _l("本月")}
DEFAULT_KPI_PERIOD = "7d"
_ROLLING = {"today": 1, "7d": 7, "30d": 30}

# The four figures, in the strip's order, with their labels; money ones are integer fen.
KPI_LABELS = {
    "registrations": _l("注册"),
    "first_investors": _l("首投人数"),
    "volume": _l("投资金额"),
    "incentive_spend": _l("激励支出"),
}
KPI_KEYS = tuple(KPI_LABELS)
MONEY_KPIS = frozenset({"volume", "incentive_spend"})


class KpiError(ValueError):
    """A period the strip does not offer."""


@dataclass(frozen=True, slots=True)
class KpiPeriod:
    """The Shanghai days start..end (end = today) up to `now`, and the same length of time just before them.

    The current period runs from start's midnight to now, so today counts as far as it has gone; the previous
    period is as long to the microsecond (it ends at the same time of day `days` days earlier), so a morning
    is never compared with a whole day.
    """

    key: str
    start: date
    end: date
    now: datetime

    @property
    def days(self) -> int:
        """Return how many Shanghai days the period spans."""
        return (self.end - self.start).days + 1

    @property
    def lo(self) -> datetime:
        return local_day_bounds(self.start)[0]

    @property
    def hi(self) -> datetime:
        return min(self.now, local_day_bounds(self.end)[1])

    @property
    def previous_start(self) -> date:
        return self.start - timedelta(days=self.days)

    @property
    def previous_end(self) -> date:
        return self.end - timedelta(days=self.days)

    @property
    def previous_lo(self) -> datetime:
        return local_day_bounds(self.previous_start)[0]

    @property
    def previous_hi(self) -> datetime:
        return self.previous_lo + (self.hi - self.lo)

    def day_list(self) -> list[date]:
        """Return the current period's days, oldest first."""
        return [self.start + timedelta(days=i) for i in range(self.days)]

    def previous_day_list(self) -> list[date]:
        """Return the previous period's days, oldest first."""
        return [self.previous_start + timedelta(days=i) for i in range(self.days)]


def kpi_period(key: str | None, *, now: datetime) -> KpiPeriod:
    """Return the period a key names at `now` (aware UTC); no key is the default; raise KpiError for others."""
    key = (key or "").strip() or DEFAULT_KPI_PERIOD
    today = local_date(now)
    if key in _ROLLING:
        return KpiPeriod(key, today - timedelta(days=_ROLLING[key] - 1), today, now)
    if key == "this_month":
        return KpiPeriod(key, today.replace(day=1), today, now)
    raise KpiError(key)


@dataclass(slots=True)
class KpiDay:
    """One Shanghai day's figures (fen for money)."""

    day: date
    registrations: int = 0
    first_investors: int = 0
    volume: int = 0
    incentive_spend: int = 0

    def value(self, key: str) -> int:
        return int(getattr(self, key))


@dataclass(frozen=True, slots=True)
class Kpi:
    """One figure for the period against the previous one."""

    key: str
    value: int
    previous: int

    @property
    def delta(self) -> int:
        return self.value - self.previous

    @property
    def change(self) -> Fraction | None:
        """Return the change as an exact fraction of the previous value; None when there was nothing before."""
        return Fraction(self.delta, self.previous) if self.previous else None

    @property
    def money(self) -> bool:
        return self.key in MONEY_KPIS


@dataclass(frozen=True, slots=True)
class KpiReport:
    """The strip's figures and the daily rows they sum."""

    period: KpiPeriod
    days: list[KpiDay]
    previous_days: list[KpiDay]
    kpis: list[Kpi] = field(default_factory=list)

    def kpi(self, key: str) -> Kpi:
        return next(k for k in self.kpis if k.key == key)


# ---------------------------------------------------------------- queries (four, each one index range)

def _daily(session: Session, column: InstrumentedAttribute[Any], measure: Any, period: KpiPeriod,
           days: list[date]) -> dict[int, int]:
    """Return {index in days: Σ measure} over both periods' ranges (a measure per row: 1 counts), in one grouped
    query reading `column`'s index."""
    # Day i begins at starts[i]; a row's day is the first i whose next day starts after it. The bucket is a
    # CASE of instants, so the Shanghai calendar comes from zoneinfo, not from each database's time functions.
    starts = [local_day_bounds(d)[0] for d in days[1:]]  # both periods: always two days or more
    bucket = case(*[(column < at, i) for i, at in enumerate(starts)], else_=len(starts))
    in_range = or_(and_(column >= period.previous_lo, column < period.previous_hi),
                   and_(column >= period.lo, column < period.hi))
    # Grouped in an outer query: PostgreSQL will not match a GROUP BY CASE with the SELECT's own bound copies.
    inner = select(bucket.label("d"), measure.label("m")).where(in_range).subquery()
    rows = session.execute(select(inner.c.d, func.coalesce(func.sum(inner.c.m), 0)).group_by(inner.c.d))
    return {int(d): int(m or 0) for d, m in rows}


def kpi_report(*, session: Session, period: KpiPeriod) -> KpiReport:
    """Return the period's and the previous period's daily figures and the KPIs (four aggregate queries).

    registrations: investors registered (Shanghai day of `registered_at`); first investors: investors whose first
    investment (`first_investment_at`) falls in it; volume: Σ the amounts of investments started in it, whatever
    became of them; incentive spend: Σ the current cost (the ledger's rule: cash and experience funds, vouchers and
    rate boosts when redeemed, cashback unless clawed back) of the rewards granted in it.
    """
    days = period.previous_day_list() + period.day_list()
    figures = {
        "registrations": _daily(session, Investor.registered_at, literal(1), period, days),
        "first_investors": _daily(session, Investor.first_investment_at, literal(1), period, days),
        "volume": _daily(session, Investment.started_at, func.coalesce(Investment.amount_fen, 0), period, days),
        "incentive_spend": _daily(session, Reward.granted_at, Reward.cost_fen, period, days),
    }
    rows = [KpiDay(day, **{key: figures[key].get(i, 0) for key in KPI_KEYS}) for i, day in enumerate(days)]
    return build_report(period, rows[period.days:], rows[:period.days])


def build_report(period: KpiPeriod, days: list[KpiDay], previous_days: list[KpiDay]) -> KpiReport:
    """Return the report of daily rows: each KPI is the sum of its period's days."""
    kpis = [Kpi(key, sum(d.value(key) for d in days), sum(d.value(key) for d in previous_days)) for key in KPI_KEYS]
    return KpiReport(period, days, previous_days, kpis)


# ---------------------------------------------------------------- shapes (JSON, CSV)

def change_text(change: Fraction | None) -> str | None:
    """Return a change as the API's fraction string with 4 decimals, half-up ("0.1250", "-1.0000"), or None."""
    if change is None:
        return None
    value = Decimal(change.numerator) / Decimal(change.denominator)
    return str(value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def _shown(key: str, value: int) -> int | str:
    return fen_to_api(value) if key in MONEY_KPIS else value


def day_json(day: KpiDay) -> dict[str, Any]:
    """Return one day's figures as the API shows them (money as yuan strings)."""
    return {"day": day.day.isoformat(), **{key: _shown(key, day.value(key)) for key in KPI_KEYS}}


def report_json(report: KpiReport) -> dict[str, Any]:
    """Return the report in the JSON API's shape."""
    p = report.period
    return {
        "period": p.key, "start": p.start.isoformat(), "end": p.end.isoformat(), "as_of": p.hi.isoformat(),
        "previous_start": p.previous_start.isoformat(), "previous_end": p.previous_end.isoformat(),
        "previous_as_of": p.previous_hi.isoformat(),
        "kpis": [{"key": k.key, "value": _shown(k.key, k.value), "previous": _shown(k.key, k.previous),
                  "delta": _shown(k.key, k.delta), "change": change_text(k.change)} for k in report.kpis],
        "days": [day_json(d) for d in report.days],
        "previous_days": [day_json(d) for d in report.previous_days],
    }


CSV_COLUMNS = ("period", "day", *KPI_KEYS)


def report_csv_rows(report: KpiReport) -> list[list[object]]:
    """Return the daily figures of both periods as CSV rows (money as yuan strings)."""
    rows: list[list[object]] = [list(CSV_COLUMNS)]
    for name, days in (("current", report.days), ("previous", report.previous_days)):
        rows += [[name, d.day.isoformat(), *(_shown(key, d.value(key)) for key in KPI_KEYS)] for d in days]
    return rows
