"""The staff-accounts and audit-log pages, and the friendly error pages."""

from __future__ import annotations

import csv
import io
import re

from sqlalchemy import select

from growth.audit.models import AuditEntry
from growth.audit.services import record
from growth.auth.models import StaffUser
from growth.db import get_db
from tests.factories import PASSWORD, make_user


def _user(app, email: str) -> StaffUser | None:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return s.scalars(select(StaffUser).where(StaffUser.email == email)).one_or_none()


def _entries(app, action: str) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def _colleague(app, role: str = "agent") -> StaffUser:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return make_user(s, role=role)


# --- staff accounts -------------------------------------------------------------------------------
def test_the_users_page_lists_accounts_with_their_roles(app, client, login):
    login("admin")
    colleague = _colleague(app, "agent")
    page = client.get("/admin/users").get_data(as_text=True)
    assert colleague.email in page
    assert "客服" in page  # the agent role's label


def test_an_admin_creates_an_account_on_the_page(app, client, login):
    admin = login("admin")
    response = client.post("/admin/users", data={
        "email": "Qian@Example.com", "name": "钱多多", "role": "marketer", "password": PASSWORD,
    })
    assert response.status_code == 302
    assert "账号已创建" in client.get(response.headers["Location"]).get_data(as_text=True)
    created = _user(app, "qian@example.com")
    assert (created.name, created.role, created.active) == ("钱多多", "marketer", True)
    entry = _entries(app, "user.created")[-1]
    assert (entry.actor, entry.target_id) == (admin.email, str(created.id))
    assert app.test_client().post("/login", data={"email": "qian@example.com", "password": PASSWORD}).status_code == 302


def test_a_new_account_with_a_short_password_is_refused_on_the_page(app, client, login):
    login("admin")
    response = client.post("/admin/users", data={"email": "e@example.com", "role": "agent", "password": "short"})
    assert response.status_code == 200
    assert "is-invalid" in response.get_data(as_text=True)
    assert _user(app, "e@example.com") is None


def test_a_duplicate_account_is_refused_with_a_message(app, client, login):
    login("admin")
    colleague = _colleague(app)
    response = client.post("/admin/users", data={
        "email": colleague.email.upper(), "role": "admin", "password": PASSWORD,
    }, headers={"Referer": "/admin/users"})
    assert response.status_code == 302
    page = client.get("/admin/users").get_data(as_text=True)
    assert "该邮箱已存在" in page
    assert _user(app, colleague.email).role == "agent"


def test_an_admin_changes_a_role_and_it_is_audited(app, client, login):
    admin = login("admin")
    colleague = _colleague(app, "agent")
    response = client.post(f"/admin/users/{colleague.id}/role", data={"role": "analyst"})
    assert response.status_code == 302
    assert _user(app, colleague.email).role == "analyst"
    entry = _entries(app, "user.role_changed")[-1]
    assert entry.actor == admin.email
    assert entry.details == {"email": colleague.email, "from": "agent", "to": "analyst"}


def test_an_unknown_role_from_the_page_changes_nothing(app, client, login):
    login("admin")
    colleague = _colleague(app, "agent")
    client.post(f"/admin/users/{colleague.id}/role", data={"role": "root"})
    assert _user(app, colleague.email).role == "agent"
    assert _entries(app, "user.role_changed") == []


def test_changing_the_role_of_a_missing_account_is_a_friendly_404(client, login):
    login("admin")
    response = client.post("/admin/users/987654/role", data={"role": "analyst"})
    assert response.status_code == 404
    assert "用户不存在" in response.get_data(as_text=True)


def test_an_admin_disables_an_account_which_then_cannot_sign_in(app, client, login):
    login("admin")
    colleague = _colleague(app, "marketer")
    their_browser = app.test_client()
    their_browser.post("/login", data={"email": colleague.email, "password": PASSWORD})
    assert their_browser.get("/").status_code == 200

    assert client.post(f"/admin/users/{colleague.id}/active").status_code == 302
    assert _user(app, colleague.email).active is False
    assert [e.details for e in _entries(app, "user.disabled")] == [{"email": colleague.email}]
    assert their_browser.get("/").status_code == 302  # signed out at once
    again = their_browser.post("/login", data={"email": colleague.email, "password": PASSWORD})
    assert again.status_code == 200

    client.post(f"/admin/users/{colleague.id}/active")
    assert _user(app, colleague.email).active is True
    assert len(_entries(app, "user.enabled")) == 1


