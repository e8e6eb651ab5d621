"""Load demo data the way production data arrives: staff, channels, links, costs, clicks, and
platform events signed and POSTed through the real ingestion API, then processed."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from growth.acquisition import services as acquisition
from growth.acquisition.models import TrackingLink
from growth.auth.services import create_user
from growth.crm.models import CrmTask
from growth.db import get_db
from growth.demodata import DEMO_CHANNELS, DEMO_STAFF, generate_events
from growth.errors import Conflict
from growth.events.models import PlatformEvent
from growth.events.processor import drain
from growth.investors.models import Investor
from growth.investors.rules import referral_code_for
from growth.money import fen_to_api
from growth.referrals import services as referrals
from growth.referrals.jobs import confirm_due_referrals, defaults_of
from growth.referrals.models import ReferralVisit
from growth.timeutil import SHANGHAI, utcnow

BATCH = 1000
CLICK_SHARE = 0.35  # registrations that came through a tracked link (the rest carry only channel_code)


@dataclass
class DemoSummary:
    """What the demo loader did."""

    staff_created: int = 0
    channels_created: int = 0
    events_sent: int = 0
    events_accepted: int = 0
    events_processed: int = 0
    messages_written: int = 0
    crm_calls: int = 0
    already_loaded: bool = False


def _staff(session: Session) -> int:
    created = 0
    for member in DEMO_STAFF:
        try:
            user = create_user(member.email, role=member.role, password=member.password, name=member.name,
                               session=session, by="demo")
        except Conflict:  # loaded by an earlier run
            continue
        user.password_is_published = True  # printed by `make run` and the README: the home page asks to change it
        created += 1
    return created


def _channels(session: Session, now: datetime) -> tuple[int, dict[str, TrackingLink]]:
    created = 0
    links: dict[str, TrackingLink] = {}
    for ch in DEMO_CHANNELS:
        channel = acquisition.find_channel(ch.code, session=session)
        if channel is None:
            channel = acquisition.create_channel(code=ch.code, name=ch.name, kind=ch.kind, owner=ch.owner,
                                                 session=session, by="demo")
            created += 1
        existing = acquisition.list_links(channel, session=session)
        if existing:
            link = existing[0].link
        else:
            link = acquisition.create_link(
                channel, name=f"{ch.name} 落地页", landing_url=ch.landing_url, session=session, by="demo",
                utm={"utm_source": ch.code, "utm_medium": ch.kind, "utm_campaign": "demo_2026q4"})
        links[ch.code] = link
    # 90 days of daily costs, imported as one sheet like a marketer would.
    rng = random.Random(7)
    lines = ["date,channel_code,amount,note"]
    today = now.astimezone(SHANGHAI).date()
    for ch in DEMO_CHANNELS:
        if ch.cost_per_day_fen <= 0:
            continue
        for back in range(1, 91):
            fen = int(ch.cost_per_day_fen * rng.uniform(0.6, 1.4))
            lines.append(f"{today - timedelta(days=back)},{ch.code},{fen_to_api(fen)},demo")
    acquisition.import_costs("\n".join(lines), filename="demo-costs.csv", session=session, now=now, by="demo")
    return created, links


def _attach_clicks(session: Session, events: list[dict], links: dict[str, TrackingLink], seed: int) -> None:
    """Send a share of registrations through their channel's tracking link, as visitors would."""
    rng = random.Random(seed)
    for event in events:
        data = event.get("data") or {}
        link = links.get(data.get("channel_code") or "")
        if event["type"] != "user.registered" or link is None or rng.random() > CLICK_SHARE:
            continue
        at = datetime.fromisoformat(event["occurred_at"]) - timedelta(minutes=rng.randint(1, 30))
        click, _url = acquisition.record_click(
            link.code, ip=data.get("ip") or f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0",
            referrer="", session=session, now=at)
        if click is not None:
            data["click_id"] = click.click_id
        # Most visitors through a link never register: a few more clicks around each one that did.
        for _ in range(rng.randint(2, 8)):
            acquisition.record_click(
                link.code, ip=f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                user_agent="Mozilla/5.0 (Linux; Android 14) Chrome/120.0 Mobile", referrer="", session=session,
                now=min(at + timedelta(hours=rng.uniform(-72, 72)), datetime.now(UTC) - timedelta(minutes=1)))


SIGNUP_CONSENT = {"sms": 0.65, "email": 0.3, "wechat": 0.5}  # who ticks the marketing box at sign-up, per channel


