"""GET /api/v1/funnel against an independent count of generated investors (cohort, window, groups)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from growth.acquisition.models import AcquisitionChannel
from growth.events.processor import drain
from tests.events import event, investment, post_events
from tests.factories import make_token

SH = ZoneInfo("Asia/Shanghai")
STEPS = ["registered", "kyc_verified", "card_bound", "first_deposit", "first_investment", "repeat_investment"]
CHANNELS = {"baidu_sem": "百度SEM", "wdzj": "网贷之家"}  # created up front; other codes arrive unknown
LABELS = {**CHANNELS, "new_forum": "new_forum", "referral": "邀请好友", "organic": "自然流量"}


@dataclass
class Person:
    """What the test generated for one investor: the truth the API must agree with."""

    uid: str
    channel: str  # the code the earliest registration should be attributed to
    milestones: dict[str, datetime | None] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=SH)


# Registrations on purpose at the edges: ISO week and ISO year boundaries in Shanghai (where the UTC
# date is still the day before), and the first/last instants of the queried ranges.
EDGE_REGISTRATIONS = [
    local(2026, 11, 29, 23, 30), local(2026, 11, 30, 0, 30),  # Sunday W48 / Monday W49
    local(2025, 12, 28, 23, 30), local(2025, 12, 29, 0, 30),  # 2025-W52 / 2026-W01
    local(2026, 1, 4, 23, 59, 59), local(2026, 1, 5, 0, 0),
    local(2026, 9, 14, 23, 59, 59), local(2026, 9, 15, 0, 0),  # around the narrow range's start
    local(2026, 11, 15, 23, 59, 59), local(2026, 11, 16, 0, 0),  # around its end
    local(2026, 10, 18, 23, 0), local(2026, 10, 19, 1, 0),
]


def generate(seed: int, now: datetime, n: int = 200) -> list[Person]:
    """Generate investors with random milestones, channels, redeliveries and registration edges."""
    rng = random.Random(seed)
    latest = now - timedelta(minutes=10)  # events may not lie in the future
    start, span = local(2025, 12, 1), (local(2026, 11, 30, 12) - local(2025, 12, 1)).total_seconds()
    people: list[Person] = []
    for i in range(n):
        uid = f"f{i:04d}"
        registered = EDGE_REGISTRATIONS[i] if i < len(EDGE_REGISTRATIONS) else (
            start + timedelta(seconds=rng.uniform(0, span)))
        if registered > latest:
            continue
        roll = rng.random()
        if roll < 0.3:
            code = rng.choice(["baidu_sem", "wdzj", "new_forum"])
            data, channel = {"channel_code": code}, code
        elif roll < 0.5 and people:
            data, channel = {"referral_code": rng.choice(people).uid}, "referral"
        elif roll < 0.6:
            data, channel = {"referral_code": "NO_SUCH_CODE"}, "organic"
        else:
            data, channel = {}, "organic"
        p = Person(uid, channel)
        p.events.append(event("user.registered", uid, registered, data))
        if rng.random() < 0.2:  # a later second registration must not change anything
            p.events.append(event("user.registered", uid, registered + timedelta(hours=rng.uniform(1, 100)),
                                  {"channel_code": "wdzj"}))
        p.milestones["registered"] = registered

        def later(base: datetime) -> datetime | None:
            # Mostly within a few days, sometimes far beyond any window.
            delay = rng.choice([rng.uniform(0, 3 * 86400), rng.uniform(0, 40 * 86400), rng.uniform(0, 90 * 86400)])
            at = base + timedelta(seconds=delay)
            return at if at <= latest else None

        for step, kind in (("kyc_verified", "user.kyc_verified"), ("card_bound", "user.card_bound")):
            at = later(registered) if rng.random() < 0.8 else None
            p.milestones[step] = at
            if at is not None:
                p.events.append(event(kind, uid, at))
                if rng.random() < 0.2:  # a redelivered, later one
                    p.events.append(event(kind, uid, at + timedelta(days=2)))
        at = later(registered) if rng.random() < 0.7 else None
        p.milestones["first_deposit"] = at
        if at is not None:
            p.events.append(event("funds.deposited", uid, at, {"deposit_id": f"{uid}-d1", "amount": "500.00"}))
            p.events.append(event("funds.deposited", uid, at + timedelta(days=1),
                                  {"deposit_id": f"{uid}-d2", "amount": "50.00"}))
        first = later(registered) if rng.random() < 0.6 else None
        second = later(first) if first is not None and rng.random() < 0.5 else None
        p.milestones["first_investment"], p.milestones["repeat_investment"] = first, second
        if first is not None:
            p.events.append(investment(uid, first, f"{uid}-i1"))
            if rng.random() < 0.3:  # the same investment again under a new event id is not a repeat
                p.events.append(investment(uid, first + timedelta(hours=1), f"{uid}-i1"))
        if second is not None:
            p.events.append(investment(uid, second, f"{uid}-i2"))
        # Redeliveries come after the event that sets the milestone; drop those that would lie in the future.
        p.events = [e for e in p.events if datetime.fromisoformat(e["occurred_at"]) <= latest]
        people.append(p)
    # Platform users who never registered (only later steps) are in no cohort.
    for i in range(5):
        at = local(2026, 10, 1 + i, 12)
        ghost = Person(f"ghost{i}", "organic", {s: None for s in STEPS})
        ghost.events += [event("user.kyc_verified", ghost.uid, at), investment(ghost.uid, at, f"ghost{i}-i1")]
        people.append(ghost)
    return people


def expected(people: list[Person], start: date, end: date, window_days: int, group_by: str) -> dict[str, Any]:
    """Count the funnel plainly from the generated truth (no project code involved)."""
    window = timedelta(days=window_days)
    total = [0] * 6
    groups: dict[str, dict[str, Any]] = {}
    for p in people:
        reg = p.milestones.get("registered")
        if reg is None:
            continue
        reg_day = reg.astimezone(SH).date()
        if not start <= reg_day <= end:
            continue
        reached = 0
        for step in STEPS:
            at = p.milestones[step]
            if at is None or at - reg > window:
                break
            reached += 1
        if group_by == "channel":
            key, label = p.channel, LABELS[p.channel]
        elif group_by == "week":
            iso = reg_day.isocalendar()
            key = label = f"{iso.year}-W{iso.week:02d}"
        else:
            key = label = None
        if key is not None:
            group = groups.setdefault(key, {"key": key, "label": label, "counts": [0] * 6})
        for k in range(reached):
            total[k] += 1
            if key is not None:
                group["counts"][k] += 1
    return {"steps": STEPS, "window_days": window_days, "total": {"counts": total},
            "groups": sorted(groups.values(), key=lambda g: g["key"])}


@pytest.fixture
def people(app, client, session) -> list[Person]:  # type: ignore[no-untyped-def]
    for code, name in CHANNELS.items():
        session.add(AcquisitionChannel(code=code, name=name, kind="sem"))
    session.commit()
    generated = generate(20261130, datetime.now(UTC))
    events = [e for p in generated for e in p.events]
    random.Random(7).shuffle(events)  # arrival order is not occurrence order
    response = post_events(client, events)
    assert response.json == {"accepted": len(events), "duplicates": 0, "rejected": []}
    assert drain(app, limit=97) == len(events)  # many batches, so cross-batch order matters too
    return generated


@pytest.fixture
def token(session) -> str:  # type: ignore[no-untyped-def]
    plain = make_token(session, role="analyst")
    session.commit()
    return plain


def get_funnel(client, token: str, **params: Any):  # type: ignore[no-untyped-def]
    return client.get("/api/v1/funnel", query_string=params, headers={"Authorization": f"Bearer {token}"})


RANGES = [
    (date(2025, 12, 1), date(2026, 11, 30)),  # everything
    (date(2026, 9, 15), date(2026, 11, 15)),  # edges inside and outside
    (date(2026, 11, 30), date(2026, 11, 30)),  # one day: the Monday that started at 00:00 Shanghai
    (date(2025, 12, 28), date(2026, 1, 5)),  # across the ISO year
]


def test_the_generated_data_covers_what_the_funnel_must_get_right(people):
    cohort = expected(people, *RANGES[0], window_days=30, group_by="channel")
    assert cohort["total"]["counts"][0] > 150
    assert all(c > 0 for c in cohort["total"]["counts"])
    assert {g["key"] for g in cohort["groups"]} == set(LABELS)
    narrow = expected(people, *RANGES[1], window_days=30, group_by="none")
    assert 0 < narrow["total"]["counts"][0] < cohort["total"]["counts"][0]
    # Some steps happen after 1, 7, 30 and 45 days, so each window gives other counts.
    totals = [expected(people, *RANGES[0], w, "none")["total"]["counts"] for w in (1, 7, 30, 45)]
    assert all(shorter != longer for shorter, longer in zip(totals, totals[1:], strict=False))


def test_the_funnel_api_agrees_with_an_independent_count(client, people, token):
    for group_by in ("none", "channel", "week"):
        for window_days in (1, 7, 30, 45):
            for start, end in RANGES:
                case = (group_by, window_days, start, end)
                response = get_funnel(client, token, start=start.isoformat(), end=end.isoformat(),
                                      window_days=window_days, group_by=group_by)
                assert response.status_code == 200, (case, response.get_data(as_text=True))
                want = expected(people, start, end, window_days, group_by)
                got = response.json
                assert (got["steps"], got["window_days"]) == (STEPS, window_days), case
                assert got["total"] == want["total"], case
                assert len({g["key"] for g in got["groups"]}) == len(got["groups"]), case
                assert sorted(got["groups"], key=lambda g: g["key"]) == want["groups"], case


def test_registrations_either_side_of_midnight_in_shanghai_fall_in_their_own_iso_weeks(client, people, token):
    got = get_funnel(client, token, start="2026-11-29", end="2026-11-30", group_by="week").json
    assert [g["key"] for g in got["groups"]] == ["2026-W48", "2026-W49"]
    got = get_funnel(client, token, start="2025-12-28", end="2025-12-29", group_by="week").json
    assert [g["key"] for g in got["groups"]] == ["2025-W52", "2026-W01"]
    assert [g["counts"][0] for g in got["groups"]] == [1, 1]


def test_the_default_window_is_30_days_and_the_default_grouping_is_none(client, people, token):
    got = get_funnel(client, token, start="2025-12-01", end="2026-11-30").json
    assert got == expected(people, date(2025, 12, 1), date(2026, 11, 30), 30, "none")


@pytest.mark.parametrize("params", [
    {"start": "2026-13-01", "end": "2026-11-30"},
    {"start": "yesterday"},
    {"start": "2026-11-30", "end": "2026-11-01"},
    {"window_days": "0"},
    {"window_days": "-1"},
    {"window_days": "abc"},
    {"window_days": "7.5"},
    {"window_days": "3651"},
    {"group_by": "month"},
])
def test_bad_parameters_are_answered_400_with_a_message(client, token, params):
    response = get_funnel(client, token, **params)
    assert response.status_code == 400
    assert response.json["error"]


def test_the_funnel_api_needs_a_token(client):
    assert client.get("/api/v1/funnel").status_code == 401
    response = client.get("/api/v1/funnel", headers={"Authorization": "Bearer not-a-real-token"})
    assert response.status_code == 401


def test_a_role_without_funnel_access_is_refused(client, session):
    agent = make_token(session, role="agent")
    session.commit()
    assert get_funnel(client, agent).status_code == 403


@pytest.mark.parametrize(("start", "end"), [("0001-01-01", "2026-11-30"), ("2026-11-01", "9999-12-31"),
                                            ("0001-01-01", "9999-12-31")])
def test_the_extreme_dates_of_the_calendar_are_refused_with_a_message_not_a_crash(client, token, start, end):
    response = get_funnel(client, token, start=start, end=end)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "2000-01-01" in response.json["error"] and "2099-12-31" in response.json["error"]


def test_the_widest_accepted_range_is_answered(client, token):
    response = get_funnel(client, token, start="2000-01-01", end="2099-12-31", group_by="week")
    assert response.status_code == 200, response.get_data(as_text=True)