def test_an_admin_cannot_disable_their_own_account(app, client, login):
    admin = login("admin")
    response = client.post(f"/admin/users/{admin.id}/active")
    assert response.status_code == 302
    assert "不能停用自己的账号" in client.get("/admin/users").get_data(as_text=True)
    assert _user(app, admin.email).active is True


# --- audit log ------------------------------------------------------------------------------------
def _listed(html: str) -> list[tuple[str, str]]:
    """Return the (actor, action) of each row of the audit table, top to bottom."""
    rows = re.findall(r'<tr data-action="([^"]+)">\s*<td[^>]*>[^<]*</td>\s*<td[^>]*>([^<]*)</td>', html)
    return [(actor, action) for action, actor in rows]


def _seed(app, n: int, action: str = "test.seeded", actor: str = "seed@example.com") -> None:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        for i in range(n):
            record(action, session=s, actor=actor, target_type="thing", target_id=i)


def test_the_audit_page_lists_the_newest_entries_first(app, client, login):
    admin = login("admin")
    listed = _listed(client.get("/admin/audit/").get_data(as_text=True))
    assert listed == [(admin.email, "auth.login"), ("test", "user.created")]


def test_the_audit_page_filters_by_action_and_by_actor(app, client, login):
    login("admin")
    _seed(app, 2, action="token.created", actor="zhou@example.com")
    _seed(app, 1, action="user.disabled", actor="wu@example.com")
    by_action = _listed(client.get("/admin/audit/", query_string={"action": "token."}).get_data(as_text=True))
    assert by_action == [("zhou@example.com", "token.created")] * 2
    by_actor = _listed(client.get("/admin/audit/", query_string={"actor": "WU@"}).get_data(as_text=True))
    assert by_actor == [("wu@example.com", "user.disabled")]
    nothing = client.get("/admin/audit/", query_string={"action": "no.such"}).get_data(as_text=True)
    assert "没有符合条件的记录" in nothing


def test_the_audit_page_is_paginated(app, client, login):
    login("admin")
    _seed(app, 60)  # with the admin's own two entries: 62
    first = client.get("/admin/audit/").get_data(as_text=True)
    assert "1 / 2" in first and "共 62 条" in first
    second = client.get("/admin/audit/", query_string={"page": 2}).get_data(as_text=True)
    assert "2 / 2" in second
    assert len(_listed(first)) == 50
    assert len(_listed(second)) == 12
    assert client.get("/admin/audit/", query_string={"page": "-3"}).status_code == 200
    assert client.get("/admin/audit/", query_string={"page": "abc"}).status_code == 200


def test_the_csv_export_opens_in_excel_and_is_itself_audited(app, client, login):
    admin = login("admin")
    _seed(app, 3, action="token.created")
    response = client.get("/admin/audit/export.csv", query_string={"action": "token."})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    body = response.get_data(as_text=True)
    assert body.startswith("\ufeff")  # UTF-8 with BOM, for Excel
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[0][:4] == ["id", "at_utc", "actor", "action"]
    assert [r[3] for r in rows[1:]] == ["token.created"] * 3
    exported = _entries(app, "audit.exported")
    assert [(e.actor, e.details) for e in exported] == [(admin.email, {"rows": 3})]


def test_the_csv_export_defuses_spreadsheet_formulas(app, client, login):
    login("admin")
    evil = '=HYPERLINK("http://evil.example","x")@example.com'
    app.test_client().post("/login", data={"email": evil, "password": "whatever whatever"})
    body = client.get("/admin/audit/export.csv", query_string={"action": "auth.login_failed"}).get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    actors = [r[2] for r in rows[1:]]
    assert actors == ["'" + evil.lower()]
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows[1:] for cell in row[2:])


def test_audit_pages_are_for_admins_only(client, login):
    login("marketer")
    assert client.get("/admin/audit/").status_code == 403
    assert client.get("/admin/audit/export.csv").status_code == 403


# --- friendly error pages -------------------------------------------------------------------------
def test_a_forbidden_page_explains_in_chinese_and_offers_a_way_home(client, login):
    login("agent")
    response = client.get("/admin/users")
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "没有权限" in page
    assert "您的角色无权访问此页面" in page
    assert 'href="/"' in page
    assert "员工账号" not in page.split("</nav>", 1)[1]  # nothing of the page itself leaks


def test_a_missing_page_is_a_friendly_chinese_404(client, login):
    login("agent")
    response = client.get("/no/such/page")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "页面不存在" in page
    assert "返回首页" in page


def test_a_missing_api_path_answers_json(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.is_json