def _signup_consents(events: list[dict], seed: int) -> list[dict]:
    """The marketing consents investors give at sign-up, as the platform reports them (`user.consent_changed`)."""
    rng = random.Random(seed + 1)
    extra = []
    for event in events:
        if event["type"] != "user.registered":
            continue
        for channel, share in SIGNUP_CONSENT.items():
            if channel == "wechat" and not event["user"].get("wechat_openid"):
                continue
            if rng.random() < share:
                extra.append({"id": f"evt_demo_signup_{event['user']['id']}_{channel}", "type": "user.consent_changed",
                              "occurred_at": event["occurred_at"], "user": {"id": event["user"]["id"]},
                              "data": {"channel": channel, "granted": True}})
    return extra


def load_demo(app: Flask, *, investors: int, seed: int, now: datetime | None = None,
              progress: Callable[[int, int], None] | None = None) -> DemoSummary:
    """Load demo staff, channels, links, costs, and events through the signed events API.

    `progress(sent, total)` is told after each batch.
    """
    now = now or utcnow()
    summary = DemoSummary()
    db = get_db(app)
    events = generate_events(seed=seed, investors=investors, now=now)
    first_id = events[0]["id"]
    events = sorted(events + _signup_consents(events, seed), key=lambda e: e["occurred_at"])
    with db.session_scope(write=True) as session:
        summary.staff_created = _staff(session)
        summary.channels_created, links = _channels(session, now)
        summary.already_loaded = session.scalar(
            select(PlatformEvent.seq).where(PlatformEvent.event_id == first_id)) is not None
        if not summary.already_loaded:
            _attach_clicks(session, events, links, seed)
    if summary.already_loaded:
        return summary

    hook = Webhook(app.config["WEBHOOK_SECRET"].split()[0])
    client = app.test_client()
    for i in range(0, len(events), BATCH):
        body = orjson.dumps({"events": events[i:i + BATCH]})
        msg_id = f"demo_{seed}_{i}"
        sent_at = utcnow()
        response = client.post("/api/v1/events", data=body, headers={
            "Content-Type": "application/json", "webhook-id": msg_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": hook.sign(msg_id, sent_at, body.decode()),
        })
        if response.status_code != 200:
            raise RuntimeError(f"the events API refused the demo batch: {response.status_code} "
                               f"{response.get_data(as_text=True)}")
        result = response.get_json()
        summary.events_sent += len(events[i:i + BATCH])
        summary.events_accepted += result["accepted"]
        if result["rejected"]:
            raise RuntimeError(f"demo events rejected: {result['rejected'][:3]}")
        if progress:
            progress(len(events[i:i + BATCH]), len(events))
    summary.events_processed = drain(app)
    summary.messages_written = _message_history(app, now=now, seed=seed)
    _reward_history(app, now=now, seed=seed)
    summary.events_processed += _referral_program(app, now=now, seed=seed)
    summary.crm_calls = _crm_week(app, now=now, seed=seed)
    return summary


# How the demo agents' calls ended, in proportion (要求勿扰 is rare, as it is on a real team).
_DEMO_OUTCOMES = ("interested",) * 4 + ("not_interested",) * 3 + ("no_answer",) * 5 + ("invested",) * 2 + (
    "refused", "invalid_number", "do_not_contact")
_DEMO_NOTES = ("客户说下周发工资后再考虑", "对加息券感兴趣，已说明使用规则", "问到资金安全，已介绍存管银行",
               "不方便接听，约晚上再打", "嫌期限太长，推荐了30天产品")


# Templates in the message library the demo agents send from the investor page (service and marketing).
_DEMO_LIBRARY = (
    ("回访确认", "sms", "service", "", "{{ investor.name }}您好，您预约的回访已确认，客服稍后与您联系。"),
    ("实名认证指引", "email", "service", "完成实名认证，开启投资",
     "{{ investor.name }}您好：在App“我的-安全中心”上传身份证即可完成实名认证，一般5分钟内审核完成。"),
    ("新手标提醒", "sms", "marketing", "",
     "{{ investor.name }}您好，新手专享30天标本周开放，欢迎了解。理财有风险，投资需谨慎。回T退订"),
)


