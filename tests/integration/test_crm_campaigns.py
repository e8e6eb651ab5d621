"""The CRM and campaigns together: a call outcome is a trigger (`crm_call`, read from the CRM's call feed with
a cursor of its own) that enters an investor once across replays and restarts; a campaign step asks the CRM for
a follow-up task (`crm_task`), made once per member; 要求勿扰 stops a queued CRM marketing message."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError

from campaigns import services as campaign_services
from campaigns.consumer import consume_crm_calls
from campaigns.definition import parse
from campaigns.fanout import in_sql
from campaigns.fulfilment import fulfil_due
from campaigns.models import Campaign, CampaignMember
from campaigns.preview import preview
from channels.delivery import Deliverer
from channels.models import MessageTemplate, OutboxMessage
from channels.services import record_statement
from growth.crm import messages, services
from growth.crm.models import CALL_FEED_CURSOR, CrmCall, CrmTask
from growth.db import get_db
from growth.events.models import ProcessorCursor
from tests.factories import make_investor, make_user

T0 = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: outside the marketing quiet hours
APPROVED = T0 - timedelta(days=1)
NURTURE = {"channel": "sms", "text": "{{ investor.name }}您好，感谢接听，专属顾问稍后联系您。"}


def campaign(app, trigger: dict[str, Any] | None = None, *, status: str = "active", approved: datetime = APPROVED,
             **extra: Any) -> int:  # type: ignore[no-untyped-def]
    doc = {"name": "通话意向跟进", "type": "first_investment_nudge", "class": "service",
           "trigger": trigger or {"on": "crm_call", "conditions": {"outcomes": ["interested"]}}, **extra}
    with get_db(app).session_scope(write=True) as s:
        c = campaign_services.create(doc, session=s, actor_id=None, now=approved - timedelta(hours=1))
        s.execute(update(Campaign).where(Campaign.id == c.id).values(status=status, approved_at=approved))
        return c.id


_causes = itertools.count(1)


def open_task(s, investor_id: int, *, agent_id: int | None = None, reason: str = "follow_up") -> int:  # type: ignore[no-untyped-def]
    task = CrmTask(investor_id=investor_id, reason=reason, status="open", assignee_id=agent_id, due_at=T0,
                   source_key=f"{investor_id}:{reason}", cause_key=f"test:{next(_causes)}")
    s.add(task)
    s.flush()
    return task.id


def call(app, outcome: str, *, at: datetime = T0, investor_id: int | None = None) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Log a call with an outcome on a new task (of a new investor unless given); return (investor id, call id)."""
    with get_db(app).session_scope(write=True) as s:
        agent = make_user(s, role="agent")
        investor = investor_id if investor_id is not None else make_investor(s, registered_at=T0 - timedelta(days=3)).id
        logged = services.log_call(open_task(s, investor, agent_id=agent.id),
                                   outcome=outcome, note=None, next_follow_up_at=None, agent_id=agent.id,
                                   may_manage=False, session=s, now=at)
        return investor, logged.id


def consume(app, limit: int = 100) -> int:  # type: ignore[no-untyped-def]
    total = 0
    while True:
        with get_db(app).session_scope(write=True) as s:
            done = consume_crm_calls(session=s, limit=limit, now=T0 + timedelta(hours=1))
        total += done
        if not done:
            return total


def members(app, campaign_id: int) -> list[tuple[int, str, str]]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return [tuple(r) for r in s.execute(  # type: ignore[misc]
            select(CampaignMember.investor_id, CampaignMember.cause, CampaignMember.entry_key)
            .where(CampaignMember.campaign_id == campaign_id).order_by(CampaignMember.id))]


def fulfil(app, now: datetime = T0 + timedelta(hours=2)) -> int:  # type: ignore[no-untyped-def]
    total = 0
    while True:
        with get_db(app).session_scope(write=True) as s:
            done = fulfil_due(session=s, app=app, now=now)
        total += done
        if not done:
            return total


def tasks(app, reason: str = "campaign") -> list[CrmTask]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        rows = list(s.scalars(select(CrmTask).where(CrmTask.reason == reason).order_by(CrmTask.id)))
        s.expunge_all()
        return rows


# --- call outcomes as campaign triggers ----------------------------------------------------------------


