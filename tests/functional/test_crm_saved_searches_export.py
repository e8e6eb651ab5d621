"""Saved searches on the investor list and the worklist, and the worklist CSV: caps, masking and audit."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from growth.audit.models import AuditEntry
from growth.crm.models import CrmTask, SavedSearch
from growth.db import get_db
from growth.timeutil import utcnow
from tests.factories import make_investor, make_user

PHONE = "+8613912345678"


def _tasks(app, assignee_id: int | None, n: int = 1) -> list[int]:  # type: ignore[no-untyped-def]
    ids = []
    with get_db(app).session_scope(write=True) as s:
        for k in range(n):
            investor = make_investor(s, phone=PHONE, name="张三丰")
            task = CrmTask(investor_id=investor.id, reason="maturing", status="open", assignee_id=assignee_id,
                           due_at=utcnow() + timedelta(hours=k + 1), created_at=utcnow(),
                           source_key=f"{investor.id}:maturing", cause_key=f"maturing:{investor.id}")
            s.add(task)
            s.flush()
            ids.append(task.id)
    return ids


def _audit(app, action: str) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_an_agent_saves_the_worklist_filters_sees_the_chip_and_deletes_it_after_confirming(app, client, login,
                                                                                          db_kind):
    login("agent")
    response = client.post("/crm/saved-searches", data={"name": "到期提醒", "scope": "pool", "reason": "maturing",
                                                         "status": "open", "junk": "x"})
    assert response.status_code == 302 and "reason=maturing" in response.headers["Location"]
    html = client.get("/crm").get_data(as_text=True)
    assert "到期提醒" in html and re.search(r'href="/crm\?[^"]*reason=maturing', html)
    assert 'data-confirm="确定删除保存的筛选“到期提醒”？"' in html
    with get_db(app).session_scope() as s:
        (saved,) = s.scalars(select(SavedSearch)).all()
        assert saved.args == {"scope": "pool", "reason": "maturing", "status": "open"} and not saved.shared

    assert client.post(f"/crm/saved-searches/{saved.id}/delete").status_code == 302
    assert "到期提醒" not in client.get("/crm").get_data(as_text=True)
    assert [e.details["name"] for e in _audit(app, "saved_search.deleted")] == ["到期提醒"]


def test_a_shared_search_shows_to_colleagues_who_may_not_delete_it_and_a_private_one_does_not(app, client, login,
                                                                                            db_kind):
    with get_db(app).session_scope(write=True) as s:
        owner = make_user(s, role="agent")
        s.add_all([SavedSearch(owner_id=owner.id, page="investors", name="已首投",
                               args={"milestone": "first_investment"}, shared=True, created_at=utcnow()),
                   SavedSearch(owner_id=owner.id, page="investors", name="私人", args={"milestone": "registered"},
                               shared=False, created_at=utcnow())])
    login("analyst")
    html = client.get("/investors").get_data(as_text=True)
    assert "已首投" in html and "私人" not in html
    with get_db(app).session_scope() as s:
        shared_id = s.scalar(select(SavedSearch.id).where(SavedSearch.name == "已首投"))
    assert f"/investors/saved-searches/{shared_id}/delete" not in html
    assert client.post(f"/investors/saved-searches/{shared_id}/delete").status_code == 403


@pytest.mark.parametrize("q", [PHONE, "张三", "zhang@example.com", "00138000"])
def test_a_search_by_personal_data_is_not_saved(app, client, login, db_kind, q):
    login("admin")
    response = client.post("/investors/saved-searches", data={"name": "某人", "q": q}, follow_redirects=True)
    assert "含个人信息（手机号、姓名、邮箱）的搜索不能保存" in response.get_data(as_text=True)
    with get_db(app).session_scope() as s:
        assert s.scalars(select(SavedSearch)).all() == []


def test_a_search_without_a_name_or_filters_is_refused_with_the_reason(app, client, login, db_kind):
    login("marketer")
    no_name = client.post("/investors/saved-searches", data={"name": " ", "milestone": "registered"},
                          follow_redirects=True).get_data(as_text=True)
    assert "名称须为 1 到 50 个字" in no_name
    nothing = client.post("/investors/saved-searches", data={"name": "全部"}, follow_redirects=True)
    assert "当前没有筛选条件，无需保存" in nothing.get_data(as_text=True)


def test_the_worklist_csv_is_masked_for_an_agent_and_audited(app, client, login, db_kind):
    agent = login("agent")
    _tasks(app, agent.id, 2)
    response = client.get("/crm/export.csv")
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["X-Export-Truncated"] == "0"
    assert "139****5678" in text and "张**" in text and "13912345678" not in text and "张三丰" not in text
    assert len(text.strip().splitlines()) == 3
    assert client.get("/crm/export.csv?pii=1").status_code == 403
    (entry,) = _audit(app, "crm.tasks_exported")
    assert entry.details["rows"] == 2 and entry.details["unmasked"] is False


def test_the_worklist_csv_stops_at_the_row_cap_and_says_so(app, client, login, db_kind):
    app.config["CRM_EXPORT_MAX_ROWS"] = 2
    agent = login("agent")
    _tasks(app, agent.id, 3)
    assert 'id="export-cap"' in client.get("/crm").get_data(as_text=True)
    response = client.get("/crm/export.csv")
    lines = response.get_data(as_text=True).strip().splitlines()
    assert response.headers["X-Export-Truncated"] == "1"
    assert len(lines) == 4 and "仅导出前 2 行（共 3 行）" in lines[-1]
    (entry,) = _audit(app, "crm.tasks_exported")
    assert entry.details["truncated"] is True and entry.details["total"] == 3


def test_a_manager_who_may_see_personal_data_may_export_it_in_full(app, client, login, db_kind):
    login("admin")
    _tasks(app, None, 1)
    text = client.get("/crm/export.csv?scope=pool&pii=1").get_data(as_text=True)
    assert "+86 13912345678" in text and "张三丰" in text
    (entry,) = _audit(app, "crm.tasks_exported")
    assert entry.details["unmasked"] is True
