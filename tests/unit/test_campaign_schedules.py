"""Crontab expressions mean what crontab means (Sunday is 0 and 7), in Asia/Shanghai; latest fire times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.date import DateTrigger

from campaigns.definition import cron_trigger
from campaigns.scheduler import latest_fire
from growth.timeutil import SHANGHAI

MONDAY = datetime(2026, 12, 7, tzinfo=SHANGHAI)  # a Monday


def fires_in_week(expr: str) -> list[str]:
    trigger = cron_trigger(expr)
    out, at = [], trigger.get_next_fire_time(None, MONDAY)
    while at is not None and at < MONDAY + timedelta(days=7):
        out.append(at.strftime("%a %H:%M"))
        at = trigger.get_next_fire_time(at, at + timedelta(seconds=1))
    return out


@pytest.mark.parametrize(("expr", "expected"), [
    ("0 10 * * 0", ["Sun 10:00"]),
    ("0 10 * * 7", ["Sun 10:00"]),
    ("0 10 * * 1", ["Mon 10:00"]),
    ("30 9 * * 1-5", ["Mon 09:30", "Tue 09:30", "Wed 09:30", "Thu 09:30", "Fri 09:30"]),
    ("0 20 * * 0,6", ["Sat 20:00", "Sun 20:00"]),
    ("0 8 * * */3", ["Wed 08:00", "Sat 08:00", "Sun 08:00"]),
    ("0 8 * * mon", ["Mon 08:00"]),
])
def test_crontab_weekdays_count_from_sunday(expr, expected):
    assert fires_in_week(expr) == expected


def test_cron_times_are_shanghai_times():
    trigger = cron_trigger("0 10 * * *")
    first = trigger.get_next_fire_time(None, datetime(2026, 12, 3, 0, 0, tzinfo=UTC))
    assert first == datetime(2026, 12, 3, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize("expr", ["0 10 * *", "61 10 * * *", "0 10 * * 8", "0 10 * * 5-2"])
def test_bad_crontabs_are_refused(expr):
    with pytest.raises(ValueError):
        cron_trigger(expr)


def test_the_latest_fire_is_the_last_one_at_or_before_now():
    trigger = cron_trigger("0 10 * * *")
    now = datetime(2026, 12, 3, 5, 0, tzinfo=UTC)  # 13:00 in Shanghai
    assert latest_fire(trigger, now) == datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
    assert latest_fire(trigger, datetime(2026, 12, 3, 1, 59, tzinfo=UTC)) == datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    window = cron_trigger("0 10 * * *", start=datetime(2026, 12, 10, tzinfo=UTC))
    assert latest_fire(window, now) is None


def test_a_one_shot_fires_once_its_time_has_come():
    at = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
    trigger = DateTrigger(run_date=at)
    assert latest_fire(trigger, at - timedelta(seconds=1)) is None
    assert latest_fire(trigger, at + timedelta(days=3)) == at
