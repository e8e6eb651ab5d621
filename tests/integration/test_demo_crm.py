"""The demo's CRM: a week of follow-up work by two agents, made by the rules and the real services."""

from __future__ import annotations

from sqlalchemy import func, select

from channels.models import ConsentStatement, MessageTemplate
from growth.auth.models import StaffUser
from growth.crm.models import CrmCall, CrmNote, CrmTask
from growth.demo import load_demo


def test_the_demo_has_a_week_of_calls_by_both_agents_with_tasks_in_every_state(app, session):
    summary = load_demo(app, investors=400, seed=3)

    agents = dict(session.execute(select(StaffUser.id, StaffUser.email).where(StaffUser.role == "agent")).all())
    calls = session.scalars(select(CrmCall)).all()
    assert summary.crm_calls == len(calls) > 20
    assert {c.agent_id for c in calls} == set(agents)  # both agents worked
    assert {"interested", "no_answer", "not_interested"} <= {c.outcome for c in calls}
    statuses = dict(session.execute(select(CrmTask.status, func.count()).group_by(CrmTask.status)).all())
    assert statuses.get("open", 0) > 0 and statuses.get("done", 0) == len({c.task_id for c in calls})
    assert session.scalar(select(func.count()).select_from(CrmTask).where(CrmTask.reason == "follow_up")) > 0
    assert len({t.reason for t in session.scalars(select(CrmTask))}) >= 4
    assert session.scalar(select(func.count()).select_from(CrmNote)) > 0
    # The library has service and marketing templates for the send page.
    assert {t.message_class for t in session.scalars(select(MessageTemplate))} == {"service", "marketing"}
    # 要求勿扰 took the investor off marketing on every channel, as the call page does.
    for call in (c for c in calls if c.outcome == "do_not_contact"):
        sources = session.scalars(select(ConsentStatement.source).where(
            ConsentStatement.investor_id == call.investor_id, ConsentStatement.granted.is_(False))).all()
        assert sources.count("crm_call") == 3
    # Calls fall inside the demo's last week.
    first = min(c.created_at for c in calls)
    last = max(c.created_at for c in calls)
    assert (last - first).days <= 7
