"""When scheduled campaigns will run: a campaign's next fire times and the calendar of the coming days.

Fire times come from the same APScheduler trigger the scheduler runs (`campaigns.scheduler.schedule_trigger`:
Asia/Shanghai, inside the window), so the page shows what will actually happen. Pure but for `calendar`,
which reads the scheduled campaigns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.definition import Definition, parse, window_contains
from campaigns.models import Campaign
from campaigns.scheduler import MISFIRE_POLICY, schedule_trigger
from growth.timeutil import SHANGHAI, as_utc

CALENDAR_DAYS = 30
PER_CAMPAIGN = 31  # fire times listed per campaign in the calendar (a daily cron fits; a busier one is cut short)
NEXT_SHOWN = 5
# In date.weekday() order.
WEEKDAY_LABELS = (_l("周一"), _l("周二"), _l("周三"), _l("周四"), _l("周五"), _l("周六"), _l("周日"))
SCHEDULED = ("scheduled", "running")  # campaigns whose schedule will fire (a paused one waits for resume)


def fire_times(definition: Definition, *, after: datetime, until: datetime | None = None,
               limit: int = NEXT_SHOWN) -> Iterator[datetime]:
    """Yield a campaign's fire times after `after` (and up to `until`), at most `limit`, inside its window."""
    trigger = schedule_trigger(definition)
    if trigger is None:
        return
    previous: datetime | None = None
    now = as_utc(after)
    for _n in range(limit):
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None or (until is not None and fire > until) or not window_contains(definition, fire):
            return
        if fire > after:
            yield fire
        previous, now = fire, fire + timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Fire:
    """One upcoming run of one campaign, in Asia/Shanghai time."""

    at: datetime
    campaign_id: int
    name: str
    status: str


@dataclass(slots=True)
class Day:
    """A business day (Asia/Shanghai) and the runs due on it, in time order."""

    day: date
    fires: list[Fire] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Calendar:
    """The days with runs, and the campaigns whose runs were too many to list them all."""

    days: list[Day]
    cut_short: list[int]


def group_by_day(campaigns: Iterable[tuple[int, str, str, Definition]], *, now: datetime,
                 days: int = CALENDAR_DAYS, per_campaign: int = PER_CAMPAIGN) -> Calendar:
    """Return the runs of (id, name, status, definition) due within `days` of now, grouped by Shanghai day."""
    until = now + timedelta(days=days)
    fires: list[Fire] = []
    cut_short: list[int] = []
    for campaign_id, name, status, definition in campaigns:
        times = list(fire_times(definition, after=now, until=until, limit=per_campaign + 1))
        if len(times) > per_campaign:
            cut_short.append(campaign_id)
        fires.extend(Fire(at.astimezone(SHANGHAI), campaign_id, name, status) for at in times[:per_campaign])
    by_day: dict[date, Day] = {}
    for fire in sorted(fires, key=lambda f: (f.at, f.campaign_id)):
        by_day.setdefault(fire.at.date(), Day(fire.at.date())).fires.append(fire)
    return Calendar(list(by_day.values()), cut_short)


def calendar(*, session: Session, now: datetime, days: int = CALENDAR_DAYS) -> Calendar:
    """Return the calendar of the scheduled campaigns' runs in the coming days."""
    rows = session.execute(select(Campaign.id, Campaign.name, Campaign.status, Campaign.definition)
                           .where(Campaign.status.in_(SCHEDULED)).order_by(Campaign.id))
    return group_by_day(((i, name, status, parse(document)) for i, name, status, document in rows), now=now,
                        days=days)


def misfire_words(policy: Mapping[str, object] = MISFIRE_POLICY) -> str:
    """Return what happens to a run missed while no scheduler was up, in words, from the scheduler's policy."""
    if policy.get("coalesce") and policy.get("misfire_grace_time") is None:
        return _("错过的执行（例如服务停机期间）会在调度器恢复后补跑一次，前提是仍在活动时间内；"
                 "错过多次也只补跑一次，同一计划时间绝不会执行两次。")
    grace = policy.get("misfire_grace_time")
    if policy.get("coalesce"):
        return _("错过的执行若在 %(seconds)s 秒内恢复会补跑一次（错过多次也只补一次），超过则跳过。", seconds=grace)
    return _("错过的执行若在 %(seconds)s 秒内恢复会逐次补跑，超过则跳过。", seconds=grace)
