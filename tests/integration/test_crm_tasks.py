"""CRM follow-up rules, assignment, call logging and do-not-contact, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from channels.adapters.port import Channel, MessageClass
from channels.delivery import Deliverer
from channels.models import OutboxMessage
from channels.outbox import NewMessage, enqueue
from channels.services import may_message, record_statement
from growth.audit.models import AuditEntry
from growth.crm import services
from growth.crm.jobs import follow_up
from growth.crm.models import CrmCall, CrmOwner, CrmSetting, CrmTask
from growth.crm.rules import CrmSettings
from growth.investors.models import FundsMovement, Investment
from growth.referrals.models import Referral
from tests.factories import make_investor, make_user

NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: outside the marketing quiet hours
DAY = timedelta(days=1)
MARKETING_SMS = {"text": "理财节加息券已到账。回T退订", "template_code": "SMS_1", "params": {}}


def _run(session, now: datetime = NOW, settings: CrmSettings | None = None) -> tuple[int, int, int]:
    return follow_up(session=session, now=now, defaults=settings or CrmSettings())


def _tasks(session, **where) -> list[CrmTask]:
    session.expire_all()
    query = select(CrmTask).filter_by(**where).order_by(CrmTask.id)
    return list(session.scalars(query))


def _one_of_each_rule(session) -> dict[str, int]:
    """Make one investor each rule picks at NOW, and return their ids by the reason expected."""
    stalled = make_investor(session, registered_at=NOW - 2 * DAY)
    no_deposit = make_investor(session, registered_at=NOW - 5 * DAY, kyc_verified_at=NOW - 3 * DAY)
    no_investment = make_investor(session, registered_at=NOW - 9 * DAY, kyc_verified_at=NOW - 8 * DAY,
                                  first_deposit_at=NOW - 4 * DAY)
    maturing = make_investor(session, registered_at=NOW - 90 * DAY, kyc_verified_at=NOW - 90 * DAY,
                             first_deposit_at=NOW - 90 * DAY, first_investment_at=NOW - 90 * DAY)
    session.add(Investment(investment_id="inv-mat", investor_id=maturing.id, amount_fen=100_000,
                           started_at=NOW - 83 * DAY, maturity_date=date(2026, 12, 8), status="active"))
    leaving = make_investor(session, registered_at=NOW - 90 * DAY, first_investment_at=NOW - 90 * DAY)
    session.add(FundsMovement(kind="withdrawal", external_id="wd-1", investor_id=leaving.id, amount_fen=6_000_000,
                              occurred_at=NOW - 2 * DAY))
    dormant = make_investor(session, registered_at=NOW - 400 * DAY, first_investment_at=NOW - 300 * DAY,
                            investment_count=2, holdings_fen=0, last_activity_at=NOW - 70 * DAY)
    referee = make_investor(session, registered_at=NOW - 3 * DAY, kyc_verified_at=NOW - 3 * DAY,
                            first_deposit_at=NOW - 3 * DAY, first_investment_at=NOW - 2 * DAY)
    session.add(Referral(referee_id=referee.id, referrer_id=dormant.id, status="in_review", flags=[]))
    # Nobody to call: an old stall, an investor who did everything, a small withdrawal.
    make_investor(session, registered_at=NOW - 200 * DAY)
    make_investor(session, registered_at=NOW - 9 * DAY, kyc_verified_at=NOW - 9 * DAY, first_deposit_at=NOW - 9 * DAY,
                  first_investment_at=NOW - 8 * DAY, holdings_fen=100_000, investment_count=1)
    small = make_investor(session, registered_at=NOW - 9 * DAY, kyc_verified_at=NOW - 9 * DAY,
                          first_deposit_at=NOW - 9 * DAY, first_investment_at=NOW - 8 * DAY)
    session.add(FundsMovement(kind="withdrawal", external_id="wd-2", investor_id=small.id, amount_fen=100_000,
                              occurred_at=NOW - DAY))
    session.flush()
    return {"registered_no_kyc": stalled.id, "kyc_no_deposit": no_deposit.id,
            "deposited_no_investment": no_investment.id, "maturing": maturing.id, "large_redemption": leaving.id,
            "dormant": dormant.id, "referral_review": referee.id}


def test_each_rule_makes_a_task_for_its_investor_and_nobody_else_gets_one(session, db_kind):
    expected = _one_of_each_rule(session)

    made, _released, _assigned = _run(session)

    assert made == len(expected)
    assert {(t.reason, t.investor_id) for t in _tasks(session)} == set(expected.items())
    assert {t.due_at for t in _tasks(session)} == {NOW + DAY}


def test_running_the_rules_twice_creates_nothing_twice(session, db_kind):
    expected = _one_of_each_rule(session)
    _run(session)

    made, _released, _assigned = _run(session, NOW + timedelta(minutes=5))

    assert made == 0
    assert len(_tasks(session)) == len(expected)


def test_a_closed_task_is_not_made_again_but_a_new_cause_gets_a_new_one(session, db_kind):
    investor = make_investor(session, registered_at=NOW - 90 * DAY, first_investment_at=NOW - 90 * DAY)
    session.add(Investment(investment_id="inv-1", investor_id=investor.id, maturity_date=date(2026, 12, 5),
                           status="active"))
    agent = make_user(session, role="agent")
    _run(session)
    [task] = _tasks(session)
    services.log_call(task.id, outcome="interested", note=None, next_follow_up_at=None, agent_id=agent.id,
                      may_manage=False, session=session, now=NOW)

    assert _run(session, NOW + DAY)[0] == 0
    session.add(Investment(investment_id="inv-2", investor_id=investor.id, maturity_date=date(2026, 12, 9),
                           status="active"))
    assert _run(session, NOW + DAY)[0] == 1
    assert [t.cause_key for t in _tasks(session, status="open")] == [f"maturing:{_investment_id(session, 'inv-2')}"]


def _investment_id(session, platform_id: str) -> int:
    return session.scalar(select(Investment.id).where(Investment.investment_id == platform_id))


def test_an_investor_has_one_open_task_per_reason_however_many_causes(session, db_kind):
    investor = make_investor(session, registered_at=NOW - 90 * DAY, first_investment_at=NOW - 90 * DAY)
    for n in range(3):
        session.add(Investment(investment_id=f"inv-{n}", investor_id=investor.id, maturity_date=date(2026, 12, 5 + n),
                               status="active"))

    assert _run(session)[0] == 1
    assert len(_tasks(session, investor_id=investor.id, status="open")) == 1


def test_agents_get_tasks_round_robin_and_never_more_than_the_cap(session, db_kind):
    agents = [make_user(session, role="agent") for _ in range(2)]
    for _ in range(5):
        make_investor(session, registered_at=NOW - 2 * DAY)

    _made, _released, assigned = _run(session, settings=CrmSettings(open_task_cap=2))

    assert assigned == 4
    held = dict(session.execute(select(CrmTask.assignee_id, func.count()).group_by(CrmTask.assignee_id)).all())
    assert held == {agents[0].id: 2, agents[1].id: 2, None: 1}


def test_an_investors_owner_gets_their_new_tasks(session, db_kind):
    first, second = make_user(session, role="agent"), make_user(session, role="agent")
    investor = make_investor(session, registered_at=NOW - 2 * DAY)
    session.add(CrmOwner(investor_id=investor.id, agent_id=second.id, since=NOW - 10 * DAY))

    _run(session)

    [task] = _tasks(session)
    assert task.assignee_id == second.id
    assert first.id != second.id


def test_an_inactive_agents_open_tasks_go_back_to_the_pool_and_on_to_an_active_agent(session, db_kind):
    leaving = make_user(session, role="agent")
    investor = make_investor(session, registered_at=NOW - 2 * DAY)
    _run(session)
    assert [t.assignee_id for t in _tasks(session)] == [leaving.id]
    leaving.active = False
    staying = make_user(session, role="agent")
    session.flush()

    _made, released, assigned = _run(session, NOW + timedelta(minutes=5))

    assert (released, assigned) == (1, 1)
    assert [t.assignee_id for t in _tasks(session)] == [staying.id]
    assert session.get(CrmOwner, investor.id).agent_id == staying.id


def test_with_no_active_agent_the_tasks_wait_in_the_pool(session, db_kind):
    make_user(session, role="marketer")
    make_investor(session, registered_at=NOW - 2 * DAY)

    _made, _released, assigned = _run(session)

    assert assigned == 0
    assert [t.assignee_id for t in _tasks(session)] == [None]


def test_logging_a_call_closes_the_task_and_creates_the_next_follow_up_for_the_same_agent(session, db_kind):
    agent = make_user(session, role="agent")
    investor = make_investor(session, registered_at=NOW - 2 * DAY)
    _run(session)
    [task] = _tasks(session)
    later = NOW + 3 * DAY

    call = services.log_call(task.id, outcome="interested", note="  想了解新手标  ", next_follow_up_at=later,
                             agent_id=agent.id, may_manage=False, session=session, now=NOW + timedelta(hours=1))

    closed, nxt = _tasks(session)
    assert (closed.status, closed.closed_by, closed.source_key) == ("done", agent.id, None)
    assert (nxt.reason, nxt.status, nxt.assignee_id, nxt.due_at, nxt.investor_id) == (
        "follow_up", "open", agent.id, later, investor.id)
    assert (call.note, call.task_id) == ("想了解新手标", task.id)


def test_a_call_on_another_agents_task_is_refused_unless_one_manages(session, db_kind):
    owner, other = make_user(session, role="agent"), make_user(session, role="agent")
    investor = make_investor(session, registered_at=NOW - 2 * DAY)
    session.add(CrmOwner(investor_id=investor.id, agent_id=owner.id, since=NOW))
    _run(session)
    [task] = _tasks(session)

    with pytest.raises(services.Forbidden):
        services.log_call(task.id, outcome="no_answer", note=None, next_follow_up_at=None, agent_id=other.id,
                          may_manage=False, session=session, now=NOW)
    services.log_call(task.id, outcome="no_answer", note=None, next_follow_up_at=None, agent_id=other.id,
                      may_manage=True, session=session, now=NOW)
    with pytest.raises(services.Conflict):  # closed now
        services.log_call(task.id, outcome="no_answer", note=None, next_follow_up_at=None, agent_id=owner.id,
                          may_manage=False, session=session, now=NOW)


def test_do_not_contact_withdraws_consent_everywhere_and_a_queued_marketing_sms_is_not_sent(app, session, db_kind):
    agent = make_user(session, role="agent")
    investor = make_investor(session, phone="+8613912345678", registered_at=NOW - 2 * DAY)
    for channel in ("sms", "email", "wechat"):
        record_statement(session=session, investor_id=investor.id, channel=channel, granted=True,
                         occurred_at=NOW - 30 * DAY, source="platform_event")
    message_id = enqueue(NewMessage(sender="campaign", campaign_id=1, cause="run-1", channel=Channel.SMS,
                                    message_class=MessageClass.MARKETING, investor_id=investor.id,
                                    user_id=investor.platform_user_id,
                                    content=MARKETING_SMS),
                         session=session, now=NOW - DAY)
    _run(session)
    make_investor(session, registered_at=NOW - 2 * DAY)  # someone else's task stays
    [task] = _tasks(session)
    services.log_call(task.id, outcome="do_not_contact", note="客户要求不再联系", next_follow_up_at=None,
                      agent_id=agent.id, may_manage=False, session=session, now=NOW)
    session.commit()

    assert not any(may_message(session=session, investor_id=investor.id, channel=c) for c in ("sms", "email", "wechat"))
    app.config["CHANNEL_ENV"] = {}
    Deliverer(app, clock=lambda: NOW + timedelta(minutes=1), draw=lambda a, b: b).run_once()
    session.commit()
    session.expire_all()
    assert session.get_one(OutboxMessage, message_id).status == "skipped_no_consent"
    # … and the rules leave the investor alone from now on.
    made, _released, _assigned = _run(session, NOW + 10 * DAY)
    assert investor.id not in {t.investor_id for t in _tasks(session, status="open")}
    assert made == 1


def test_do_not_contact_cancels_the_investors_other_open_tasks(session, db_kind):
    agent = make_user(session, role="agent")
    investor = make_investor(session, registered_at=NOW - 90 * DAY, first_investment_at=NOW - 90 * DAY)
    session.add(Investment(investment_id="inv-1", investor_id=investor.id, maturity_date=date(2026, 12, 5),
                           status="active"))
    session.add(FundsMovement(kind="withdrawal", external_id="wd-1", investor_id=investor.id, amount_fen=9_000_000,
                              occurred_at=NOW - DAY))
    _run(session)
    first, second = _tasks(session)

    services.log_call(first.id, outcome="do_not_contact", note=None, next_follow_up_at=None, agent_id=agent.id,
                      may_manage=False, session=session, now=NOW)

    assert [t.status for t in _tasks(session)] == ["done", "cancelled"]
    assert second.source_key is None


def test_a_follow_up_date_with_do_not_contact_is_refused(session, db_kind):
    agent = make_user(session, role="agent")
    make_investor(session, registered_at=NOW - 2 * DAY)
    _run(session)
    [task] = _tasks(session)

    with pytest.raises(services.DomainError) as err:
        services.log_call(task.id, outcome="do_not_contact", note=None, next_follow_up_at=NOW + DAY,
                          agent_id=agent.id, may_manage=False, session=session, now=NOW)
    assert err.value.field == "next_follow_up"
    assert session.scalar(select(func.count()).select_from(CrmCall)) == 0


def test_reassigning_a_task_moves_it_and_the_investor_and_is_audited(session, db_kind):
    first, second = make_user(session, role="agent"), make_user(session, role="agent")
    investor = make_investor(session, registered_at=NOW - 2 * DAY)
    _run(session)
    [task] = _tasks(session)
    assert task.assignee_id == first.id

    services.reassign(task.id, second.id, session=session, now=NOW)

    assert _tasks(session)[0].assignee_id == second.id
    assert session.get(CrmOwner, investor.id).agent_id == second.id
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "crm.task_reassigned")).one()
    assert entry.details == {"from": first.id, "to": second.id}
    with pytest.raises(services.DomainError):
        services.reassign(task.id, make_user(session, role="marketer").id, session=session, now=NOW)


def test_the_elected_scheduler_runs_the_rules_as_a_system_job_with_the_settings_page_values(app, session, db_kind):
    from campaigns import scheduler

    assert scheduler._SYSTEM["crm-follow-up"] == (app.config["CRM_JOB_SECONDS"], "crm-follow-up")
    task, _write = scheduler._TASKS["crm-follow-up"]
    agent = make_user(session, role="agent")
    for _ in range(3):
        make_investor(session, registered_at=NOW - 2 * DAY)
    session.add(CrmSetting(key="open_task_cap", value="2", updated_at=NOW))
    session.flush()

    with app.app_context():
        task(session, NOW)

    assert sorted(t.assignee_id or 0 for t in _tasks(session)) == [0, agent.id, agent.id]
