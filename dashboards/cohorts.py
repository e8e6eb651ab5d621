"""Cohorts: repeat-investment retention by registration month, and re-investment at maturity (复投).

Two parts. The pure part (plain data in, plain data out, no database) builds the tables from counts; the SQL
part below it counts with GROUP BY in a fixed number of queries, whatever the size of the book.

Months are Asia/Shanghai calendar months, held as integers (`year × 12 + month − 1`) so an offset is a
subtraction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

from sqlalchemy import ColumnElement, and_, case, distinct, exists, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Integer

from dashboards.metrics import ratio_text
from growth.acquisition.models import AcquisitionChannel
from growth.acquisition.projection import ORGANIC_CHANNEL
from growth.db import within_days_after
from growth.investors.models import Investment, Investor
from growth.money import fen_to_api
from growth.timeutil import local_day_bounds

BASES = ("investors", "registrations")  # what a retention cell is a share of
MAX_MONTHS = 60  # the longest range of registration months one view reads
DEFAULT_MONTHS = 12
DEFAULT_DAYS = 7
MAX_DAYS = 365

# ---------------------------------------------------------------------------------------------- pure part


def month_index(day: date) -> int:
    """Return a month as an integer: year × 12 + month − 1."""
    return day.year * 12 + day.month - 1


def month_start(index: int) -> date:
    """Return the first day of the month `index`."""
    return date(index // 12, index % 12 + 1, 1)


def month_key(index: int) -> str:
    """Return a month as "YYYY-MM"."""
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_bounds(first: int, last: int) -> tuple[datetime, datetime]:
    """Return the UTC [lo, hi) instants of the Shanghai months first..last."""
    lo, _ = local_day_bounds(month_start(first))
    hi, _ = local_day_bounds(month_start(last + 1))
    return lo, hi


@dataclass(frozen=True, slots=True)
class Cell:
    """One month of one cohort: how many of its investors invested in it, and that as a share of the base."""

    offset: int
    month: int
    investors: int
    rate: Fraction | None
    incomplete: bool  # the current month: more may still invest


@dataclass(frozen=True, slots=True)
class Cohort:
    """A registration month: its size, its first investors, and one cell per month since, None when not reached."""

    month: int
    registrations: int
    first_investors: int
    base: int
    cells: tuple[Cell | None, ...]


@dataclass(frozen=True, slots=True)
class Retention:
    """The retention table: cohorts oldest first, columns M0 … M(width − 1)."""

    base: str
    current: int
    width: int
    cohorts: tuple[Cohort, ...]

    @property
    def empty(self) -> bool:
        """Return whether no cohort has anybody in it."""
        return not any(c.registrations for c in self.cohorts)


def retention(sizes: dict[int, tuple[int, int]], cells: dict[tuple[int, int], int], *, first: int, last: int,
              current: int, base: str) -> Retention:
    """Build the retention table from per-cohort (registrations, first investors) and per-(cohort, offset) counts.

    Every month first..last is a row, empty ones included; a cell after the current month is None (not yet
    reachable), the current month's cells are incomplete.
    """
    width = max(current - first + 1, 1)
    rows = []
    for month in range(first, last + 1):
        registrations, investors = sizes.get(month, (0, 0))
        size = investors if base == "investors" else registrations
        row: list[Cell | None] = []
        for offset in range(width):
            at = month + offset
            if at > current:
                row.append(None)
                continue
            n = cells.get((month, offset), 0)
            row.append(Cell(offset, at, n, Fraction(n, size) if size else None, at == current))
        rows.append(Cohort(month, registrations, investors, size, tuple(row)))
    return Retention(base, current, width, tuple(rows))


@dataclass(slots=True)
class MaturityMonth:
    """Investments that matured in one month and what their investors re-invested within the window."""

    month: int
    matured: int = 0
    principal_fen: int = 0
    investors: int = 0
    reinvested_investors: int = 0
    reinvestments: int = 0
    reinvested_fen: int = 0
    incomplete: bool = False  # some maturities' windows are still open

    @property
    def rate_by_count(self) -> Fraction | None:
        """Return the share of investors with a maturity who re-invested."""
        return Fraction(self.reinvested_investors, self.investors) if self.investors else None

    @property
    def rate_by_amount(self) -> Fraction | None:
        """Return the amount re-invested per yuan of principal matured."""
        return Fraction(self.reinvested_fen, self.principal_fen) if self.principal_fen else None


@dataclass(frozen=True, slots=True)
class Reinvestment:
    """Re-investment at maturity, one row per month of the range, and their sum."""

    days: int
    months: tuple[MaturityMonth, ...]
    total: MaturityMonth = field(default_factory=lambda: MaturityMonth(-1))

    @property
    def empty(self) -> bool:
        """Return whether nothing matured in the range."""
        return not self.total.matured


def reinvestment(matured: dict[int, tuple[int, int, int]], reinvested: dict[int, tuple[int, int, int]], *,
                 first: int, last: int, days: int, now: datetime) -> Reinvestment:
    """Build the re-investment rows from per-month (matured, principal, investors) and (investors, count, fen)."""
    rows = []
    total = MaturityMonth(-1)
    for month in range(first, last + 1):
        row = MaturityMonth(month)
        row.matured, row.principal_fen, row.investors = matured.get(month, (0, 0, 0))
        row.reinvested_investors, row.reinvestments, row.reinvested_fen = reinvested.get(month, (0, 0, 0))
        # A maturity on the month's last instant has its window open until days × 24 h later.
        row.incomplete = month_bounds(month, month)[1] + timedelta(days=days) > now
        for name in ("matured", "principal_fen", "investors", "reinvested_investors", "reinvestments",
                     "reinvested_fen"):
            setattr(total, name, getattr(total, name) + getattr(row, name))
        total.incomplete = total.incomplete or row.incomplete
        rows.append(row)
    return Reinvestment(days, tuple(rows), total)


def _rate(value: Fraction | None) -> str | None:
    return ratio_text(value)


def retention_json(table: Retention) -> list[dict[str, Any]]:
    """Return the cohorts as the API answers them (rates 4 decimals, unreachable cells null)."""
    return [{
        "month": month_key(c.month), "registrations": c.registrations, "first_investors": c.first_investors,
        "base": c.base,
        "cells": [None if cell is None else {"offset": cell.offset, "month": month_key(cell.month),
                                             "investors": cell.investors, "rate": _rate(cell.rate),
                                             "incomplete": cell.incomplete} for cell in c.cells],
    } for c in table.cohorts]


def maturity_json(row: MaturityMonth) -> dict[str, Any]:
    """Return one maturity month as the API answers it (money as "1234.00", rates 4 decimals)."""
    return {
        "month": None if row.month < 0 else month_key(row.month), "matured": row.matured,
        "principal": fen_to_api(row.principal_fen), "investors": row.investors,
        "reinvested_investors": row.reinvested_investors, "reinvestments": row.reinvestments,
        "reinvested_amount": fen_to_api(row.reinvested_fen), "rate_by_count": _rate(row.rate_by_count),
        "rate_by_amount": _rate(row.rate_by_amount), "incomplete": row.incomplete,
    }


def percent_text(value: Fraction | None) -> str:
    """Format a share as "12.3%" (one decimal), "—" without a base."""
    if value is None:
        return "—"
    return f"{float(value) * 100:.1f}%"


# ---------------------------------------------------------------------------------------------- SQL part


class local_month(FunctionElement[int]):  # lower case: it reads as the SQL it renders
    """SQL for the Asia/Shanghai month of a UTC timestamp, as year × 12 + month − 1.

    SQLite shifts its UTC text by +8 hours: Shanghai has kept UTC+8 without daylight saving since 1991, so
    the months agree with PostgreSQL's time-zone rule for every date the platform has.
    """

    type = Integer()
    inherit_cache = True
    name = "local_month"


@compiles(local_month, "sqlite")
def _local_month_sqlite(element: local_month, compiler: Any, **kw: Any) -> str:
    at = compiler.process(list(element.clauses)[0], **kw)
    return (f"(CAST(strftime('%Y', {at}, '+8 hours') AS INTEGER) * 12"
            f" + CAST(strftime('%m', {at}, '+8 hours') AS INTEGER) - 1)")


@compiles(local_month, "postgresql")
def _local_month_postgresql(element: local_month, compiler: Any, **kw: Any) -> str:
    at = compiler.process(list(element.clauses)[0], **kw)
    local = f"({at} AT TIME ZONE 'Asia/Shanghai')"
    return f"(CAST(EXTRACT(YEAR FROM {local}) AS INTEGER) * 12 + CAST(EXTRACT(MONTH FROM {local}) AS INTEGER) - 1)"


def channels(*, session: Session) -> list[tuple[str, str]]:
    """Return every acquisition channel as (code, name), by code, for the filter; organic is always one."""
    found = [(code, name) for code, name in session.execute(
        select(AcquisitionChannel.code, AcquisitionChannel.name).order_by(AcquisitionChannel.code))]
    if all(code != ORGANIC_CHANNEL[0] for code, _name in found):  # investors without a channel are organic
        found = sorted([*found, ORGANIC_CHANNEL[:2]])
    return found


def _channel_condition(code: str | None) -> ColumnElement[bool] | None:
    """Return the condition on Investor for one channel (organic includes investors without one)."""
    if code is None:
        return None
    # A subquery rather than a look-up first: the number of statements stays the same with a filter.
    ids = select(AcquisitionChannel.id).where(AcquisitionChannel.code == code)
    condition: ColumnElement[bool] = Investor.channel_id.in_(ids)
    if code == ORGANIC_CHANNEL[0]:
        condition = or_(condition, Investor.channel_id.is_(None))
    return condition


def retention_counts(*, session: Session, first: int, last: int, channel: str | None,
                     now: datetime) -> tuple[dict[int, tuple[int, int]], dict[tuple[int, int], int]]:
    """Return per registration month (registrations, first investors) and per (month, offset) active investors.

    Two aggregate queries. An investor is active in a month when one of their
    investments started in it; one dated before its investor's registration counts in the registration month.
    """
    lo, hi = month_bounds(first, last)
    where = [Investor.registered_at >= lo, Investor.registered_at < hi]
    condition = _channel_condition(channel)
    if condition is not None:
        where.append(condition)
    cohort = local_month(Investor.registered_at)
    sizes = {int(m): (int(n), int(firsts or 0)) for m, n, firsts in session.execute(
        select(cohort, func.count(), func.count(Investor.first_investment_at)).where(*where).group_by(cohort))}
    started = case((Investment.started_at < Investor.registered_at, Investor.registered_at),
                   else_=Investment.started_at)
    # One row per (investor, month active) first, so the count is of people, not investments.
    active = (
        select(cohort.label("cohort"), (local_month(started) - cohort).label("offset"),
               Investment.investor_id.label("investor_id"))
        .join(Investment, Investment.investor_id == Investor.id)
        .where(*where, Investment.started_at.is_not(None), Investment.started_at <= now)
        .distinct().subquery()
    )
    cells = {(int(m), int(k)): int(n) for m, k, n in session.execute(
        select(active.c.cohort, active.c.offset, func.count()).group_by(active.c.cohort, active.c.offset))}
    return sizes, cells


def reinvestment_counts(*, session: Session, first: int, last: int, days: int, channel: str | None,
                        ) -> tuple[dict[int, tuple[int, int, int]], dict[int, tuple[int, int, int]]]:
    """Return per maturity month (matured, principal, investors) and (re-investing investors, count, amount).

    An investment matured when its `investment.matured` event says so (`matured_at`, Shanghai month). A new
    investment of the same investor started at most `days` × 24 h after a maturity is a re-investment of
    the latest maturity before it, so money is never counted for two maturities. Two aggregate queries,
    driven by the index on `matured_at`, each new investment found by investor.
    """
    lo, hi = month_bounds(first, last)
    matured = aliased(Investment, name="matured")
    where: list[ColumnElement[bool]] = [matured.matured_at >= lo, matured.matured_at < hi]
    condition = _channel_condition(channel)
    month = local_month(matured.matured_at)

    def scoped(query: Any) -> Any:
        if condition is None:
            return query
        return query.join(Investor, Investor.id == matured.investor_id).where(condition)

    totals = {int(m): (int(n), int(fen or 0), int(people)) for m, n, fen, people in session.execute(
        scoped(select(month, func.count(), func.sum(matured.matured_principal_fen),
                      func.count(distinct(matured.investor_id)))
               .select_from(matured).where(*where)).group_by(month))}
    new, later = aliased(Investment, name="new"), aliased(Investment, name="later")
    # A later maturity of the investor, still before the new investment, takes the new investment instead.
    taken_later = exists(select(later.id).where(
        later.investor_id == matured.investor_id, later.matured_at <= new.started_at,
        or_(later.matured_at > matured.matured_at,
            and_(later.matured_at == matured.matured_at, later.id > matured.id))))
    again = {int(m): (int(people), int(n), int(fen or 0)) for m, people, n, fen in session.execute(
        scoped(select(month, func.count(distinct(matured.investor_id)), func.count(distinct(new.id)),
                      func.sum(new.amount_fen))
               .select_from(matured)
               .join(new, and_(new.investor_id == matured.investor_id, new.id != matured.id,
                               new.started_at >= matured.matured_at,
                               within_days_after(new.started_at, matured.matured_at, days)))
               .where(*where, ~taken_later)).group_by(month))}
    return totals, again


def month_range_default(current: int, months: int = DEFAULT_MONTHS) -> tuple[int, int]:
    """Return the last `months` months up to the current one."""
    return current - months + 1, current


def column_labels(width: int) -> Sequence[str]:
    """Return the column heads M0 … M(width − 1)."""
    return [f"M{k}" for k in range(width)]