def test_a_call_outcome_enters_its_campaign_once_and_other_outcomes_do_not(app, db_kind):
    cid = campaign(app)
    keen, keen_call = call(app, "interested")
    call(app, "no_answer")
    call(app, "do_not_contact")

    assert consume(app) == 3

    assert members(app, cid) == [(keen, f"crm_call:{keen_call}", "once")]


def test_a_replay_or_a_restart_of_the_consumer_enters_nobody_twice(app, db_kind):
    cid = campaign(app, entry={"every_days": 1})
    first = [call(app, "interested") for _ in range(3)]
    consume(app, limit=2)
    with get_db(app).session_scope(write=True) as s:  # as if the consumer's commit had been lost, or a replay
        s.execute(update(ProcessorCursor).where(ProcessorCursor.name == CALL_FEED_CURSOR).values(position=0))
    assert consume(app) == 3
    # A batch rolled back by a crash is read again by the next worker: nothing lost, nothing twice.
    later = call(app, "interested", at=T0 + timedelta(minutes=5))
    with pytest.raises(RuntimeError), get_db(app).session_scope(write=True) as s:
        assert consume_crm_calls(session=s, limit=10, now=T0) == 1
        raise RuntimeError("the worker died before its commit")
    assert consume(app) == 1

    assert sorted(members(app, cid)) == sorted((i, f"crm_call:{c}", f"crm_call:{c}") for i, c in [*first, later])


def test_entry_once_lets_an_investor_in_once_however_many_calls(app, db_kind):
    once = campaign(app)
    every = campaign(app, entry={"every_days": 7})
    investor, first = call(app, "interested")
    call(app, "interested", at=T0 + timedelta(days=1), investor_id=investor)
    _, third = call(app, "interested", at=T0 + timedelta(days=8), investor_id=investor)
    consume(app)

    assert [m[1] for m in members(app, once)] == [f"crm_call:{first}"]
    assert [m[1] for m in members(app, every)] == [f"crm_call:{first}", f"crm_call:{third}"]


def test_calls_before_approval_outside_the_window_or_to_a_paused_campaign_enter_nobody(app, db_kind):
    later = campaign(app, approved=T0 + timedelta(hours=1))
    windowed = campaign(app, window={"end": (T0 - timedelta(minutes=1)).isoformat()})
    paused = campaign(app, status="paused")
    audience = campaign(app, audience={"all": [{"field": "investment_count", "op": "gte", "value": 1}]})
    call(app, "interested")
    consume(app)

    assert members(app, later) == members(app, windowed) == members(app, paused) == members(app, audience) == []


def test_a_consumer_that_starts_after_calls_were_logged_reads_them_all(app, db_kind):
    calls = [call(app, "interested") for _ in range(5)]
    cid = campaign(app, approved=T0 - timedelta(days=2))  # approved before the calls, made live afterwards

    assert consume(app, limit=2) == 5
    assert len(members(app, cid)) == len(calls)


def test_a_call_waits_for_the_feed_lock_so_call_ids_commit_in_order(app, db_kind):
    if db_kind != "postgresql":
        pytest.skip("SQLite has one writer: calls commit in id order by themselves")
    investor, _ = call(app, "no_answer")  # the feed's cursor row exists from now on
    db = get_db(app)
    with db.session_scope(write=True) as s:
        task_id = open_task(s, investor, reason="maturing")
        other = open_task(s, investor, reason="dormant")
        agent = make_user(s, role="agent").id
    holding = db.sessionmaker()
    try:  # one agent's call is logged and not yet committed …
        services.log_call(task_id, outcome="interested", note=None, next_follow_up_at=None, agent_id=agent,
                          may_manage=False, session=holding, now=T0)
        waiting_error: list[BaseException] = []

        def second_agent() -> None:
            with db.session_scope(write=True) as s:
                s.execute(text("SET LOCAL lock_timeout = '300ms'"))
                services.log_call(other, outcome="interested", note=None, next_follow_up_at=None, agent_id=agent,
                                  may_manage=False, session=s, now=T0)

        def consumer() -> None:
            with db.session_scope(write=True) as s:
                s.execute(text("SET LOCAL lock_timeout = '300ms'"))
                consume_crm_calls(session=s, limit=10, now=T0)

        for work in (second_agent, consumer):  # … so a second call cannot take an id, nor the consumer read past it
            thread = threading.Thread(target=lambda w=work: _catch(w, waiting_error))
            thread.start()
            thread.join()
        assert len(waiting_error) == 2 and all(isinstance(e, OperationalError) for e in waiting_error)
        holding.commit()
    finally:
        holding.close()
    cid = campaign(app, approved=T0 - timedelta(days=2))
    consume(app)
    assert [m[0] for m in members(app, cid)] == [investor]


