"""Scheduled runs: recorded once per scheduled time, selected in resumable chunks, by one elected scheduler."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from campaigns import services
from campaigns.fulfilment import fulfil_due
from campaigns.models import Campaign, CampaignMember, CampaignRun, CampaignRunChunk, CampaignTransition
from campaigns.progress import progress
from campaigns.runner import select_chunk, task_campaign_run
from campaigns.scheduler import run_scheduler
from campaigns.segments import in_holdout
from channels.models import OutboxMessage
from growth.db import get_db
from growth.rewards.models import Reward, RewardBudget
from tests.factories import make_investor

NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


def scheduled(app, schedule: dict[str, Any], *, status: str = "scheduled", **extra: Any) -> int:  # type: ignore[no-untyped-def]
    doc = {"name": "定时活动", "type": "broadcast", "class": "service", "schedule": schedule, **extra}
    with get_db(app).session_scope(write=True) as s:
        c = services.create(doc, session=s, actor_id=None, now=NOW - timedelta(days=3))
        s.execute(update(Campaign).where(Campaign.id == c.id).values(status=status,
                                                                       approved_at=NOW - timedelta(days=2)))
        return c.id


def investors(app, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return [make_investor(s, registered_at=NOW - timedelta(days=10)).platform_user_id for _ in range(n)]


def run_task(app, campaign_id: int, now: datetime = NOW) -> None:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        task_campaign_run(s, now, campaign_id)


def select_all(app, chunk: int = 1000) -> None:  # type: ignore[no-untyped-def]
    while True:
        with get_db(app).session_scope(write=True) as s:
            if not select_chunk(session=s, now=NOW, chunk=chunk):
                return


def state(app, campaign_id: int) -> tuple[str, list[tuple[Any, ...]], list[tuple[Any, ...]]]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        status = s.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
        runs = [tuple(r) for r in s.execute(select(CampaignRun.scheduled_for, CampaignRun.status, CampaignRun.selected)
                                            .where(CampaignRun.campaign_id == campaign_id))]
        members = [tuple(r) for r in s.execute(select(CampaignMember.investor_id, CampaignMember.holdout)
                                               .where(CampaignMember.campaign_id == campaign_id)
                                               .order_by(CampaignMember.investor_id))]
    return status, runs, members


def test_a_one_shot_run_is_recorded_once_selects_everyone_and_finishes_the_campaign(app):
    users = investors(app, 25)
    cid = scheduled(app, {"at": "2026-12-03T10:00:00+08:00"}, holdout_percent=20)
    run_task(app, cid, NOW - timedelta(hours=3))  # before its time: nothing
    assert state(app, cid)[1] == []
    run_task(app, cid)
    run_task(app, cid)  # the job fired twice (a retry, a second scheduler): still one run
    status, runs, _ = state(app, cid)
    assert status == "running" and len(runs) == 1 and runs[0][1] == "selecting"
    select_all(app, chunk=7)
    status, runs, members = state(app, cid)
    assert status == "finished"
    assert runs == [(datetime(2026, 12, 3, 2, 0, tzinfo=UTC), "selected", 25)]
    assert len(members) == 25
    with get_db(app).session_scope() as s:
        from growth.investors.models import Investor
        uid = dict(s.execute(select(Investor.id, Investor.platform_user_id)).all())
    assert all(holdout == in_holdout(cid, uid[i], 20) for i, holdout in members)
    assert sorted(uid[i] for i, _ in members) == sorted(users)


def test_a_run_killed_halfway_resumes_and_enters_everyone_exactly_once(app):
    investors(app, 30)
    cid = scheduled(app, {"at": "2026-12-03T10:00:00+08:00"})
    run_task(app, cid)
    with get_db(app).session_scope(write=True) as s:
        select_chunk(session=s, now=NOW, chunk=10)
    with pytest.raises(RuntimeError), get_db(app).session_scope(write=True) as s:
        select_chunk(session=s, now=NOW, chunk=10)
        raise RuntimeError("killed before the chunk committed")
    select_all(app, chunk=10)
    _, runs, members = state(app, cid)
    assert len(members) == 30 and len({i for i, _ in members}) == 30
    assert runs[0][2] == 30


def test_a_cron_campaign_runs_once_per_fire_time_inside_its_window(app):
    investors(app, 3)
    window = {"start": "2026-12-01T00:00:00+08:00", "end": "2026-12-31T23:59:59+08:00"}
    cid = scheduled(app, {"cron": "0 10 * * *"}, window=window, entry={"every_days": 1})
    for day in range(3):
        at = NOW + timedelta(days=day)
        run_task(app, cid, at)
        run_task(app, cid, at + timedelta(minutes=5))  # a repeat of the same fire
        with get_db(app).session_scope(write=True) as s:
            while select_chunk(session=s, now=at):
                pass
    status, runs, members = state(app, cid)
    assert status == "running"  # more runs to come
    assert [r[0] for r in runs] == [datetime(2026, 12, d, 2, 0, tzinfo=UTC) for d in (3, 4, 5)]
    assert len(members) == 9  # every day, everyone again (entry every 1 day)


def test_a_run_after_the_window_never_happens_and_a_paused_campaign_waits(app):
    investors(app, 2)
    late = scheduled(app, {"at": "2026-12-03T10:00:00+08:00"}, window={"end": "2026-12-02T00:00:00+08:00"})
    run_task(app, late)
    assert state(app, late)[1] == []
    paused = scheduled(app, {"at": "2026-12-03T10:00:00+08:00"})
    run_task(app, paused)
    with get_db(app).session_scope(write=True) as s:
        s.execute(update(Campaign).where(Campaign.id == paused).values(status="paused", paused_from="running"))
    select_all(app)
    assert state(app, paused)[2] == []
    with get_db(app).session_scope(write=True) as s:
        s.execute(update(Campaign).where(Campaign.id == paused).values(status="running", paused_from=None))
    select_all(app)
    assert len(state(app, paused)[2]) == 2


def test_the_elected_scheduler_makes_a_missed_run_once_when_it_starts(app):
    investors(app, 2)
    cid = scheduled(app, {"at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()})
    app.config["LEADER_LEASE_SECONDS"] = 3
    stops = [threading.Event(), threading.Event()]
    threads = [threading.Thread(target=run_scheduler, args=(app, stop), daemon=True) for stop in stops]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            with get_db(app).session_scope() as s:
                if s.scalar(select(func.count()).select_from(CampaignRun).where(CampaignRun.campaign_id == cid)):
                    break
            time.sleep(0.3)
        time.sleep(1)
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(15)
    with get_db(app).session_scope() as s:
        runs = s.scalar(select(func.count()).select_from(CampaignRun).where(CampaignRun.campaign_id == cid))
        status = s.scalar(select(Campaign.status).where(Campaign.id == cid))
    assert runs == 1
    assert status == "running"


def _fulfil_all(app, now: datetime) -> None:  # type: ignore[no-untyped-def]
    while True:
        with get_db(app).session_scope(write=True) as s:
            if not fulfil_due(session=s, app=app, now=now):
                return


def test_a_runs_members_share_the_budget_in_order_and_those_past_it_get_nothing(app):
    investors(app, 12)
    voucher = {"kind": "voucher", "amount": "20.00", "valid_days": 30}
    sms = {"channel": "sms", "text": "{{ investor.name }}您好，{{ reward.amount }}元红包已到账。"}
    cid = scheduled(app, {"at": "2026-12-03T10:00:00+08:00"}, rewards=[voucher], messages=[sms],
                    budget={"max_grants": 7})
    run_task(app, cid)
    select_all(app, chunk=5)
    _fulfil_all(app, NOW + timedelta(minutes=1))
    with get_db(app).session_scope() as s:
        members = s.execute(select(CampaignMember.investor_id, CampaignMember.status)
                            .where(CampaignMember.campaign_id == cid).order_by(CampaignMember.id)).all()
        rewarded = set(s.scalars(select(Reward.investor_id)))
        texted = list(s.scalars(select(OutboxMessage.investor_id).where(OutboxMessage.channel == "sms")))
    assert [status for _, status in members] == ["done"] * 7 + ["budget_exhausted"] * 5
    assert rewarded == {i for i, status in members if status == "done"} == set(texted) and len(texted) == 7


def test_an_investor_due_twice_in_one_chunk_is_fulfilled_twice_each_run_its_own(app):
    investors(app, 2)
    window = {"start": "2026-12-01T00:00:00+08:00", "end": "2026-12-31T23:59:59+08:00"}
    voucher = {"kind": "voucher", "amount": "20.00", "valid_days": 30}
    cid = scheduled(app, {"cron": "0 10 * * *"}, window=window, entry={"every_days": 1}, rewards=[voucher],
                    budget={"per_investor": 2})
    for day in (NOW - timedelta(days=1), NOW):  # two days' runs, both selected before fulfilment
        run_task(app, cid, day)
        while True:
            with get_db(app).session_scope(write=True) as s:
                if not select_chunk(session=s, now=day):
                    break
    _fulfil_all(app, NOW + timedelta(minutes=1))
    with get_db(app).session_scope() as s:
        statuses = list(s.scalars(select(CampaignMember.status).where(CampaignMember.campaign_id == cid)))
        per_investor = s.execute(select(Reward.investor_id, func.count()).group_by(Reward.investor_id)).all()
    assert statuses == ["done"] * 4
    assert sorted(n for _, n in per_investor) == [2, 2]


def test_a_rate_boost_with_no_bound_under_an_amount_limit_is_out_of_budget_and_one_with_a_bound_is_granted(app):
    investors(app, 3)
    boost = {"kind": "rate_boost", "annual_rate": "0.0100", "max_days": 30, "valid_days": 7}
    unbounded = scheduled(app, {"at": "2026-12-03T10:00:00+08:00"}, rewards=[boost],
                          budget={"max_amount": "1000.00"})
    bounded = scheduled(app, {"at": "2026-12-03T10:00:00+08:00"}, rewards=[{**boost, "max_investment": "10000.00"}],
                        budget={"max_amount": "1000.00"})
    for cid in (unbounded, bounded):
        run_task(app, cid)
    select_all(app)
    _fulfil_all(app, NOW + timedelta(minutes=1))
    with get_db(app).session_scope() as s:
        by_campaign = {cid: sorted(s.scalars(select(CampaignMember.status).where(CampaignMember.campaign_id == cid)))
                       for cid in (unbounded, bounded)}
        bounds = set(s.scalars(select(Reward.max_investment_fen)))
    # 10,000.00 × 1 % × 30 / 365 ≈ 8.22 of the 1,000.00 limit each: all three fit
    assert by_campaign == {unbounded: ["budget_exhausted"] * 3, bounded: ["done"] * 3}
    assert bounds == {1_000_000}


def _select_in_threads(app, threads: int, chunk: int) -> None:  # type: ignore[no-untyped-def]
    """Run the runner's step in several threads at once (as its helper threads do) until no run is selecting."""
    failed: list[BaseException] = []

    def work() -> None:
        try:
            while True:
                with get_db(app).session_scope(write=True) as s:
                    if select_chunk(session=s, now=NOW, chunk=chunk):
                        continue
                    if not s.scalar(select(func.count()).where(CampaignRun.status == "selecting")):
                        return
                time.sleep(0.01)  # the last chunks are another thread's
        except BaseException as err:
            failed.append(err)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(60)
    assert not failed, failed
    assert not any(thread.is_alive() for thread in pool)


