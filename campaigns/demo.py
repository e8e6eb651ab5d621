"""Demo campaigns: one of each type, across the life cycle, with results from real runs.

`growth demo` calls `load_campaigns` after the platform's demo data (growth/demo.py, which may not import
campaigns). Everything takes the product's own path: the demo marketer creates and submits through the
services, the demo approver approves or rejects (four eyes); scheduled campaigns run at past times through
the runner (`task_campaign_run`, `select_chunk`); trigger campaigns take the recent demo events through the
trigger consumer and the referral feed; fulfilment grants and enqueues; the console provider delivers.
After the runs some members invest, using the voucher they got — more of the treated than of the
holdout — through the event log, so the results show a lift.

Trigger campaigns only take events accepted within 72 hours of occurring, so their members are the
demo's last three days; the scheduled ones run at 10:00 (Asia/Shanghai) on past days.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns import services
from campaigns.consumer import consume_batch, consume_referrals
from campaigns.fulfilment import fulfil_due
from campaigns.models import Campaign, CampaignMember
from campaigns.presets import preset
from campaigns.runner import select_chunk, task_campaign_run
from growth.auth.models import StaffUser
from growth.db import get_db
from growth.demo import deliver_due
from growth.demodata import DEMO_PRODUCTS, DEMO_STAFF
from growth.events.processor import drain
from growth.events.services import ingest
from growth.investors.models import Investor
from growth.money import fen_to_api
from growth.rewards.models import Reward
from growth.timeutil import SHANGHAI, as_utc, local_date, utcnow

DAY = timedelta(days=1)
BATCH = 500
# Who invests after entering, by a member's place on its side (not a coin toss, so every demo shows the lift):
# the 1st and 3rd of every five treated, with the voucher they got; the 6th of every six in the holdout.
TREATED_INVEST = (5, frozenset({0, 2}))
HOLDOUT_INVEST = (6, frozenset({5}))


@dataclass
class CampaignDemoSummary:
    """What the campaign demo did."""

    campaigns: int = 0
    members: int = 0
    already_loaded: bool = False
    by_status: dict[str, int] = field(default_factory=dict)


@dataclass
class _Staff:
    marketer: int
    approver: int
    admin: int


def _staff(session: Session) -> _Staff:
    ids = dict(session.execute(select(StaffUser.role, StaffUser.id).where(
        StaffUser.email.in_([m.email for m in DEMO_STAFF]))).all())
    return _Staff(marketer=ids["marketer"], approver=ids["approver"], admin=ids["admin"])


def _at_ten(day: datetime) -> datetime:
    """Return 10:00 in Shanghai on the business date of `day`."""
    return datetime.combine(local_date(day), time(10, 0), tzinfo=SHANGHAI)


def _document(type_: str, *, created: datetime, **changes: Any) -> dict[str, Any]:
    """Return the type's preset as of its creation, with the demo's changes (None drops a field)."""
    document = preset(type_, now=created) | changes
    return {k: v for k, v in document.items() if v is not None}


# A step of a campaign's life: (action, who, when).
_Step = tuple[str, int, datetime]


def _campaign(session: Session, document: dict[str, Any], author: int, created: datetime,
              steps: list[_Step], note: str | None = None) -> int:
    campaign = services.create(document, session=session, actor_id=author, now=created)
    for action, actor, at in steps:
        services.transition(campaign, action, session=session, actor_id=actor, now=at,
                            note=note if action == "reject" else None)
    return campaign.id


def _create(session: Session, staff: _Staff, now: datetime) -> dict[str, int]:
    """Create the demo's campaigns as marketing staff would, each moved to its state by the right person."""
    m, a = staff.marketer, staff.approver
    today = _at_ten(now)

    def approved(created: datetime) -> list[_Step]:
        return [("submit", m, created + timedelta(hours=1)), ("approve", a, created + timedelta(hours=3))]

    ids: dict[str, int] = {}
    created = now - 21 * DAY
    ids["new_user"] = _campaign(session, _document(
        "new_user", created=created, name="新手礼包 · 付费渠道新客",
        audience={"all": [{"field": "channel", "op": "in", "value": ["baidu_sem", "so360", "wdzj", "wdty"]}]},
        budget={"max_grants": 3000, "max_amount": "200000.00", "per_investor": 3}),
        m, created, approved(created))
    created = now - 20 * DAY
    ids["referral"] = _campaign(session, _document("referral", created=created, name="邀请有礼 · 好友同享"),
                                m, created, approved(created))
    created = now - 16 * DAY
    ids["cashback"] = _campaign(session, _document(
        "cashback", created=created, name="季季丰投资返现", trigger={
            "on": "investment_created", "conditions": {"min_amount": "10000.00", "min_term_days": 90}}),
        m, created, approved(created))
    created = now - 6 * DAY
    ids["rate_boost"] = _campaign(session, _document(
        "rate_boost", created=created, name="限时加息 · 月月盈/季季丰", trigger={
            "on": "investment_created",
            "conditions": {"min_amount": "5000.00", "products": ["prd_yyy_30", "prd_jjf_90"]}}),
        m, created, approved(created))
    created = today - 10 * DAY
    ids["first_investment_nudge"] = _campaign(session, _document(
        "first_investment_nudge", created=created, name="首投提醒 · 注册未投资",
        schedule={"at": (today - 7 * DAY).isoformat()}, holdout_percent=25,
        audience={"all": [{"field": "registered_days_ago", "op": "between", "value": [3, 7]},
                          {"field": "milestone", "op": "not_reached", "value": "first_investment"},
                          {"field": "consent", "op": "has", "value": "sms"}]}), m, created, approved(created))
    created = today - 5 * DAY
    ids["maturity_reinvest"] = _campaign(session, _document(
        "maturity_reinvest", created=created, name="到期复投 · 每日提醒", holdout_percent=20,
        audience={"all": [{"field": "maturity_within_days", "op": "lte", "value": 5},
                          {"field": "consent", "op": "has", "value": "sms"}]}), m, created, approved(created))
    ids["broadcast"] = _campaign(session, _document("broadcast", created=now - 2 * DAY, name="系统维护公告",
                                                    schedule={"at": (today + DAY).isoformat()}),
                                 m, now - 2 * DAY, approved(now - 2 * DAY))
    ids["reactivation"] = _campaign(session, _document("reactivation", created=now - DAY, name="沉睡用户唤醒"),
                                    m, now - DAY, [("submit", m, now - DAY + timedelta(hours=2))])
    created = now - 3 * DAY
    ids["draft"] = _campaign(session, _document(
        "rate_boost", created=created, name="双12理财节加息（待修改）", window=None,
        trigger={"on": "investment_created", "conditions": {"min_amount": "5000.00"}},
        rewards=[{"kind": "rate_boost", "annual_rate": "0.0200", "max_days": 30, "valid_days": 1}]),
        m, created, [("submit", m, created + timedelta(hours=1)), ("reject", a, created + timedelta(hours=5))],
        note="加息2%超出本月预算，请与财务确认后再提交")
    return ids


