"""The dashboards' daily cohort rollup: built, marked by the processor, refreshed, and always equal to a plain count."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from campaigns.models import CampaignMember
from dashboards import queries, rollup
from dashboards.jobs import task_refresh
from dashboards.models import CohortDay, CohortDirtyDay
from growth.db import get_db
from growth.events.processor import drain, reset_projections
from growth.investors.models import Investor
from growth.projections import projections_of
from tests.events import event, investment, post_events
from tests.integration.test_funnel import RANGES, expected, get_funnel, local, people, token  # noqa: F401
from tests.integration.test_funnel_details import END as DETAILS_END
from tests.integration.test_funnel_details import START as DETAILS_START
from tests.integration.test_funnel_details import world  # noqa: F401

WINDOWS = (1, 7, 30)  # kept by the rollup; 45 is not


def build(app) -> None:  # type: ignore[no-untyped-def]
    """Run the scheduled task until the rollup is complete and nothing is marked."""
    for _ in range(100):
        with get_db(app).session_scope(write=True) as s:
            task_refresh(s, datetime.now(UTC))
            done = rollup.is_built(s) and not s.scalar(select(func.count()).select_from(CohortDirtyDay))
        if done:
            return
    raise AssertionError("the rollup never completed")


def agrees(client, token, people) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    for group_by in ("none", "channel", "week"):
        for window_days in (*WINDOWS, 45):
            for start, end in RANGES:
                got = get_funnel(client, token, start=start.isoformat(), end=end.isoformat(),
                                 window_days=window_days, group_by=group_by).json
                want = expected(people, start, end, window_days, group_by)
                case = (group_by, window_days, start, end)
                assert got["total"] == want["total"], case
                assert sorted(got["groups"], key=lambda g: g["key"]) == want["groups"], case


def test_the_funnel_read_from_the_built_rollup_agrees_with_a_plain_count(app, client, people, token,  # noqa: F811
                                                                        session):
    build(app)
    assert session.scalar(select(func.count()).select_from(CohortDay)) > 0
    agrees(client, token, people)


def test_the_funnel_reads_settled_days_from_the_rollup_rows(app, client, people, token, session):  # noqa: F811
    build(app)
    start, end = RANGES[0]
    args = {"start": start.isoformat(), "end": end.isoformat(), "window_days": 30}
    before = get_funnel(client, token, **args).json["total"]["counts"][0]
    # A row changed behind the rollup's back shows: the settled days are read from the rows, not the cohort.
    day = session.scalar(select(CohortDay.day).where(CohortDay.window_days == 30).limit(1))
    session.execute(update(CohortDay).where(CohortDay.window_days == 30, CohortDay.day == day)
                    .values(registrations=CohortDay.registrations + 1000))
    session.commit()
    assert get_funnel(client, token, **args).json["total"]["counts"][0] >= before + 1000
    # A marked day is read live again, whatever its rows say, and the refresh rebuilds it.
    rollup.mark_days(session, [day], 1)
    session.commit()
    assert get_funnel(client, token, **args).json["total"]["counts"][0] == before
    build(app)
    assert get_funnel(client, token, **args).json["total"]["counts"][0] == before


def test_late_events_are_counted_at_once_and_the_refresh_settles_them(app, client, people, token, session):  # noqa: F811
    build(app)
    # A new investor on an old day, and a first investment for someone who had none: both arrive late.
    late = local(2026, 9, 20, 10)
    newcomer = [event("user.registered", "late1", late, {"channel_code": "baidu_sem"}),
                event("user.kyc_verified", "late1", late + timedelta(hours=1)),
                event("user.card_bound", "late1", late + timedelta(hours=2)),
                event("funds.deposited", "late1", late + timedelta(hours=3), {"deposit_id": "late1-d",
                                                                              "amount": "10.00"}),
                investment("late1", late + timedelta(hours=4), "late1-i1")]
    assert post_events(client, newcomer).status_code == 200
    drain(app)
    from tests.integration.test_funnel import Person

    person = Person("late1", "baidu_sem", {"registered": late, "kyc_verified": late + timedelta(hours=1),
                                           "card_bound": late + timedelta(hours=2),
                                           "first_deposit": late + timedelta(hours=3),
                                           "first_investment": late + timedelta(hours=4), "repeat_investment": None})
    everyone = [*people, person]
    marked = set(session.scalars(select(CohortDirtyDay.day)))
    assert date(2026, 9, 20) in marked  # the processor marked the day in its own transaction
    agrees(client, token, everyone)  # read live for the marked day
    build(app)
    agrees(client, token, everyone)


def test_a_day_marked_again_while_it_is_rebuilt_stays_marked(app, people, monkeypatch):  # noqa: F811
    build(app)
    day = date(2026, 10, 19)
    with get_db(app).session_scope(write=True) as s:
        rollup.mark_days(s, [day], 5)
    real = rollup.build_days

    def racing(session, first, last):  # type: ignore[no-untyped-def]
        # The processor marks the day again (a new batch) while the refresher rebuilds it.
        rollup.mark_days(session, [day], 6)
        return real(session, first, last)

    monkeypatch.setattr(rollup, "build_days", racing)
    with get_db(app).session_scope(write=True) as s:
        rollup.refresh(session=s)
    with get_db(app).session_scope() as s:
        assert s.scalar(select(CohortDirtyDay.token).where(CohortDirtyDay.day == day)) == 6


def test_a_replay_starts_the_rollup_over_and_it_is_right_throughout(app, client, people, token):  # noqa: F811
    build(app)
    with get_db(app).session_scope(write=True) as s:
        reset_projections(session=s, projections=projections_of(app))
    drain(app)
    with get_db(app).session_scope() as s:
        assert not rollup.is_built(s)
    agrees(client, token, people)  # live while the rollup is incomplete
    with get_db(app).session_scope(write=True) as s:
        assert rollup.build_step(s, days=30) is not None  # a step of a build: still incomplete
    agrees(client, token, people)
    build(app)
    agrees(client, token, people)


@pytest.mark.parametrize("window_days", [1, 30, 45])
def test_channel_economics_from_the_rollup_equals_the_live_computation(app, people, window_days):  # noqa: F811
    now = datetime.now(UTC)
    with get_db(app).session_scope() as s:
        live = {start: queries.channel_economics(session=s, start=start, end=end, window_days=window_days, now=now)
                for start, end in RANGES}
    build(app)
    with get_db(app).session_scope() as s:
        assert rollup.is_built(s)
        for start, end in RANGES:
            got = queries.channel_economics(session=s, start=start, end=end, window_days=window_days, now=now)
            assert got == live[start], (start, end)
    assert any(f.registrations and f.amount_term_fen_days for rows in live.values() for f in rows)



def _funnels(client, token) -> dict:  # type: ignore[no-untyped-def]  # noqa: F811
    out = {}
    for group_by in ("campaign", "referral", "channel"):
        for window_days in (1, 30):
            response = get_funnel(client, token, start=DETAILS_START.isoformat(), end=DETAILS_END.isoformat(),
                                  window_days=window_days, group_by=group_by)
            assert response.status_code == 200
            out[(group_by, window_days)] = response.json
    return out


def test_campaign_groups_from_the_rollup_equal_the_live_ones_and_a_new_entry_shows_at_once(
        app, client, world, token, session):  # noqa: F811
    live = _funnels(client, token)  # nothing built yet: every answer computed from the cohort
    assert {g["key"] for g in live[("campaign", 30)]["groups"]} >= {"none", "1", "2", "1-holdout", "2-holdout"}
    build(app)
    assert session.scalar(select(func.count()).select_from(CohortDay).where(CohortDay.campaign > 0)) > 0
    assert _funnels(client, token) == live
    # A campaign entry for someone whose day is settled (campaigns write entries, not the processor): read live at
    # once, then taken by the refresher, which rebuilds the day.
    nobody = session.scalars(select(Investor).where(
        Investor.registered_at >= datetime(2026, 3, 5, tzinfo=UTC),
        ~Investor.id.in_(select(CampaignMember.investor_id))).order_by(Investor.id).limit(1)).one()
    at = nobody.registered_at + timedelta(hours=1)
    session.add(CampaignMember(campaign_id=2, investor_id=nobody.id, entry_key="late", cause="t", holdout=False,
                               entered_at=at, due_at=at, created_at=datetime.now(UTC), status="done"))
    session.commit()
    moved = _funnels(client, token)
    assert moved != live
    with get_db(app).session_scope() as s:
        recomputed = {case: queries.funnel_from_rollup(session=s, start=DETAILS_START, end=DETAILS_END,
                                                       window_days=case[1], group_by=case[0], now=None)
                      for case in moved}
    for case, body in moved.items():
        got = recomputed[case]
        assert got is not None and got.total.counts == body["total"]["counts"], case
    build(app)
    assert _funnels(client, token) == moved
    with get_db(app).session_scope() as s:  # the entry is within the horizon: its day is still read live
        assert rollup.refresh(session=s, now=datetime.now(UTC) + rollup.MEMBER_HORIZON * 2) >= 1
    assert _funnels(client, token) == moved