def _catch(work, errors: list[BaseException]) -> None:  # type: ignore[no-untyped-def]
    try:
        work()
    except BaseException as exc:  # the thread hands its error to the test
        errors.append(exc)


# --- tasks a campaign asks for --------------------------------------------------------------------------


def test_a_campaign_step_makes_one_crm_task_per_fulfilled_member_however_often_fulfilment_runs(app, db_kind):
    cid = campaign(app, messages=[NURTURE], holdout_percent=0,
                   crm_task={"note": "客户有意向，48 小时内回电介绍新手标", "due_hours": 48})
    calls = [call(app, "interested") for _ in range(3)]
    consume(app)

    assert fulfil(app) == 3
    with get_db(app).session_scope(write=True) as s:  # a second worker, a retry: the members are done already
        s.execute(update(CampaignMember).where(CampaignMember.campaign_id == cid).values(status="pending"))
    fulfil(app)

    made = tasks(app)
    assert sorted(t.investor_id for t in made) == sorted(i for i, _c in calls)
    assert {t.cause_key for t in made} == {f"campaign:{cid}:{m}" for m in _member_ids(app, cid)}
    note = "通话意向跟进：客户有意向，48 小时内回电介绍新手标"
    assert {(t.status, t.assignee_id, t.note) for t in made} == {("open", None, note)}
    assert {t.due_at for t in made} == {T0 + timedelta(hours=2) + timedelta(hours=48)}
    with get_db(app).session_scope() as s:
        assert len(list(s.scalars(select(OutboxMessage)))) == 3  # and each member's message, once


def _member_ids(app, cid: int) -> list[int]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return list(s.scalars(select(CampaignMember.id).where(CampaignMember.campaign_id == cid)))


def test_holdout_and_budget_exhausted_members_get_no_task(app, db_kind):
    cid = campaign(app, holdout_percent=50, rewards=[{"kind": "cash", "amount": "5.00"}], budget={"max_grants": 1},
                   crm_task={"note": "回电"})
    for _ in range(8):
        call(app, "interested")
    consume(app)
    fulfil(app)

    with get_db(app).session_scope() as s:
        by_status: dict[str, set[int]] = {}
        for investor_id, status in s.execute(select(CampaignMember.investor_id, CampaignMember.status)
                                             .where(CampaignMember.campaign_id == cid)):
            by_status.setdefault(status, set()).add(investor_id)
    assert len(by_status.get("done", set())) <= 1
    assert {t.investor_id for t in tasks(app)} == by_status.get("done", set())


def test_an_investor_who_asked_not_to_be_contacted_gets_no_campaign_task(app, db_kind):
    cid = campaign(app, {"on": "crm_call", "conditions": {"outcomes": ["do_not_contact", "interested"]}},
                   crm_task={"note": "回电"})
    refused, _ = call(app, "do_not_contact")
    keen, _ = call(app, "interested")
    consume(app)
    fulfil(app)

    assert sorted(m[0] for m in members(app, cid)) == sorted([refused, keen])
    assert [t.investor_id for t in tasks(app)] == [keen]


def test_an_investor_with_an_open_campaign_task_keeps_that_one(app, db_kind):
    first = campaign(app, crm_task={"note": "第一次"})
    second = campaign(app, crm_task={"note": "第二次"})
    call(app, "interested")
    consume(app)
    fulfil(app)

    [task] = tasks(app)
    assert task.cause_key in {f"campaign:{first}:{m}" for m in _member_ids(app, first)} | {
        f"campaign:{second}:{m}" for m in _member_ids(app, second)}


def test_a_run_with_a_crm_task_leaves_its_members_to_fulfilment_which_makes_the_tasks(app, db_kind):
    doc = {"name": "回访", "type": "broadcast", "class": "service", "schedule": {"at": "2026-12-02T10:00:00+08:00"},
           "messages": [NURTURE]}
    assert in_sql(parse(doc)) and not in_sql(parse({**doc, "crm_task": {"note": "回访"}}))


