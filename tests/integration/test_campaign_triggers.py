"""The trigger consumer enters investors into trigger campaigns from the log, behind the processor, once each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from campaigns import services
from campaigns.consumer import CURSOR, consume_batch
from campaigns.models import Campaign, CampaignMember
from campaigns.segments import in_holdout
from growth.db import get_db
from growth.events.models import ProcessorCursor
from growth.events.processor import drain
from growth.events.services import ingest
from tests.events import event, investment

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
APPROVED = T0 - timedelta(days=1)


def campaign(app, trigger: dict[str, Any], *, status: str = "active", **extra: Any) -> int:  # type: ignore[no-untyped-def]
    doc = {"name": "触发活动", "type": "new_user", "class": "service", "trigger": trigger, **extra}
    with get_db(app).session_scope(write=True) as s:
        c = services.create(doc, session=s, actor_id=None, now=APPROVED)
        s.execute(update(Campaign).where(Campaign.id == c.id).values(status=status, approved_at=APPROVED))
        return c.id


def accept(app, events: list[dict[str, Any]], *, at: datetime) -> None:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        result = ingest(events, session=s, now=at)
    assert result.rejected == [], result.rejected


def consume(app, limit: int = 1000) -> int:  # type: ignore[no-untyped-def]
    total = 0
    while True:
        with get_db(app).session_scope(write=True) as s:
            done = consume_batch(session=s, limit=limit, now=T0 + timedelta(days=1))
        total += done
        if done == 0:
            return total


def members(app, campaign_id: int) -> list[tuple[str, str, bool, str]]:  # type: ignore[no-untyped-def]
    from growth.investors.models import Investor
    with get_db(app).session_scope() as s:
        rows = s.execute(select(Investor.platform_user_id, CampaignMember.cause, CampaignMember.holdout,
                                CampaignMember.status)
                         .join(Investor, Investor.id == CampaignMember.investor_id)
                         .where(CampaignMember.campaign_id == campaign_id).order_by(CampaignMember.id)).all()
    return [tuple(r) for r in rows]


def registered(uid: str, at: datetime, **data: Any) -> dict[str, Any]:
    return event("user.registered", uid, at, data)


def test_registrations_enter_a_registered_campaign_once_each_with_a_stable_holdout(app):
    cid = campaign(app, {"on": "registered"}, holdout_percent=30)
    accept(app, [registered(f"u{i}", T0 + timedelta(minutes=i)) for i in range(40)], at=T0 + timedelta(hours=1))
    drain(app)
    assert consume(app) == 40
    got = members(app, cid)
    assert sorted(u for u, *_ in got) == sorted(f"u{i}" for i in range(40))
    for uid, cause, holdout, status in got:
        assert cause == "registered"
        assert holdout == in_holdout(cid, uid, 30)
        assert status == ("holdout" if holdout else "pending")
    assert 0 < sum(h for _, _, h, _ in got) < 40


def test_the_consumer_never_reads_past_the_processor(app):
    cid = campaign(app, {"on": "registered"})
    accept(app, [registered("u1", T0)], at=T0 + timedelta(minutes=1))
    assert consume(app) == 0
    assert members(app, cid) == []
    drain(app)
    assert consume(app) == 1
    assert len(members(app, cid)) == 1


def test_reading_the_log_again_enters_nobody_twice(app):
    cid = campaign(app, {"on": "registered"})
    accept(app, [registered(f"u{i}", T0) for i in range(5)], at=T0 + timedelta(minutes=1))
    drain(app)
    consume(app)
    with get_db(app).session_scope(write=True) as s:  # as if the consumer's commit had been lost, or a replay
        s.execute(update(ProcessorCursor).where(ProcessorCursor.name == CURSOR).values(position=0))
    assert consume(app) == 5
    assert len(members(app, cid)) == 5


def test_a_batch_rolled_back_by_a_crash_is_read_again_and_loses_nothing(app):
    cid = campaign(app, {"on": "registered"})
    accept(app, [registered(f"u{i}", T0) for i in range(3)], at=T0 + timedelta(minutes=1))
    drain(app)
    with pytest.raises(RuntimeError), get_db(app).session_scope(write=True) as s:
        assert consume_batch(session=s, limit=100, now=T0) == 3
        raise RuntimeError("the worker died before its commit")
    assert members(app, cid) == []
    assert consume(app) == 3
    assert len(members(app, cid)) == 3


def test_an_event_accepted_more_than_72_hours_after_it_occurred_enters_nobody(app):
    cid = campaign(app, {"on": "registered"})
    accept(app, [registered("late", T0)], at=T0 + timedelta(hours=72, seconds=1))
    accept(app, [registered("on_time", T0)], at=T0 + timedelta(hours=71))
    drain(app)
    consume(app)
    assert [m[0] for m in members(app, cid)] == ["on_time"]


def test_only_investors_in_the_audience_enter(app):
    cid = campaign(app, {"on": "registered"},
                   audience={"all": [{"field": "channel", "op": "in", "value": ["baidu_sem"]}]})
    accept(app, [registered("a", T0, channel_code="baidu_sem"), registered("b", T0, channel_code="wechat_ad"),
                 registered("c", T0)], at=T0 + timedelta(minutes=1))
    drain(app)
    consume(app)
    assert [m[0] for m in members(app, cid)] == ["a"]


def test_entry_once_lets_an_investor_in_once_and_every_days_again_after_the_interval(app):
    once = campaign(app, {"on": "investment_created"})
    monthly = campaign(app, {"on": "investment_created"}, entry={"every_days": 30})
    accept(app, [registered("u", T0)], at=T0)
    for days, investment_id in ((1, "i1"), (11, "i2"), (41, "i3")):  # each accepted as it happens (no backfill)
        accept(app, [investment("u", T0 + timedelta(days=days), investment_id)], at=T0 + timedelta(days=days, hours=1))
    drain(app)
    consume(app)
    assert [m[1] for m in members(app, once)] == ["investment_created:i1"]
    assert [m[1] for m in members(app, monthly)] == ["investment_created:i1", "investment_created:i3"]


def test_a_milestone_fires_once_whatever_order_its_events_arrive_in(app):
    cid = campaign(app, {"on": "first_investment"})
    accept(app, [registered("u", T0), investment("u", T0 + timedelta(days=2), "late")], at=T0 + timedelta(days=2))
    drain(app)
    consume(app)
    # An earlier investment arrives afterwards: it becomes the milestone, but the campaign was entered already.
    accept(app, [investment("u", T0 + timedelta(days=1), "early")], at=T0 + timedelta(days=2, hours=1))
    drain(app)
    consume(app)
    assert [m[1] for m in members(app, cid)] == ["first_investment"]


def test_investment_conditions_and_campaign_status_decide_who_enters(app):
    big = campaign(app, {"on": "investment_created", "conditions": {"min_amount": "5000.00", "products": ["p90"]}})
    paused = campaign(app, {"on": "investment_created"}, status="paused")
    accept(app, [registered("u", T0), investment("u", T0, "small", amount="100.00", term_days=90),
                 investment("u", T0, "wrong_product", amount="9000.00", term_days=30),
                 investment("u", T0, "ok", amount="9000.00", term_days=90)], at=T0 + timedelta(minutes=5))
    drain(app)
    consume(app)
    assert [m[1] for m in members(app, big)] == ["investment_created:ok"]
    assert members(app, paused) == []


def test_a_delay_postpones_the_members_work_from_acceptance(app):
    cid = campaign(app, {"on": "registered", "delay_minutes": 30})
    accepted = T0 + timedelta(minutes=2)
    accept(app, [registered("u", T0)], at=accepted)
    drain(app)
    consume(app)
    with get_db(app).session_scope() as s:
        due = s.scalar(select(CampaignMember.due_at).where(CampaignMember.campaign_id == cid))
    assert due == accepted + timedelta(minutes=30)