def _outcome(app, cid: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        members = s.execute(select(CampaignMember.investor_id, CampaignMember.status)
                            .where(CampaignMember.campaign_id == cid)).all()
        return {
            "members": members,
            "rewards": list(s.scalars(select(Reward.investor_id).where(Reward.campaign_id == cid))),
            "sms": list(s.scalars(select(OutboxMessage.investor_id).where(OutboxMessage.campaign_id == cid,
                                                                          OutboxMessage.channel == "sms"))),
            "used": s.scalar(select(RewardBudget.used_grants).where(RewardBudget.owner_key == str(cid))),
            "finishes": s.scalar(select(func.count()).where(CampaignTransition.campaign_id == cid,
                                                            CampaignTransition.action == "finish")),
            "run": s.execute(select(CampaignRun.status, CampaignRun.selected)
                             .where(CampaignRun.campaign_id == cid)).one(),
        }


VOUCHER = {"kind": "voucher", "amount": "20.00", "valid_days": 30}
SMS = {"channel": "sms", "text": "{{ investor.name }}您好，{{ reward.amount }}元红包已到账。回T退订"}


@pytest.mark.postgres_only
def test_runner_threads_fulfil_one_run_together_and_everyone_gets_one_grant_and_one_message(app):
    investors(app, 60)
    cid = scheduled(app, {"at": "2026-12-03T10:00:00+08:00"}, rewards=[VOUCHER], messages=[SMS], holdout_percent=10,
                    budget={"max_grants": 1000, "per_investor": 1})
    run_task(app, cid)
    _select_in_threads(app, threads=3, chunk=4)
    got = _outcome(app, cid)
    treated = sorted(i for i, status in got["members"] if status == "done")
    held = [i for i, status in got["members"] if status == "holdout"]
    assert len(got["members"]) == 60 and len({i for i, _ in got["members"]}) == 60
    assert len(treated) + len(held) == 60 and held  # 10 % of 60: a few, by the stable hash
    assert sorted(got["rewards"]) == treated and sorted(got["sms"]) == treated
    assert got["used"] == len(treated)
    assert got["run"] == ("selected", 60) and got["finishes"] == 1


@pytest.mark.postgres_only
def test_runner_threads_stop_exactly_at_the_budget(app):
    investors(app, 40)
    cid = scheduled(app, {"at": "2026-12-03T10:00:00+08:00"}, rewards=[VOUCHER], messages=[SMS],
                    budget={"max_grants": 13})
    run_task(app, cid)
    _select_in_threads(app, threads=3, chunk=5)
    got = _outcome(app, cid)
    statuses = sorted(status for _, status in got["members"])
    assert statuses == ["budget_exhausted"] * 27 + ["done"] * 13
    done = sorted(i for i, status in got["members"] if status == "done")
    assert sorted(got["rewards"]) == done == sorted(got["sms"]) and got["used"] == 13


def test_a_claimed_chunk_whose_fulfilment_failed_is_fulfilled_by_the_next_step(app):
    investors(app, 12)
    cid = scheduled(app, {"at": "2026-12-03T10:00:00+08:00"}, rewards=[VOUCHER], messages=[SMS])
    run_task(app, cid)
    with get_db(app).session_scope(write=True) as s:
        assert select_chunk(session=s, now=NOW, chunk=5) == 3  # claims every span of 5 ids up to the highest
    with pytest.raises(RuntimeError), get_db(app).session_scope(write=True) as s:
        select_chunk(session=s, now=NOW, chunk=5)  # fulfils the first …
        raise RuntimeError("killed before the chunk committed")
    with get_db(app).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(CampaignMember)) == 0
        assert s.scalars(select(CampaignRunChunk.done)).all() == [False] * 3
    select_all(app, chunk=5)
    got = _outcome(app, cid)
    assert len(got["members"]) == 12 and sorted(got["rewards"]) == sorted(i for i, _ in got["members"])
    assert len(got["sms"]) == 12 and got["used"] == 12 and got["run"] == ("selected", 12)
    with get_db(app).session_scope() as s:
        assert set(s.scalars(select(CampaignRunChunk.done))) == {True}


def test_a_run_still_selecting_shows_the_members_of_its_chunks_done(app):
    investors(app, 12)
    cid = scheduled(app, {"at": "2026-12-03T10:00:00+08:00"}, rewards=[VOUCHER], messages=[SMS])
    run_task(app, cid)
    for _step in range(3):  # the claim of three spans, then two of them fulfilled
        with get_db(app).session_scope(write=True) as s:
            select_chunk(session=s, now=NOW, chunk=5)
    with get_db(app).session_scope() as s:
        shown = progress(cid, session=s)
    assert [(r.status, r.selected, r.fulfilled) for r in shown.runs] == [("selecting", 10, 10)]
    assert shown.in_progress and shown.members == 10