# --- 要求勿扰 stops a queued CRM marketing message ------------------------------------------------------


def test_do_not_contact_stops_a_queued_marketing_message_sent_from_the_crm(app, db_kind):
    with get_db(app).session_scope(write=True) as s:
        agent = make_user(s, role="agent")
        investor = make_investor(s, phone="+8613912345678")
        record_statement(session=s, investor_id=investor.id, channel="sms", granted=True,
                         occurred_at=T0 - timedelta(days=10), source="platform_event")
        template = MessageTemplate(name="加息券", channel="sms", message_class="marketing", updated_at=T0,
                                   body="{{ investor.name }}您好，加息券已到账，投资有风险，理财需谨慎。回T退订")
        s.add(template)
        s.flush()
        sent = messages.send(investor.id, template.id, token="t" * 32, agent_id=agent.id, session=s, now=T0,
                             unsubscribe_link=lambda i, ch: "https://example.com/u")
        outbox_id = sent.message.outbox_id
        task_id = open_task(s, investor.id, agent_id=agent.id)
    with get_db(app).session_scope(write=True) as s:  # before delivery got to it, the investor asks not to be called
        services.log_call(task_id, outcome="do_not_contact", note=None, next_follow_up_at=None, agent_id=agent.id,
                          may_manage=False, session=s, now=T0 + timedelta(seconds=1))
    app.config["CHANNEL_ENV"] = {}
    Deliverer(app, clock=lambda: T0 + timedelta(minutes=1), draw=lambda a, b: b).run_once()

    with get_db(app).session_scope() as s:
        assert s.get_one(OutboxMessage, outbox_id).status == "skipped_no_consent"
        assert s.scalar(select(CrmCall.outcome)) == "do_not_contact"


def test_the_preview_counts_the_recent_calls_a_call_trigger_takes_and_the_tasks_it_would_make(app, db_kind):
    keen, _ = call(app, "interested")
    call(app, "interested", at=T0 - timedelta(days=8))  # older than a week: not counted
    call(app, "no_answer")
    refused, _ = call(app, "do_not_contact")
    cid = campaign(app, {"on": "crm_call", "conditions": {"outcomes": ["interested", "do_not_contact"]}},
                   crm_task={"note": "回电"})
    with get_db(app).session_scope() as s:
        definition = campaign_services.definition_of(s.get_one(Campaign, cid))
        shown = preview(definition, campaign_id=cid, session=s, now=T0 + timedelta(hours=1)).as_json()
        everyone = shown["audience"]

    assert shown["recent_calls"] == 2  # keen's and the do-not-contact call, this week
    assert shown["crm_tasks"] == everyone - 1  # the whole audience but the investor who asked not to be called
    assert keen != refused


def test_two_submits_of_one_form_racing_each_other_send_one_message(app, db_kind):
    db = get_db(app)
    with db.session_scope(write=True) as s:
        agent = make_user(s, role="agent").id
        investor = make_investor(s).id
        template = MessageTemplate(name="回访确认", channel="sms", message_class="service", updated_at=T0,
                                   body="{{ investor.name }}您好，回访时间已确认。")
        s.add(template)
        s.flush()
        template_id = template.id

    def submit(session) -> messages.Sent:  # type: ignore[no-untyped-def]
        return messages.send(investor, template_id, token="r" * 32, agent_id=agent, session=session, now=T0,
                             unsubscribe_link=lambda i, ch: "")

    first = db.sessionmaker()
    results: list[Any] = []
    try:
        assert submit(first).created  # … and not committed yet when the second submit arrives
        second = threading.Thread(target=lambda: _catch(lambda: results.append(_in_scope(db, submit)), results))
        second.start()
        second.join(timeout=0.5)  # PostgreSQL: it waits on the token's unique index; SQLite: on the write lock
        first.commit()
        second.join(timeout=30)
    finally:
        first.close()

    [outcome] = results
    assert isinstance(outcome, bool) and outcome is False  # the second found the first send
    with db.session_scope() as s:
        assert len(list(s.scalars(select(OutboxMessage)))) == 1


def _in_scope(db, work) -> bool:  # type: ignore[no-untyped-def]
    with db.session_scope(write=True) as s:
        return work(s).created
