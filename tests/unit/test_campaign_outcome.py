"""The pure parts of a campaign's outcome: conversion and lift intervals, incremental investment, fire times."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from math import sqrt
from statistics import NormalDist

import pytest
from flask import Flask
from flask_babel import Babel
from hypothesis import given
from hypothesis import strategies as st

from campaigns import charts, upcoming
from campaigns.definition import parse
from campaigns.results import (
    Side,
    incremental_invested,
    lift,
    per_yuan_of_cost,
    rate_interval,
)
from growth.timeutil import SHANGHAI

Z = NormalDist().inv_cdf(0.975)
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
BASE = {
    "name": "定时", "type": "broadcast", "class": "service", "rewards": [], "budget": {},
    "messages": [{"channel": "sms", "text": "您好"}],
}


def definition(schedule: dict[str, str], window: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return parse(dict(BASE, schedule=schedule, **({"window": window} if window else {})))


# --- intervals ---------------------------------------------------------------------------------------------


def test_the_lift_is_the_difference_of_rates_with_the_unpooled_normal_interval():
    got = lift(60, 100, 45, 90)
    assert got is not None
    p1, p2 = 60 / 100, 45 / 90
    half = Z * sqrt(p1 * (1 - p1) / 100 + p2 * (1 - p2) / 90)
    assert got.value == pytest.approx(p1 - p2)
    assert (got.low, got.high) == (pytest.approx(p1 - p2 - half), pytest.approx(p1 - p2 + half))


def test_there_is_no_lift_without_people_on_both_sides():
    assert lift(3, 10, 0, 0) is None
    assert lift(0, 0, 3, 10) is None


@given(st.integers(1, 5000), st.integers(1, 5000), st.data())
def test_the_lift_interval_holds_its_estimate_and_narrows_with_more_people(treated, holdout, data):  # type: ignore[no-untyped-def]
    hits = data.draw(st.integers(0, treated))
    held = data.draw(st.integers(0, holdout))
    small = lift(hits, treated, held, holdout)
    big = lift(hits * 4, treated * 4, held * 4, holdout * 4)
    assert small is not None and big is not None
    assert small.low <= small.value <= small.high
    assert big.high - big.low <= small.high - small.low + 1e-12


def test_a_lift_whose_interval_excludes_zero_is_told_apart_from_one_that_does_not():
    clear = lift(300, 1000, 200, 1000)
    unclear = lift(3, 10, 2, 10)
    assert clear is not None and clear.excludes_zero
    assert unclear is not None and not unclear.excludes_zero


def test_the_interval_of_the_difference_covers_the_true_lift_about_95_times_in_100():
    rng = random.Random(20261201)
    true1, true2, n1, n2, trials = 0.3, 0.2, 400, 300, 2000
    covered = 0
    for _ in range(trials):
        x1 = sum(rng.random() < true1 for _ in range(n1))
        x2 = sum(rng.random() < true2 for _ in range(n2))
        got = lift(x1, n1, x2, n2)
        assert got is not None
        covered += got.low <= true1 - true2 <= got.high
    assert 0.93 <= covered / trials <= 0.97


def test_a_rate_interval_stays_between_0_and_1_and_is_none_without_people():
    assert rate_interval(0, 0) is None
    nobody = rate_interval(0, 5)
    everybody = rate_interval(5, 5)
    assert nobody is not None and (nobody.low, nobody.value) == (0.0, 0.0)
    assert everybody is not None and (everybody.value, everybody.high) == (1.0, 1.0)
    some = rate_interval(30, 120)
    assert some is not None
    half = Z * sqrt(0.25 * 0.75 / 120)
    assert (some.low, some.high) == (pytest.approx(0.25 - half), pytest.approx(0.25 + half))


# --- money --------------------------------------------------------------------------------------------------


def test_incremental_investment_scales_the_holdouts_amount_to_the_treated_side():
    treated, holdout = Side(people=90, investors=30, amount_fen=9_000_000), Side(10, 2, 500_000)
    expected = 9_000_000 - 500_000 * 90 // 10
    assert incremental_invested(treated, holdout) == expected
    assert per_yuan_of_cost(expected, 150_000) == pytest.approx(expected / 150_000)


def test_without_a_holdout_or_a_cost_there_is_no_incremental_figure():
    assert incremental_invested(Side(10, 3, 100), Side(0, 0, 0)) is None
    assert per_yuan_of_cost(None, 100) is None
    assert per_yuan_of_cost(5_000, 0) is None


# --- fire times and the calendar ------------------------------------------------------------------------------


def test_a_cron_schedule_fires_at_its_shanghai_times_inside_the_window():
    end = datetime(2026, 12, 4, 1, 30, tzinfo=UTC)  # 09:30 on the 4th in Shanghai
    fires = list(upcoming.fire_times(definition({"cron": "0 9 * * *"}, {"end": end.isoformat()}), after=NOW,
                                     limit=10))
    local = [f.astimezone(SHANGHAI) for f in fires]
    assert [(d.day, d.hour, d.minute) for d in local] == [(2, 9, 0), (3, 9, 0), (4, 9, 0)]


def test_a_one_shot_schedule_fires_once_and_not_at_all_once_past():
    at = NOW + timedelta(hours=5)
    assert list(upcoming.fire_times(definition({"at": at.isoformat()}), after=NOW)) == [at]
    assert list(upcoming.fire_times(definition({"at": at.isoformat()}), after=at + timedelta(seconds=1))) == []


def test_the_calendar_groups_runs_by_shanghai_day_and_cuts_a_busy_campaign_short():
    midnight = datetime(2026, 12, 1, 16, 30, tzinfo=UTC)  # 00:30 on the 2nd in Shanghai
    got = upcoming.group_by_day([
        (1, "one-shot", "scheduled", definition({"at": midnight.isoformat()})),
        (2, "hourly", "running", definition({"cron": "15 * * * *"}, {"end": "2027-01-01T00:00:00+08:00"})),
    ], now=NOW, days=2, per_campaign=5)
    assert got.cut_short == [2]
    fires = [(day.day.isoformat(), f.at.strftime("%H:%M"), f.campaign_id) for day in got.days for f in day.fires]
    assert fires == [("2026-12-01", f"{h}:15", 2) for h in (10, 11, 12, 13, 14)] + [("2026-12-02", "00:30", 1)]


def test_the_misfire_policy_in_words_follows_the_schedulers_settings():
    app = Flask(__name__)
    Babel(app)
    with app.app_context():
        once = upcoming.misfire_words({"coalesce": True, "misfire_grace_time": None})
        grace = upcoming.misfire_words({"coalesce": True, "misfire_grace_time": 60})
        each = upcoming.misfire_words({"coalesce": False, "misfire_grace_time": 60})
        assert upcoming.misfire_words() == once
    assert "补跑一次" in once and "60" in grace and "60" in each and len({once, grace, each}) == 3


# --- charts ----------------------------------------------------------------------------------------------------


def test_the_conversion_chart_draws_each_side_with_its_interval():
    treated, holdout = rate_interval(30, 100), rate_interval(10, 100)
    assert treated is not None and holdout is not None
    fig = json.loads(charts.conversion_figure([charts.Bar("T", treated, 30, 100), charts.Bar("H", holdout, 10, 100)],
                                              hover="{hits} of {people}").to_json())
    bars = fig["data"]
    assert [b["x"] for b in bars] == [["T"], ["H"]]
    assert bars[0]["y"] == [30.0]
    assert bars[0]["error_y"]["array"][0] == pytest.approx(100 * treated.high - 30, abs=0.01)
    assert "30 of 100" in bars[0]["hovertemplate"]


def test_the_messages_chart_stacks_only_the_statuses_and_channels_that_happened():
    counts = {"sms": {"sent": 3, "failed": 1, "queued": 0}, "email": {"sent": 0}, "wechat": {"delivered": 2}}
    fig = json.loads(charts.messages_figure(counts, channel_labels={"sms": "SMS", "wechat": "WeChat"},
                                            status_labels={"sent": "Sent"}).to_json())
    names = [t["name"] for t in fig["data"]]
    assert set(names) == {"Sent", "failed", "delivered"}
    assert all(t["y"] == ["SMS", "WeChat"] for t in fig["data"])
    assert sum(sum(t["x"]) for t in fig["data"]) == 6