def _scheduled_runs(app: Flask, campaign_id: int, times: list[datetime]) -> None:
    """Run a scheduled campaign at past times as the scheduler and runner would, then fulfil and deliver."""
    db = get_db(app)
    for at in times:
        with db.session_scope(write=True) as session:
            task_campaign_run(session, at, campaign_id)
        while True:
            with db.session_scope(write=True) as session:
                if not select_chunk(session=session, now=at):
                    break
        _fulfil(app, at + timedelta(minutes=1))


def _fulfil(app: Flask, at: datetime) -> None:
    db = get_db(app)
    while True:
        with db.session_scope(write=True) as session:
            if not fulfil_due(session=session, app=app, now=at):
                break
    deliver_due(app, at=at + timedelta(minutes=1))


def _consume(app: Flask, now: datetime) -> None:
    """Let the trigger consumer read the whole log and the referral feed, as the worker would."""
    db = get_db(app)
    while True:
        with db.session_scope(write=True) as session:
            done = consume_batch(session=session, limit=BATCH, now=now)
            done += consume_referrals(session=session, limit=BATCH, now=now)
        if not done:
            return


def _product(min_term_days: int | None, rng: random.Random) -> dict[str, Any]:
    fitting = [p for p in DEMO_PRODUCTS if p["term_days"] >= (min_term_days or 30)]
    return rng.choice(fitting)


