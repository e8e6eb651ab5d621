"""Passwords on the pages (change, admin reset, published demo passwords), the last admin, and no-store."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from growth.audit.models import AuditEntry
from growth.auth.models import StaffUser
from growth.auth.permissions import ROLE_LABELS, ROLE_VALUES, Role
from growth.auth.services import create_token
from growth.db import get_db
from tests.factories import PASSWORD, make_user

NEW = "a much better passphrase"


def _user(app, user_id: int) -> StaffUser:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return s.get(StaffUser, user_id)


def _entries(app, action: str) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def _sign_in(app, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    client = app.test_client()
    response = client.post("/login", data={"email": email, "password": password})
    return client, response


# --- changing one's own password ------------------------------------------------------------------
def test_the_account_menu_offers_a_password_change(client, login):
    login("analyst")
    assert 'href="/account/password"' in client.get("/").get_data(as_text=True)


def test_a_user_changes_their_password_and_their_other_sessions_end(app, client, login):
    user = login("analyst")
    elsewhere, _ = _sign_in(app, user.email)
    response = client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": NEW, "confirm": NEW})
    assert response.status_code == 302
    assert client.get("/").status_code == 200  # this session carries on
    assert elsewhere.get("/").status_code == 302  # the other one ended
    assert _sign_in(app, user.email, PASSWORD)[1].status_code == 200
    assert _sign_in(app, user.email, NEW)[1].status_code == 302
    entry = _entries(app, "user.password_changed")[-1]
    assert (entry.actor, entry.details) == (user.email, {"email": user.email, "by": "self"})


@pytest.mark.parametrize(("data", "message"), [
    ({"current_password": "not my password", "new_password": NEW, "confirm": NEW}, "当前密码不正确"),
    ({"current_password": PASSWORD, "new_password": NEW, "confirm": NEW + "x"}, "两次输入的新密码不一致"),
    ({"current_password": PASSWORD, "new_password": "short", "confirm": "short"}, "is-invalid"),
    ({"current_password": PASSWORD, "new_password": PASSWORD, "confirm": PASSWORD}, "不能与当前密码相同"),
])
def test_a_bad_password_change_is_refused_and_changes_nothing(app, client, login, data, message):
    user = login("analyst")
    response = client.post("/account/password", data=data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert _user(app, user.id).session_version == user.session_version
    assert _entries(app, "user.password_changed") == []


# --- an administrator's reset ---------------------------------------------------------------------
def _reset(app, client, login):  # type: ignore[no-untyped-def]
    login("admin")
    with get_db(app).session_scope(write=True) as s:
        colleague = make_user(s, role="marketer")
    colleague_client, _ = _sign_in(app, colleague.email)
    page = client.post(f"/admin/users/{colleague.id}/reset-password").get_data(as_text=True)
    temporary = re.search(r'id="temp-password" value="([^"]+)"', page).group(1)
    return colleague, colleague_client, temporary


def test_an_admin_reset_shows_a_temporary_password_once_and_ends_the_users_sessions(app, client, login):
    colleague, colleague_client, temporary = _reset(app, client, login)
    assert len(temporary) >= 10
    assert temporary not in client.get("/admin/users").get_data(as_text=True)
    assert colleague_client.get("/").status_code == 302
    assert _sign_in(app, colleague.email, PASSWORD)[1].status_code == 200
    entry = _entries(app, "user.password_reset")[-1]
    assert entry.target_id == str(colleague.id)
    assert temporary not in repr(entry.details)


def test_after_a_reset_the_user_can_do_nothing_but_change_the_password(app, client, login):
    colleague, _old, temporary = _reset(app, client, login)
    fresh, signed_in = _sign_in(app, colleague.email, temporary)
    assert signed_in.status_code == 302
    for path in ("/", "/acquisition/channels", "/account/tokens", "/api/v1/funnel"):
        response = fresh.get(path)
        if path.startswith("/api/"):
            assert response.status_code == 403 and response.is_json
        else:
            assert response.status_code == 302 and response.headers["Location"] == "/account/password"
    page = fresh.get("/account/password").get_data(as_text=True)
    assert "临时密码" in page
    changed = fresh.post("/account/password", data={"current_password": temporary, "new_password": NEW,
                                                    "confirm": NEW})
    assert changed.status_code == 302
    assert fresh.get("/acquisition/channels").status_code == 200
    assert _user(app, colleague.id).must_change_password is False


def test_after_a_reset_the_users_tokens_wait_for_the_change_too(app, client, login):
    login("admin")
    with get_db(app).session_scope(write=True) as s:
        colleague = make_user(s, role="analyst")
        plain = create_token(colleague, "etl", session=s)[1]
    client.post(f"/admin/users/{colleague.id}/reset-password")
    response = app.test_client().get("/api/v1/funnel", headers={"Authorization": f"Bearer {plain}"})
    assert response.status_code == 403


def test_an_admin_cannot_reset_their_own_password_on_the_users_page(app, client, login):
    admin = login("admin")
    response = client.post(f"/admin/users/{admin.id}/reset-password")
    assert response.status_code == 302
    assert _user(app, admin.id).must_change_password is False


# --- the published demo passwords -----------------------------------------------------------------
def test_a_published_password_is_flagged_on_the_home_page_until_changed(app, client, login):
    user = login("marketer")
    with get_db(app).session_scope(write=True) as s:
        s.get(StaffUser, user.id).password_is_published = True
    assert "请修改密码" in client.get("/").get_data(as_text=True)
    client.post("/account/password", data={"current_password": PASSWORD, "new_password": NEW, "confirm": NEW})
    assert "请修改密码" not in client.get("/").get_data(as_text=True)


def test_the_demo_accounts_are_marked_as_having_published_passwords(app):
    from growth.demo import _staff
    from growth.demodata import DEMO_STAFF

    with get_db(app).session_scope(write=True) as s:
        _staff(s)
    with get_db(app).session_scope() as s:
        flags = s.scalars(select(StaffUser.password_is_published)).all()
    assert len(flags) == len(DEMO_STAFF) and all(flags)


# --- the last administrator -----------------------------------------------------------------------
def test_the_only_admin_cannot_demote_themselves(app, client, login):
    admin = login("admin")
    response = client.post(f"/admin/users/{admin.id}/role", data={"role": "analyst"})
    assert response.status_code == 302
    assert "至少需要保留一名启用的管理员" in client.get("/admin/users").get_data(as_text=True)
    assert _user(app, admin.id).role == "admin"


def test_an_admin_may_step_down_once_there_is_another(app, client, login):
    admin = login("admin")
    with get_db(app).session_scope(write=True) as s:
        make_user(s, role="admin")
    assert client.post(f"/admin/users/{admin.id}/role", data={"role": "analyst"}).status_code == 302
    assert _user(app, admin.id).role == "analyst"


def test_the_last_active_admin_cannot_be_disabled(app):
    from growth.auth.services import change_role, set_active
    from growth.errors import Conflict

    with get_db(app).session_scope(write=True) as s:
        only = make_user(s, role="admin")
        other = make_user(s, role="admin")
        set_active(other, False, session=s)
        with pytest.raises(Conflict):
            set_active(only, False, session=s)
        with pytest.raises(Conflict):
            change_role(only, "agent", session=s)
        assert (only.active, only.role) == (True, "admin")


# --- no copies of personal data -------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/investors", "/investors/export.csv", "/admin/users", "/admin/audit/",
                                  "/admin/audit/export.csv", "/api/v1/funnel", "/dashboards/funnel",
                                  "/account/tokens"])
def test_signed_in_pages_json_and_csv_are_never_stored(client, login, path):
    login("admin")
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_api_answers_are_never_stored_even_when_refused(client):
    assert client.get("/api/v1/funnel").headers["Cache-Control"] == "no-store"


def test_static_assets_keep_their_caching(client):
    for path in ("/static/app.css", "/dashboards/assets/plotly.min.js"):
        response = client.get(path)
        assert response.status_code == 200
        assert "no-store" not in response.headers.get("Cache-Control", "")
        response.close()


# --- one list of roles ----------------------------------------------------------------------------
def test_every_role_has_one_label_and_the_forms_offer_exactly_the_roles(app, client, login):
    assert set(ROLE_LABELS) == set(Role) and tuple(r.value for r in Role) == ROLE_VALUES
    login("admin")
    page = client.get("/admin/users").get_data(as_text=True)
    offered = re.findall(r'<option value="([a-z]+)"', page)
    assert set(offered) == set(ROLE_VALUES)


def test_no_module_imports_the_auth_views_for_labels():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for path in [*root.glob("growth/**/*.py"), *root.glob("dashboards/**/*.py")]:
        assert "from growth.auth.views import ROLE_LABELS" not in path.read_text(), path
