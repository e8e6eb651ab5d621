"""CRM pages through the test client: the worklist (order, SLA badges, filters, empty state), logging a call,
reassignment, the settings page, and every page in Chinese and in English."""

from __future__ import annotations

import re
from datetime import UTC, timedelta

from sqlalchemy import select

from growth.audit.models import AuditEntry
from growth.crm.models import CrmCall, CrmNote, CrmSetting, CrmTask
from growth.db import get_db
from growth.timeutil import SHANGHAI, utcnow
from tests.factories import make_investor, make_user

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
HOUR = timedelta(hours=1)


def _task(app, *, assignee_id: int | None, due_in: timedelta, reason: str = "registered_no_kyc",
          phone: str = "+8613912345678") -> int:
    with get_db(app).session_scope(write=True) as s:
        investor = make_investor(s, phone=phone)
        task = CrmTask(investor_id=investor.id, reason=reason, status="open", assignee_id=assignee_id,
                       due_at=utcnow() + due_in, created_at=utcnow() - 3 * HOUR, source_key=f"{investor.id}:{reason}",
                       cause_key=f"{reason}:{investor.id}")
        s.add(task)
        s.flush()
        return task.id


def _rows(html: str) -> list[str]:
    return re.findall(r'data-task="(\d+)"', html)


def test_an_agent_sees_their_open_tasks_overdue_first_with_sla_badges_and_masked_phones(app, client, login, db_kind):
    agent = login("agent")
    breached = _task(app, assignee_id=agent.id, due_in=-30 * HOUR)
    later = _task(app, assignee_id=agent.id, due_in=5 * HOUR)
    overdue = _task(app, assignee_id=agent.id, due_in=-2 * HOUR)
    _task(app, assignee_id=None, due_in=-HOUR)  # the pool: not "mine"

    html = client.get("/crm").get_data(as_text=True)

    assert _rows(html) == [str(breached), str(overdue), str(later)]
    assert html.count("sla-breached") == 1 and html.count("sla-overdue") == 1 and html.count("sla-due") == 1
    assert "+8613912345678" not in html and "139****5678" in html
    assert re.search(r'<script src="/static/crm\.\w+\.js">', html)  # the j/k keyboard


def test_the_worklist_filters_by_scope_and_reason_and_shows_an_empty_state(app, client, login, db_kind):
    agent = login("agent")
    mine = _task(app, assignee_id=agent.id, due_in=HOUR, reason="maturing")
    pool = _task(app, assignee_id=None, due_in=HOUR)

    assert _rows(client.get("/crm?scope=pool").get_data(as_text=True)) == [str(pool)]
    assert _rows(client.get("/crm?reason=maturing").get_data(as_text=True)) == [str(mine)]
    html = client.get("/crm?reason=dormant").get_data(as_text=True)
    assert _rows(html) == [] and "没有符合条件的任务" in html
    # Only a manager sees every agent's tasks; an agent asking for "all" gets their own.
    assert _rows(client.get("/crm?scope=all").get_data(as_text=True)) == [str(mine)]


def test_logging_a_call_on_the_task_page_closes_it_and_the_follow_up_appears_on_the_worklist(app, client, login,
                                                                                              db_kind):
    agent = login("agent")
    task_id = _task(app, assignee_id=agent.id, due_in=HOUR)
    page = client.get(f"/crm/tasks/{task_id}").get_data(as_text=True)
    assert 'id="call-form"' in page and 'id="investor-link"' in page
    when = (utcnow() + timedelta(days=2)).astimezone(SHANGHAI).replace(second=0, microsecond=0)

    response = client.post(f"/crm/tasks/{task_id}/call", data={
        "outcome": "interested", "note": "下周再聊", "next_follow_up": when.strftime("%Y-%m-%dT%H:%M")})

    assert response.status_code == 302
    html = client.get("/crm").get_data(as_text=True)
    [follow_up] = _rows(html)
    assert follow_up != str(task_id) and "约定回访" in html
    with get_db(app).session_scope() as s:
        assert s.get_one(CrmTask, task_id).status == "done"
        assert s.get_one(CrmTask, int(follow_up)).due_at == when.astimezone(UTC)
        assert s.scalars(select(CrmCall.outcome)).all() == ["interested"]