def _after_the_runs(app: Flask, campaign_ids: list[int], *, seed: int, now: datetime) -> None:
    """Some members invest after entering — the treated with their voucher, more often than the holdout."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    db = get_db(app)
    with db.session_scope() as session:
        rows = session.execute(
            select(CampaignMember.id, CampaignMember.holdout, CampaignMember.entered_at, Investor.platform_user_id,
                   CampaignMember.investor_id, CampaignMember.campaign_id)
            .join(Investor, Investor.id == CampaignMember.investor_id)
            .where(CampaignMember.campaign_id.in_(campaign_ids), CampaignMember.status.in_(("done", "holdout")))
            .order_by(CampaignMember.id)).all()
        vouchers = {(r.campaign_id, r.investor_id): r for r in session.scalars(
            select(Reward).where(Reward.campaign_id.in_(campaign_ids), Reward.kind == "voucher"))}
    seen: dict[tuple[int, bool], int] = {}
    for member_id, holdout, entered_at, user_id, investor_id, campaign_id in rows:
        n = seen[campaign_id, holdout] = seen.get((campaign_id, holdout), -1) + 1
        every, picked = HOLDOUT_INVEST if holdout else TREATED_INVEST
        if n % every not in picked:
            continue
        entered_at = as_utc(entered_at)
        at = min(entered_at + timedelta(hours=rng.uniform(2, 96)), now - timedelta(minutes=10))
        if at <= entered_at:
            continue
        voucher = None if holdout else vouchers.get((campaign_id, investor_id))
        if voucher is not None and (voucher.expires_at is None or at < as_utc(voucher.expires_at)):
            least = voucher.min_investment_fen or 100_000
            product = _product(voucher.min_term_days, rng)
            reward_ids = [f"rw_{voucher.id}"]
        else:
            least, product, reward_ids = 100_000, _product(None, rng), []
        amount = least + rng.choice((0, 200_000, 500_000, 1_000_000))
        investment_id = f"demo_cp_{seed}_{member_id}"
        events.append({"id": f"evt_{investment_id}", "type": "investment.created", "occurred_at": at.isoformat(),
                       "user": {"id": user_id},
                       "data": {"investment_id": investment_id, "amount": fen_to_api(amount), "product": product,
                                "reward_ids": reward_ids}})
    with db.session_scope(write=True) as session:
        result = ingest(events, session=session, now=now)
    if result.rejected:
        raise RuntimeError(f"demo campaign investments rejected: {result.rejected[:3]}")
    drain(app)


def load_campaigns(app: Flask, *, seed: int, now: datetime | None = None,
                   progress: Callable[[str], None] | None = None) -> CampaignDemoSummary:
    """Create the demo's campaigns and run them over the demo investors (once: a second call changes nothing)."""
    now = now or utcnow()
    summary = CampaignDemoSummary()
    db = get_db(app)
    say = progress or (lambda _step: None)
    with db.session_scope(write=True) as session:
        staff = _staff(session)
        if session.scalar(select(Campaign.id).where(Campaign.created_by == staff.marketer).limit(1)) is not None:
            summary.already_loaded = True
            return summary
        ids = _create(session, staff, now)
    say("scheduled runs")
    today = _at_ten(now)
    _scheduled_runs(app, ids["first_investment_nudge"], [today - 7 * DAY])
    _scheduled_runs(app, ids["maturity_reinvest"], [today - n * DAY for n in (2, 1)])
    say("trigger campaigns")
    _consume(app, now)
    _fulfil(app, utcnow())  # trigger members are due when their events were accepted: just now
    with db.session_scope(write=True) as session:
        later = utcnow()
        for key, action, actor in (("rate_boost", "pause", staff.marketer), ("cashback", "cancel", staff.approver)):
            services.transition(services.get(ids[key], session=session), action, session=session, actor_id=actor,
                                now=later)
    say("investments after the runs")
    _after_the_runs(app, [ids["first_investment_nudge"], ids["maturity_reinvest"]], seed=seed, now=utcnow())
    _consume(app, utcnow())  # the consumer's cursor passes those events (no active campaign takes them)
    with db.session_scope() as session:
        statuses = session.execute(select(Campaign.status).where(Campaign.id.in_(ids.values()))).scalars().all()
        summary.members = session.scalar(select(func.count()).select_from(CampaignMember).where(
            CampaignMember.campaign_id.in_(ids.values()))) or 0
    summary.campaigns = len(statuses)
    for status in statuses:
        summary.by_status[status] = summary.by_status.get(status, 0) + 1
    return summary
