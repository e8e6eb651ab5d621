"""The manager's team view through the test client: permission, period filter, table, CSV and empty state."""

from __future__ import annotations

from datetime import timedelta

from growth.crm.models import CrmCall, CrmTask
from growth.db import get_db
from growth.timeutil import utcnow
from tests.factories import make_investor, make_user


def _activity(app) -> int:  # type: ignore[no-untyped-def]
    """An agent with a task made yesterday and a connected call on it; return the agent's id."""
    with get_db(app).session_scope(write=True) as s:
        agent = make_user(s, role="agent", email="wang@example.com")
        investor = make_investor(s, phone="+8613912345678", name="张三丰")
        yesterday = utcnow() - timedelta(days=1)
        task = CrmTask(investor_id=investor.id, reason="maturing", status="done", assignee_id=agent.id,
                       due_at=yesterday + timedelta(days=1), created_at=yesterday, closed_at=yesterday,
                       closed_by=agent.id, cause_key="t:1")
        s.add(task)
        s.flush()
        s.add(CrmCall(task_id=task.id, investor_id=investor.id, agent_id=agent.id, outcome="interested",
                      created_at=yesterday))
        return agent.id


def test_a_manager_sees_each_agents_figures_for_the_last_7_days_by_default(app, client, login, db_kind):
    agent_id = _activity(app)
    login("admin")
    html = client.get("/crm/team").get_data(as_text=True)
    assert 'id="crm-team"' in html and f'data-agent="{agent_id}"' in html
    assert "100.0%" in html  # one call, connected
    assert 'name="period"' in html and 'value="7d" selected' in html
    assert "张三丰" not in html and "13912345678" not in html


def test_the_team_csv_has_a_row_per_agent_and_the_totals(app, client, login, db_kind):
    _activity(app)
    login("admin")
    response = client.get("/crm/team.csv?period=30d")
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = text.lstrip("\ufeff").strip().splitlines()
    assert lines[0].startswith("客服,") and lines[-1].startswith("合计,")
    assert any(line.startswith("wang@example.com") or line.startswith("agent ") for line in lines[1:-1])


def test_a_period_with_nothing_shows_the_empty_state_and_a_bad_period_falls_back_with_a_note(app, client, login,
                                                                                            db_kind):
    login("admin")
    html = client.get("/crm/team?period=custom&start=2020-01-01&end=2020-01-07").get_data(as_text=True)
    assert "这段期间没有任务和通话记录" in html
    bad = client.get("/crm/team?period=custom&start=2020-02-01&end=2020-01-01").get_data(as_text=True)
    assert 'id="period-error"' in bad


def test_an_agent_may_not_open_the_team_view(client, login, db_kind):
    login("agent")
    assert client.get("/crm/team").status_code == 403
    assert client.get("/crm/team.csv").status_code == 403