def test_a_call_without_an_outcome_or_with_a_past_follow_up_is_shown_again_with_the_problem(app, client, login,
                                                                                           db_kind):
    agent = login("agent")
    task_id = _task(app, assignee_id=agent.id, due_in=HOUR)

    missing = client.post(f"/crm/tasks/{task_id}/call", data={"outcome": "", "note": "记下了"})
    past = client.post(f"/crm/tasks/{task_id}/call",
                       data={"outcome": "no_answer", "next_follow_up": "2020-01-01T10:00"})

    assert missing.status_code == 400 and "请选择通话结果" in missing.get_data(as_text=True)
    assert "记下了" in missing.get_data(as_text=True)
    assert past.status_code == 400 and "下次回访时间须晚于现在" in past.get_data(as_text=True)
    with get_db(app).session_scope() as s:
        assert s.get_one(CrmTask, task_id).status == "open"


def test_an_admin_reassigns_a_task_to_an_agent_and_the_change_is_audited(app, client, login, db_kind):
    login("admin")
    with get_db(app).session_scope(write=True) as s:
        agent = make_user(s, role="agent")
    task_id = _task(app, assignee_id=None, due_in=HOUR)
    assert f'value="{agent.id}"' in client.get(f"/crm/tasks/{task_id}").get_data(as_text=True)

    assert client.post(f"/crm/tasks/{task_id}/assign", data={"agent_id": str(agent.id)}).status_code == 302

    with get_db(app).session_scope() as s:
        assert s.get_one(CrmTask, task_id).assignee_id == agent.id
        assert s.scalars(select(AuditEntry.action).where(AuditEntry.action == "crm.task_reassigned")).all()


def test_the_settings_page_stores_a_change_refuses_a_bad_value_and_audits(app, client, login, db_kind):
    login("admin")
    assert "每位客服最多未完成任务数" in client.get("/crm/settings").get_data(as_text=True)
    values = {"no_kyc_days": "1", "no_deposit_days": "2", "no_investment_days": "3", "maturing_days": "7",
              "large_amount": "50000.00", "dormant_days": "60", "lookback_days": "30", "due_hours": "24"}

    bad = client.post("/crm/settings", data={**values, "open_task_cap": "0"})
    good = client.post("/crm/settings", data={**values, "open_task_cap": "80"})

    assert bad.status_code == 400 and "is-invalid" in bad.get_data(as_text=True)
    assert good.status_code == 302
    with get_db(app).session_scope() as s:
        assert {r.key: r.value for r in s.scalars(select(CrmSetting))} == {"open_task_cap": "80"}
        assert s.scalars(select(AuditEntry.details).where(AuditEntry.action == "crm_settings.changed")).one() == {
            "changes": {"open_task_cap": ["50", "80"]}}


def test_an_agent_may_not_open_the_settings_or_reassign(app, client, login, db_kind):
    login("agent")
    task_id = _task(app, assignee_id=None, due_in=HOUR)

    assert client.get("/crm/settings").status_code == 403
    assert client.post(f"/crm/tasks/{task_id}/assign", data={"agent_id": ""}).status_code == 403


def test_every_crm_page_is_english_after_choosing_english(app, client, login, db_kind):
    login("admin")
    task_id = _task(app, assignee_id=None, due_in=-HOUR)
    client.get("/lang/en")

    for url in ("/crm?scope=pool", "/crm?reason=dormant", f"/crm/tasks/{task_id}", "/crm/settings", "/crm/team",
                "/crm/team?period=30d"):
        html = client.get(url).get_data(as_text=True)
        main = html[html.index("<main"):html.index("</main>")] if "<main" in html else html
        assert [line for line in main.splitlines() if CJK.search(line)] == [], url
    assert "Agent worklist" in client.get("/crm").get_data(as_text=True)


def test_the_worklist_is_in_the_navigation_of_agents_and_not_of_analysts(app, client, login, db_kind):
    login("analyst")
    assert 'href="/crm"' not in client.get("/").get_data(as_text=True)
    client.post("/logout")
    login("agent")
    assert 'href="/crm"' in client.get("/").get_data(as_text=True)


def test_an_agent_adds_a_note_about_the_investor_and_an_empty_one_is_refused(app, client, login, db_kind):
    agent = login("agent")
    task_id = _task(app, assignee_id=agent.id, due_in=HOUR)

    assert client.post(f"/crm/tasks/{task_id}/note", data={"body": "  偏好短期产品  "}).status_code == 302
    empty = client.post(f"/crm/tasks/{task_id}/note", data={"body": "   "})

    assert empty.status_code == 400 and "备注须为 1 到 2000 个字" in empty.get_data(as_text=True)
    page = client.get(f"/crm/tasks/{task_id}").get_data(as_text=True)
    assert page.count("偏好短期产品") == 1
    with get_db(app).session_scope() as s:
        assert [(n.body, n.author_id) for n in s.scalars(select(CrmNote))] == [("偏好短期产品", agent.id)]