def _template_library(session: Session, now: datetime) -> None:
    from channels.template_library import TemplateDraft, create_template

    for name, channel, message_class, subject, body in _DEMO_LIBRARY:
        try:
            create_template(TemplateDraft(name=name, channel=channel, message_class=message_class, subject=subject,
                                          body=body), session=session, now=now)
        except Conflict:  # loaded by an earlier run
            continue


def _crm_week(app: Flask, *, now: datetime, seed: int) -> int:
    """Run the follow-up rules as of a week ago and have the demo agents work their lists through the week (calls
    with every outcome, notes, follow-ups agreed), then run the rules as of now; return the calls logged."""
    from growth.crm import jobs as crm_jobs
    from growth.crm import services as crm

    rng = random.Random(seed)
    db = get_db(app)
    defaults = crm_jobs.defaults_of(app)
    calls = 0
    week_ago = now - timedelta(days=7)
    with db.session_scope(write=True) as session:
        _template_library(session, now)
        crm_jobs.follow_up(session=session, now=week_ago, defaults=defaults)
        agents = [a.id for a in crm.active_agents(session=session)]
        for day in range(7):
            at = week_ago + timedelta(days=day, hours=1)
            open_tasks = list(session.scalars(
                select(CrmTask).where(CrmTask.status == "open", CrmTask.assignee_id.in_(agents))
                .order_by(CrmTask.due_at, CrmTask.id).limit(6 * len(agents))))
            for n, task in enumerate(open_tasks):
                if rng.random() < 0.3:  # not every task is worked the day it comes up
                    continue
                outcome = rng.choice(_DEMO_OUTCOMES)
                follow = (at + timedelta(days=rng.randint(2, 6)) if outcome in ("interested", "no_answer")
                          and rng.random() < 0.6 else None)
                crm.log_call(task.id, outcome=outcome, note=rng.choice(_DEMO_NOTES) if rng.random() < 0.5 else None,
                             next_follow_up_at=follow, agent_id=task.assignee_id or agents[0], may_manage=False,
                             session=session, now=at + timedelta(minutes=7 * n))
                calls += 1
                if rng.random() < 0.2:
                    crm.add_note(task.investor_id, rng.choice(_DEMO_NOTES), author_id=task.assignee_id or agents[0],
                                 session=session, now=at + timedelta(minutes=7 * n + 3))
            crm_jobs.follow_up(session=session, now=at + timedelta(hours=10), defaults=defaults)
        crm_jobs.follow_up(session=session, now=now, defaults=defaults)
    return calls


def _reward_history(app: Flask, *, now: datetime, seed: int) -> None:
    """Grant rewards of every kind through the ledger, use them through platform events, then run the ledger jobs.

    Vouchers and rate boosts are used by `investment.created` events naming them (one use breaks a
    condition and shows as invalid), the rest expire; cashback is paid after its hold or clawed back by
    an early exit; experience funds are paid after their days; cash is paid at grant.
    """
    from growth.events.services import ingest
    from growth.investors.models import Investor
    from growth.rewards import jobs
    from growth.rewards.rules import Terms
    from growth.rewards.services import MANUAL_BUDGET, budget_for, grant

    rng = random.Random(seed)
    db = get_db(app)
    events: list[dict] = []

    def invest(user_id: str, investment_id: str, at: datetime, amount_fen: int, term: int,
               reward_ids: list[str]) -> None:
        events.append({"id": f"demo_rw_{seed}_{investment_id}", "type": "investment.created",
                       "occurred_at": at.isoformat(), "user": {"id": user_id},
                       "data": {"investment_id": investment_id, "amount": fen_to_api(amount_fen),
                                "product": {"id": f"p{term}", "name": f"{term}天定期", "term_days": term,
                                            "annual_rate": "0.0800"}, "reward_ids": reward_ids}})

    with db.session_scope(write=True) as session:
        people = list(session.scalars(select(Investor).where(Investor.registered_at.is_not(None))
                                      .order_by(Investor.id).limit(40)))
        # Staff grants (the manual budget): campaign rewards come from real campaign runs (campaigns/demo.py).
        budget = budget_for(*MANUAL_BUDGET, session=session, now=now - timedelta(days=70), name="手工发放")
        for n, person in enumerate(people):
            at = now - timedelta(days=65 - n, hours=rng.randint(0, 8))
            uid = person.platform_user_id
            kind = ("voucher", "rate_boost", "experience_funds", "cash", "cashback")[n % 5]
            terms = {
                "voucher": Terms(amount_fen=5000, valid_days=30, min_investment_fen=500_000, min_term_days=30),
                "rate_boost": Terms(annual_rate_bp=100, max_days=30, valid_days=30, max_investment_fen=5_000_000),
                "experience_funds": Terms(amount_fen=888_800, annual_rate_bp=800, days=7),
                "cash": Terms(amount_fen=1888),
                "cashback": Terms(rate_bp=50, hold_days=30, principal_fen=1_000_000, investment_id=f"demo-cb-{uid}"),
            }[kind]
            if kind == "cashback":
                invest(uid, f"demo-cb-{uid}", at, 1_000_000, 90, [])
                if n % 10 == 4:  # an early exit inside the hold: clawed back
                    events.append({"id": f"demo_rw_{seed}_exit_{uid}", "type": "investment.redeemed",
                                   "occurred_at": (at + timedelta(days=9)).isoformat(), "user": {"id": uid},
                                   "data": {"investment_id": f"demo-cb-{uid}", "amount": "10000.00"}})
            reward = grant(session=session, key=f"demo:{seed}:{uid}:{kind}", investor_id=person.id, kind=kind,
                           terms=terms, budget=budget, actor=DEMO_STAFF[0].email, now=at, cause=f"demo:{uid}",
                           note="运营手工发放（演示）")
            ref = f"rw_{reward.id}"
            if kind in ("voucher", "rate_boost") and n % 3 != 2:  # the others expire unused
                small = n % 7 == 0  # below the voucher's minimum: an invalid use, the reward stays usable
                invest(uid, f"demo-rw-{uid}", at + timedelta(days=3), 100_000 if small else 800_000, 60, [ref])
        ingest(events, session=session, now=now)
    drain(app)
    with db.session_scope(write=True) as session:
        jobs.run_due(session=session, now=now)


