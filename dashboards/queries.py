"""SQL → rows for the dashboards."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboards.metrics import CohortMember
from growth.acquisition.models import AcquisitionChannel
from growth.investors.models import Investor
from growth.timeutil import local_day_bounds

FIRST_DAY, LAST_DAY = date(1, 1, 2), date(9999, 12, 30)


def funnel_cohort(*, session: Session, start: date, end: date) -> Iterator[CohortMember]:
    """Yield the investors whose registration (Asia/Shanghai date) lies in [start, end]."""
    # The calendar's first and last days have no UTC bounds in Python (OverflowError); nobody registered then.
    lo, _ = local_day_bounds(max(start, FIRST_DAY))
    _, hi = local_day_bounds(min(end, LAST_DAY))
    query = (
        select(Investor.registered_at, Investor.kyc_verified_at, Investor.card_bound_at, Investor.first_deposit_at,
               Investor.first_investment_at, Investor.repeat_investment_at, AcquisitionChannel.code,
               AcquisitionChannel.name)
        .outerjoin(AcquisitionChannel, AcquisitionChannel.id == Investor.channel_id)
        .where(Investor.registered_at >= lo, Investor.registered_at < hi)
        .execution_options(yield_per=5000)
    )
    for row in session.execute(query):
        yield CohortMember(tuple(row[:6]), row[6], row[7])


def default_range(today: date, days: int = 30) -> tuple[date, date]:
    """Return the last `days` business days up to today."""
    return today - timedelta(days=days - 1), today
