"""Segments: a campaign's audience (spec §2 `audience.all`) compiled to ONE SQL query over investors.

Every condition becomes a WHERE clause on `investors` (an EXISTS for investments, consent and tags), so
counting an audience and streaming it are single queries, whatever its size; `stream` reads it in id
order, a chunk at a time (keyset, never the whole list in memory). Business dates are Asia/Shanghai:
"registered 0–7 days ago" and "matures within 7 days" count calendar days there, whatever the server's
clock zone. Only registered investors are members (an investor the log knows only from a later event
has no registration to count from).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, not_, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session

from campaigns.definition import (
    Audience,
    ChannelCondition,
    Condition,
    ConsentCondition,
    CountCondition,
    InactiveCondition,
    MaturityCondition,
    MilestoneCondition,
    MoneyCondition,
    RegisteredAtCondition,
    RegisteredDaysAgoCondition,
    TagCondition,
)
from channels.models import ConsentState
from growth.acquisition.models import AcquisitionChannel
from growth.db import seconds_between
from growth.investors.models import Investment, Investor, InvestorTag
from growth.timeutil import as_utc, local_date, local_day_bounds

CHUNK = 5_000
DAY = 86_400


@dataclass(frozen=True, slots=True)
class Member:
    """One investor of an audience, with what a run needs to key and route its work."""

    investor_id: int
    user_id: str


def _day_start(day: date) -> datetime:
    return local_day_bounds(day)[0]


def _range(column: ColumnElement[int] | InstrumentedAttribute[int], op: str,
           value: int | tuple[int, int]) -> ColumnElement[bool]:
    if isinstance(value, tuple):
        return and_(column >= value[0], column <= value[1])
    return column >= value if op == "gte" else column <= value


def _milestone(condition: MilestoneCondition) -> ColumnElement[bool]:
    at = getattr(Investor, f"{condition.value}_at")
    reached: ColumnElement[bool] = at.is_not(None)
    if condition.within_days is not None:
        # The funnel's rule: at most N × 24 h after registering (a step dated before it counts).
        reached = and_(reached, seconds_between(at, Investor.registered_at) <= condition.within_days * DAY)
    return reached if condition.op == "reached" else not_(reached)


def clause(condition: Condition, *, now: datetime) -> ColumnElement[bool]:
    """Return the WHERE clause of one audience condition, evaluated as of `now`."""
    today = local_date(now)
    match condition:
        case ChannelCondition():
            codes = select(AcquisitionChannel.id).where(AcquisitionChannel.code.in_(condition.value))
            if condition.op == "in":
                return Investor.channel_id.in_(codes)
            return or_(Investor.channel_id.is_(None), Investor.channel_id.not_in(codes))
        case RegisteredAtCondition():
            first, last = condition.value
            return and_(Investor.registered_at >= _day_start(first),
                        Investor.registered_at < _day_start(last + timedelta(days=1)))
        case RegisteredDaysAgoCondition():
            fewest, most = condition.value
            return and_(Investor.registered_at >= _day_start(today - timedelta(days=most)),
                        Investor.registered_at < _day_start(today - timedelta(days=fewest - 1)))
        case MilestoneCondition():
            return _milestone(condition)
        case CountCondition():
            return _range(Investor.investment_count, condition.op, condition.value)
        case MoneyCondition():
            column = Investor.holdings_fen if condition.field == "holdings" else Investor.investment_total_fen
            return _range(column, condition.op, condition.value)
        case MaturityCondition():
            return exists().where(Investment.investor_id == Investor.id, Investment.status == "active",
                                  Investment.maturity_date >= today,
                                  Investment.maturity_date <= today + timedelta(days=condition.value))
        case InactiveCondition():
            last_seen = func.coalesce(Investor.last_activity_at, Investor.registered_at)
            return last_seen < as_utc(now) - timedelta(days=condition.value)
        case ConsentCondition():
            return exists().where(ConsentState.investor_id == Investor.id, ConsentState.channel == condition.value,
                                  ConsentState.granted.is_(True))
        case TagCondition():
            return exists().where(InvestorTag.investor_id == Investor.id, InvestorTag.tag == condition.value)
    return false()  # unreachable: the schema admits no other condition


def where(audience: Audience, *, now: datetime) -> ColumnElement[bool]:
    """Return the WHERE clause of a whole audience (every condition must hold; none: every registered investor)."""
    return and_(Investor.registered_at.is_not(None), true(), *(clause(c, now=now) for c in audience.all))


def members_query(audience: Audience, *, now: datetime) -> Select:
    """Return the audience as one query of (investor id, platform user id), in id order."""
    return select(Investor.id, Investor.platform_user_id).where(where(audience, now=now)).order_by(Investor.id)


def count(audience: Audience, *, session: Session, now: datetime) -> int:
    """Return how many investors the audience holds now."""
    return session.scalar(select(func.count()).select_from(Investor).where(where(audience, now=now))) or 0


def stream(audience: Audience, *, session: Session, now: datetime, after_id: int = 0,
           chunk: int = CHUNK) -> Iterator[list[Member]]:
    """Yield the audience in chunks of members, in id order, from just after `after_id` (a run resumes there)."""
    base = members_query(audience, now=now)
    while True:
        rows = session.execute(base.where(Investor.id > after_id).limit(chunk)).all()
        if not rows:
            return
        members = [Member(investor_id, user_id) for investor_id, user_id in rows]
        yield members
        after_id = members[-1].investor_id


def members_between(audience: Audience, *, session: Session, now: datetime, after_id: int,
                    through_id: int) -> list[Member]:
    """Return the audience's members with ids in (after_id, through_id], in id order: a run's claimed chunk."""
    rows = session.execute(members_query(audience, now=now).where(Investor.id > after_id, Investor.id <= through_id))
    return [Member(investor_id, user_id) for investor_id, user_id in rows]


def in_holdout(campaign_id: int, user_id: str, percent: int) -> bool:
    """Tell whether an investor is in a campaign's holdout: a stable hash of (campaign, platform user id).

    The platform's user id, not our row id, so the same person is on the same side after any rebuild; the
    hash spreads 10,000 buckets, so the holdout's size is the percentage to within chance.
    """
    if percent <= 0:
        return False
    digest = hashlib.blake2b(f"{campaign_id}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 < percent * 100