# --- a delivery history on the console provider ---------------------------------------------------

# The console provider has no send rate to respect: no limit, so the demo does not wait on the rate limiter.
DEMO_SMS_ENVIRONMENT = {"GROWTH_SMS_PROVIDER": "console", "GROWTH_SMS_SIGN_NAME": "投资人增长", "GROWTH_SMS_RATE": "0"}


def deliver_due(app: Flask, *, at: datetime) -> None:
    """Deliver every message due at `at` through the real delivery checks, on the console provider only."""
    from channels.delivery import Deliverer

    deliverer = Deliverer(app, clock=lambda: at, environment=DEMO_SMS_ENVIRONMENT)
    try:
        while deliverer.run_once():
            pass
    finally:
        deliverer.close()


def _message_history(app: Flask, *, now: datetime, seed: int) -> int:
    """Send a week of demo messages through the real outbox and delivery checks, on the console provider only.

    Each day: a maturity notice (service: delivered), two marketing SMS campaigns to the same people
    (no consent → skipped; the second the same day → capped by `sms:1/day`), and WeChat notices that
    fall back to SMS (WeChat is not configured: failed, then the SMS delivered). Today: email notices held
    by the email channel's kill switch (deferred). Returns how many messages there are now.
    """
    from channels.adapters.port import Channel, MessageClass
    from channels.models import ChannelSetting, OutboxMessage
    from channels.outbox import Fallback, NewMessage, enqueue_many
    from growth.investors.models import Investor

    rng = random.Random(seed)
    db = get_db(app)
    with db.session_scope() as session:
        people = list(session.execute(select(Investor.id, Investor.platform_user_id)
                                      .where(Investor.phone.is_not(None)).order_by(Investor.id).limit(400)))
    if len(people) < 10:
        return 0
    written = 0

    def send_at(at: datetime, messages: list[NewMessage]) -> None:
        nonlocal written
        with db.session_scope(write=True) as session:
            written += len(enqueue_many(messages, session=session, now=at).ids)
        deliver_due(app, at=at)

    def message(person: tuple[int, str], *, sender: str, cause: str, channel: Channel, cls: MessageClass,
                content: dict, fallbacks: tuple[Fallback, ...] = ()) -> NewMessage:
        return NewMessage(sender=sender, cause=cause, channel=channel, message_class=cls, content=content,
                          investor_id=person[0], user_id=person[1], fallbacks=fallbacks)

    today = now.astimezone(SHANGHAI).date()
    for days_ago in range(7, 0, -1):
        day = today - timedelta(days=days_ago)
        morning = datetime(day.year, day.month, day.day, 10, 0, tzinfo=SHANGHAI)
        chosen = rng.sample(people, min(60, len(people)))
        notice = {"text": "您持有的理财产品将于3日后到期，到期资金将自动回到账户余额。"}
        notices = [message(p, sender="maturity-notice", cause=f"maturity-{day}", channel=Channel.SMS,
                           cls=MessageClass.SERVICE, content=notice) for p in chosen[:20]]
        send_at(morning, notices)
        offer = {"text": "双12理财节：新手专享8%年化，加息券已放入账户。回T退订"}
        send_at(morning + timedelta(hours=1), [
            message(p, sender="demo-double12", cause=f"run-{day}", channel=Channel.SMS, cls=MessageClass.MARKETING,
                    content=offer) for p in chosen[20:50]])
        send_at(morning + timedelta(hours=5), [
            message(p, sender="demo-reinvest", cause=f"run-{day}", channel=Channel.SMS, cls=MessageClass.MARKETING,
                    content={"text": "到期资金复投送0.5%加息券，三天内有效。回T退订"}) for p in chosen[20:50]])
        send_at(morning + timedelta(hours=2), [
            message(p, sender="reward-notice", cause=f"reward-{day}", channel=Channel.WECHAT,
                    cls=MessageClass.SERVICE,
                    content={"wechat_kind": "template", "template_id": "REWARD_ARRIVED", "data": {"first": "红包到账"}},
                    fallbacks=(Fallback(Channel.SMS, {"text": "您的新手红包50元已到账，投资时可抵扣。"}),))
            for p in chosen[50:60]])
    with db.session_scope(write=True) as session:
        if session.get(ChannelSetting, "email_paused") is None:
            session.add(ChannelSetting(key="email_paused", value="true", updated_by=None, updated_at=now))
    statement = {"subject": "您的11月对账单", "text": "您好，附上11月对账单。"}
    send_at(now, [message(p, sender="statement", cause=f"statement-{today}", channel=Channel.EMAIL,
                          cls=MessageClass.SERVICE, content=statement) for p in people[:8]])
    with db.session_scope() as session:  # with the SMS fallbacks delivery wrote
        return session.scalar(select(func.count()).select_from(OutboxMessage)) or written


