"""Fulfilment: members get their reward list as one budget grant and their rendered messages, once each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from campaigns import services
from campaigns.consumer import consume_batch
from campaigns.fulfilment import fulfil_due
from campaigns.models import Campaign, CampaignMember
from channels.models import OutboxMessage
from channels.templates import NAME_SLOT, fill_name
from growth.db import get_db
from growth.events.processor import drain
from growth.events.services import ingest
from growth.rewards.models import Reward, RewardBudget
from tests.events import event, investment

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=1)
WELCOME = {"channel": "sms", "text": "{{ investor.name }}您好，{{ reward.amount }}元{{ reward.kind_label }}已到账，"
                                     "{{ reward.expires_on }}前有效。"}
PACK = [{"kind": "voucher", "amount": "50.00", "min_investment": "5000.00", "valid_days": 30},
        {"kind": "experience_funds", "amount": "10000.00", "annual_rate": "0.0800", "days": 3, "valid_days": 3}]


def campaign(app, trigger: dict[str, Any], *, status: str = "active", **extra: Any) -> int:  # type: ignore[no-untyped-def]
    doc = {"name": "新手礼包", "type": "new_user", "class": "service", "trigger": trigger, **extra}
    with get_db(app).session_scope(write=True) as s:
        c = services.create(doc, session=s, actor_id=None, now=T0 - timedelta(days=2))
        s.execute(update(Campaign).where(Campaign.id == c.id).values(status=status, approved_at=T0 - timedelta(days=1)))
        return c.id


def happen(app, events: list[dict[str, Any]], at: datetime = LATER) -> None:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        assert ingest(events, session=s, now=at).rejected == []
    drain(app)
    with get_db(app).session_scope(write=True) as s:
        while consume_batch(session=s, limit=500, now=at):
            pass


def fulfil(app, now: datetime = LATER) -> int:  # type: ignore[no-untyped-def]
    total = 0
    while True:
        with get_db(app).session_scope(write=True) as s:
            done = fulfil_due(session=s, app=app, now=now)
        total += done
        if not done:
            return total


def registered(uid: str, name: str = "张三") -> dict[str, Any]:
    return event("user.registered", uid, T0, {}, name=name, phone="+8613800138000")


def statuses(app, cid: int) -> list[str]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return list(s.scalars(select(CampaignMember.status).where(CampaignMember.campaign_id == cid)
                              .order_by(CampaignMember.id)))


def test_the_reward_list_is_one_budget_grant_and_a_member_over_budget_gets_nothing(app):
    cid = campaign(app, {"on": "registered"}, rewards=PACK, messages=[WELCOME],
                   budget={"max_grants": 3, "max_amount": "30150.00"})
    happen(app, [registered(f"u{i}") for i in range(5)])
    assert fulfil(app) == 5
    assert statuses(app, cid) == ["done"] * 3 + ["budget_exhausted"] * 2
    with get_db(app).session_scope() as s:
        kinds = s.execute(select(Reward.kind, func.count()).where(Reward.campaign_id == cid).group_by(Reward.kind))
        assert dict(kinds.all()) == {"voucher": 3, "experience_funds": 3}
        budget = s.scalar(select(RewardBudget).where(RewardBudget.owner_key == str(cid)))
        assert (budget.used_grants, budget.used_amount_fen) == (3, 3 * 1_005_000)
        texts = list(s.scalars(select(OutboxMessage.content).where(OutboxMessage.campaign_id == cid,
                                                                   OutboxMessage.channel == "sms")))
        webhooks = s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.channel == "webhook", OutboxMessage.campaign_id == cid))
    assert len(texts) == 3
    assert texts[0]["text"] == f"{NAME_SLOT}您好，50.00元抵扣红包已到账，2026-12-31前有效。"  # delivery fills the name
    assert webhooks == 6  # reward.granted for each reward


def test_fulfilling_again_after_a_lost_commit_grants_and_sends_nothing_twice(app):
    cid = campaign(app, {"on": "registered"}, rewards=PACK[:1], messages=[WELCOME])
    happen(app, [registered("u1")])
    fulfil(app)
    with get_db(app).session_scope(write=True) as s:  # as if the status update had been lost in a crash
        s.execute(update(CampaignMember).where(CampaignMember.campaign_id == cid).values(status="pending"))
    fulfil(app)
    with get_db(app).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Reward).where(Reward.campaign_id == cid)) == 1
        assert s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.campaign_id == cid, OutboxMessage.channel == "sms")) == 1
        assert s.scalar(select(RewardBudget.used_grants).where(RewardBudget.owner_key == str(cid))) == 1


def test_a_rate_boost_on_the_triggering_investment_is_redeemed_at_grant_at_its_exact_cost(app):
    cid = campaign(app, {"on": "investment_created", "conditions": {"products": ["p90"]}},
                   type="rate_boost", rewards=[{"kind": "rate_boost", "annual_rate": "0.0100", "max_days": 30,
                                                "valid_days": 1}], budget={"max_amount": "1000.00"})
    happen(app, [registered("u"), investment("u", T0 + timedelta(minutes=5), "inv_9", amount="36500.00",
                                               term_days=90)])
    fulfil(app)
    with get_db(app).session_scope() as s:
        reward = s.scalar(select(Reward).where(Reward.campaign_id == cid))
        assert (reward.status, reward.investment_id) == ("redeemed", "inv_9")
        assert reward.cost_fen == 3000  # 36,500.00 × 1 % × min(30, 90) / 365 = 30.00
        assert s.scalar(select(RewardBudget.used_amount_fen).where(RewardBudget.owner_key == str(cid))) == 3000


def test_cashback_is_on_the_triggering_investment(app):
    cid = campaign(app, {"on": "investment_created"}, type="cashback",
                   rewards=[{"kind": "cashback", "rate": "0.0050", "hold_days": 30}])
    happen(app, [registered("u"), investment("u", T0 + timedelta(minutes=5), "inv_c", amount="20000.00")])
    fulfil(app)
    with get_db(app).session_scope() as s:
        reward = s.scalar(select(Reward).where(Reward.campaign_id == cid))
        assert (reward.kind, reward.principal_fen, reward.investment_id) == ("cashback", 2_000_000, "inv_c")


def test_holdout_members_get_nothing_and_a_paused_campaigns_members_wait(app):
    held = campaign(app, {"on": "registered"}, rewards=PACK[:1], messages=[WELCOME], holdout_percent=50)
    paused = campaign(app, {"on": "registered"}, rewards=PACK[:1])
    happen(app, [registered(f"u{i}") for i in range(12)])
    with get_db(app).session_scope(write=True) as s:
        s.execute(update(Campaign).where(Campaign.id == paused).values(status="paused", paused_from="active"))
    fulfil(app)
    got = statuses(app, held)
    assert set(got) == {"holdout", "done"}
    with get_db(app).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Reward).where(Reward.campaign_id == held)) == got.count("done")
    assert set(statuses(app, paused)) == {"pending"}
    with get_db(app).session_scope(write=True) as s:
        s.execute(update(Campaign).where(Campaign.id == paused).values(status="cancelled"))
    fulfil(app)
    assert set(statuses(app, paused)) == {"cancelled"}


def test_a_fallback_message_rides_with_the_message_before_it(app):
    cid = campaign(app, {"on": "registered"}, messages=[
        {"channel": "email", "subject": "欢迎", "text": "{{ investor.name }}，欢迎"},
        {"channel": "sms", "text": "{{ investor.name }}，欢迎", "fallback": True}])
    happen(app, [registered("u")])
    fulfil(app)
    with get_db(app).session_scope() as s:
        rows = s.execute(select(OutboxMessage.channel, OutboxMessage.fallback, OutboxMessage.content)
                         .where(OutboxMessage.campaign_id == cid)).all()
    assert len(rows) == 1
    channel, fallback, content = rows[0]
    assert (channel, fallback) == ("email", "sms")
    assert content["fallbacks"][0]["content"]["text"] == f"{NAME_SLOT}，欢迎"
    assert fill_name(content, "张三")["fallbacks"][0]["content"]["text"] == "张三，欢迎"


def test_per_investor_limits_count_entries_across_the_campaign(app):
    cid = campaign(app, {"on": "investment_created"}, entry={"every_days": 1}, rewards=PACK[:1],
                   budget={"per_investor": 1})
    happen(app, [registered("u"), investment("u", T0 + timedelta(minutes=1), "i1")], at=LATER)
    happen(app, [investment("u", T0 + timedelta(days=2), "i2")], at=T0 + timedelta(days=2, minutes=1))
    fulfil(app, T0 + timedelta(days=2, minutes=2))
    assert statuses(app, cid) == ["done", "budget_exhausted"]


def test_results_count_members_grants_messages_rewards_and_investments_by_side(app):
    from campaigns.results import results
    from campaigns.segments import in_holdout

    cid = campaign(app, {"on": "registered"}, rewards=[{"kind": "cash", "amount": "5.00"}], messages=[WELCOME],
                   holdout_percent=40, budget={"max_grants": 4})
    users = [f"r{i}" for i in range(12)]
    happen(app, [registered(u) for u in users])
    fulfil(app)
    held = [u for u in users if in_holdout(cid, u, 40)]
    treated = [u for u in users if u not in held]
    assert held and len(treated) > 4
    happen(app, [investment(treated[0], T0 + timedelta(hours=2), "t1", amount="1000.00"),
                 investment(held[0], T0 + timedelta(hours=2), "h1", amount="300.00")], at=T0 + timedelta(hours=3))
    with get_db(app).session_scope() as s:
        got = results(cid, session=s)
    assert (got["members"], got["holdout"], got["treated"]) == (12, len(held), len(treated))
    assert (got["granted"], got["budget_exhausted"]) == (4, len(treated) - 4)
    assert got["messages"]["sms"]["queued"] == 4
    assert got["rewards"]["granted"] == 4 and got["rewards"]["paid"] == 4 and got["rewards"]["cost"] == "20.00"
    assert got["invested"] == {"treated": {"investors": 1, "amount": "1000.00"},
                               "holdout": {"investors": 1, "amount": "300.00"}}


def test_a_confirmed_referral_rewards_the_referee_and_the_referrer_each_with_their_own_rewards(app, client):
    from campaigns.consumer import consume_referrals
    from growth.investors.models import Investor
    from tests.integration.test_referrals import D, confirm, pair

    start = datetime(2026, 10, 5, 2, 0, tzinfo=UTC)
    cid = campaign(app, {"on": "referral_confirmed"}, type="referral", messages=[WELCOME],
                   rewards=[{"kind": "cash", "amount": "20.00", "to": "referrer"},
                            {"kind": "voucher", "amount": "10.00", "valid_days": 30, "to": "referee"}])
    with get_db(app).session_scope(write=True) as s:  # approved before the program confirms anything
        s.execute(update(Campaign).where(Campaign.id == cid).values(approved_at=start))
    pair(app, client)
    confirmed_at = start + 31 * D
    assert len(confirm(app, confirmed_at)) == 1
    with get_db(app).session_scope(write=True) as s:
        assert consume_referrals(session=s, limit=100, now=confirmed_at) == 1
    with get_db(app).session_scope(write=True) as s:
        assert consume_referrals(session=s, limit=100, now=confirmed_at) == 0  # its cursor moved
    fulfil(app, confirmed_at + timedelta(minutes=1))
    with get_db(app).session_scope() as s:
        got = dict(s.execute(select(Investor.platform_user_id, Reward.kind)
                             .join(Investor, Investor.id == Reward.investor_id)
                             .where(Reward.campaign_id == cid)).all())
        to = set(s.scalars(select(OutboxMessage.user_id).where(OutboxMessage.campaign_id == cid,
                                                               OutboxMessage.channel == "sms")))
    assert got == {"A": "cash", "B": "voucher"}
    assert to == {"A", "B"}
    from growth.referrals.services import program_stats
    from growth.timeutil import local_date
    granted_on = local_date(confirmed_at + timedelta(minutes=1))
    with get_db(app).session_scope() as s:
        weeks = program_stats(session=s, start=granted_on, end=granted_on)
    assert [w.rewarded for w in weeks] == [1]  # the referral, once, though both sides got a reward