# --- the referral program: every state, every fraud rule, reviews and share-link visits -------------------


def _referral_program(app: Flask, *, now: datetime, seed: int) -> int:
    """Send referrals in every state (each fraud rule at least once) through the events API, confirm what is due,
    decide two flagged ones as a reviewer would, and count share-link visits; return the events processed."""
    day = timedelta(days=1)
    events: list[dict] = []

    def registered(uid: str, at: datetime, phone: str, *, by: str | None = None, ip: str | None = None,
                   device: str | None = None) -> None:
        data = {k: v for k, v in (("referral_code", by and referral_code_for(by)), ("ip", ip),
                                  ("device_id", device)) if v}
        events.append({"id": f"evt_demo_ref_{seed}_{len(events)}", "type": "user.registered",
                       "occurred_at": at.isoformat(), "user": {"id": uid, "phone": phone}, "data": data})

    def invested(uid: str, at: datetime, amount: str, term: int, *, redeemed: datetime | None = None) -> None:
        iid = f"{uid}_inv1"
        events.append({"id": f"evt_demo_ref_{seed}_{len(events)}", "type": "investment.created",
                       "occurred_at": at.isoformat(), "user": {"id": uid},
                       "data": {"investment_id": iid, "amount": amount, "product": {
                           "id": f"demo_p{term}", "name": f"稳盈{term}天", "term_days": term,
                           "annual_rate": "0.0800"}}})
        if redeemed:
            events.append({"id": f"evt_demo_ref_{seed}_{len(events)}", "type": "investment.redeemed",
                           "occurred_at": redeemed.isoformat(), "user": {"id": uid},
                           "data": {"investment_id": iid, "amount": amount}})

    ref, fan = "u_demo_ref_star", "u_demo_ref_fan"
    registered(ref, now - 70 * day, "+8613512340001", ip="61.135.10.8", device="demo-dev-star")
    registered(fan, now - 70 * day, "+8613512340002", ip="114.80.20.9", device="demo-dev-fan")
    people = [  # (uid, registered days ago, phone, ip, device, investment (amount, term, days ago, redeemed after))
        ("u_demo_confirmed", 50, "+8613612340001", "183.14.1.1", "d-c1", ("2000.00", 90, 49, None)),
        ("u_demo_confirmed2", 45, "+8613612340002", "183.14.2.1", "d-c2", ("10000.00", 60, 44, None)),
        ("u_demo_qualified", 10, "+8613612340003", "183.14.3.1", "d-q1", ("5000.00", 60, 9, None)),
        ("u_demo_pending", 3, "+8613612340004", "183.14.4.1", "d-p1", None),
        ("u_demo_small", 20, "+8613612340005", "183.14.5.1", "d-s1", ("500.00", 30, 19, None)),
        ("u_demo_redeemed", 25, "+8613612340006", "183.14.6.1", "d-r1", ("3000.00", 30, 24, 5)),
        ("u_demo_samephone", 15, "+8613512340001", "183.14.7.1", "d-x1", ("1000.00", 30, 14, None)),
        ("u_demo_samedevice", 15, "+8613612340008", "183.14.8.1", "demo-dev-star", ("1000.00", 30, 14, None)),
        ("u_demo_sameip", 15, "+8613612340009", "61.135.10.8", "d-x3", ("1000.00", 30, 14, None)),
        ("u_demo_subnet", 69, "+8613612340010", "61.135.10.77", "d-x4", ("1000.00", 30, 60, None)),
        ("u_demo_virtual", 40, "+8617012340011", "183.14.11.1", "d-x5", ("2000.00", 30, 39, None)),
        ("u_demo_virtual2", 12, "+8616512340012", "183.14.12.1", "d-x6", ("1500.00", 30, 11, None)),
        ("u_demo_virtual3", 12, "+8616712340013", "183.14.13.1", "d-x7", None),
    ]
    for uid, ago, phone, ip, device, inv in people:
        registered(uid, now - ago * day, phone, by=ref, ip=ip, device=device)
        if inv:
            amount, term, inv_ago, redeemed_after = inv
            at = now - inv_ago * day
            invested(uid, at, amount, term, redeemed=at + redeemed_after * day if redeemed_after else None)
    # Seven referees of one referrer on one day (more than K = 5), and a cycle: fan referred by a referee of hers.
    burst = now - 8 * day
    for n in range(7):
        registered(f"u_demo_burst{n}", burst + n * timedelta(minutes=9), f"+861371234{n:04d}", by=fan,
                   ip=f"27.{n}.{n}.{n}", device=f"d-b{n}")
    registered("u_demo_loop", now - 66 * day, "+8613712349999", by=fan, ip="27.99.9.9", device="d-loop")
    registered(fan, now - 71 * day, "+8613512340002", by="u_demo_loop", ip="114.80.20.9", device="demo-dev-fan")

    hook = Webhook(app.config["WEBHOOK_SECRET"].split()[0])
    body = orjson.dumps({"events": events})
    msg_id, sent_at = f"demo_referrals_{seed}", utcnow()
    response = app.test_client().post("/api/v1/events", data=body, headers={
        "Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": hook.sign(msg_id, sent_at, body.decode())})
    if response.status_code != 200 or response.get_json()["rejected"]:
        raise RuntimeError(f"the events API refused the demo referrals: {response.get_data(as_text=True)[:500]}")
    processed = drain(app)

    rng = random.Random(seed)
    db = get_db(app)
    with db.session_scope(write=True) as session:
        defaults = defaults_of(app)
        confirm_due_referrals(session=session, now=now, defaults=defaults)
        ids = dict(session.execute(select(Investor.platform_user_id, Investor.id).where(
            Investor.platform_user_id.in_([ref, fan, "u_demo_virtual", "u_demo_virtual2"]))).all())
        settings = referrals.current_settings(session=session, defaults=defaults)
        for uid, decision, note in (("u_demo_virtual", "approved", "电话回访确认为真实好友"),
                                    ("u_demo_virtual2", "rejected", "号码为虚拟号段且无法联系")):
            referral = referrals.referral_of(ids[uid], session=session)
            if referral is not None and referral.status == "in_review":
                referrals.decide(ids[uid], decision=decision, note=note, session=session,
                                 by="approver@demo.growth.local", now=now, settings=settings)
        if not session.scalar(select(func.count()).select_from(ReferralVisit)):
            for n in range(60):
                session.add(ReferralVisit(referrer_id=ids[ref if n % 3 else fan],
                                          at=now - timedelta(minutes=rng.randrange(8 * 7 * 24 * 60)),
                                          visitor=f"demo{n:04d}"))
    return processed
