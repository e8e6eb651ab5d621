"""API tokens through the app: created once, stored hashed, used as bearer, revoked, tied to the account."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, text

from growth.audit.models import AuditEntry
from growth.auth.models import ApiToken, StaffUser
from growth.auth.permissions import Permission, require
from growth.auth.services import change_role, create_token, set_active
from growth.db import get_db
from tests.factories import make_user

TOKEN = re.compile(r"gro_[A-Za-z0-9_\-]{20,}")


@pytest.fixture
def api_probe(app):  # type: ignore[no-untyped-def]
    """An API route of each kind, standing in for the ones the domain packages add."""

    @app.route("/api/v1/_probe", methods=["GET", "POST"])
    @require(Permission.HOME)
    def api_probe():  # type: ignore[no-untyped-def]
        from flask_login import current_user

        return {"user": current_user.email}

    return "/api/v1/_probe"


def _token_for(app, role: str = "admin") -> tuple[StaffUser, str]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        user = make_user(s, role=role)
        return user, create_token(user, "script", session=s)[1]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _actions(app) -> list[str]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_a_token_created_on_the_page_is_shown_once(app, client, login):
    login("analyst")
    created = client.post("/account/tokens", data={"name": "weekly report"})
    assert created.status_code == 200
    shown = TOKEN.findall(created.get_data(as_text=True))
    assert len(set(shown)) == 1
    again = client.get("/account/tokens").get_data(as_text=True)
    assert shown[0] not in again
    assert "weekly report" in again
    assert shown[0][:12] in again  # the prefix, to tell tokens apart


def test_the_database_never_holds_the_plain_token(app, client, login):
    login("analyst")
    plain = TOKEN.search(client.post("/account/tokens", data={"name": "x"}).get_data(as_text=True)).group(0)
    with get_db(app).session_scope() as s:
        token = s.scalars(select(ApiToken)).one()
        assert token.token_hash != plain and len(token.token_hash) == 64
        for table in ("api_tokens", "audit_entries", "staff_users"):
            for row in s.execute(text(f"SELECT * FROM {table}")):  # fixed table names
                assert plain not in repr(tuple(row)), f"{table} holds the plain token"


def test_an_admin_token_opens_an_admin_page_without_a_cookie(app):
    _user, token = _token_for(app, "admin")
    client = app.test_client()
    response = client.get("/admin/audit/", headers=_bearer(token))
    assert response.status_code == 200
    # The token authenticates this request only; it does not sign the client in.
    with client.session_transaction() as sess:
        assert "_user_id" not in sess
    assert client.get("/admin/audit/").status_code == 302


def test_a_token_carries_its_owners_role_and_no_more(app):
    _user, token = _token_for(app, "analyst")
    assert app.test_client().get("/admin/audit/", headers=_bearer(token)).status_code == 403
    assert app.test_client().get("/", headers=_bearer(token)).status_code == 200


def test_a_token_can_write_to_the_api_but_a_cookie_session_cannot(app, client, login, api_probe):
    user, token = _token_for(app, "agent")
    response = app.test_client().post(api_probe, headers=_bearer(token))
    assert response.status_code == 200
    assert response.get_json() == {"user": user.email}
    login("admin")
    assert client.get(api_probe).status_code == 200  # reading is fine
    refused = client.post(api_probe)
    assert refused.status_code == 403
    assert refused.is_json


@pytest.mark.parametrize("header", [
    "Bearer gro_not-a-real-token-at-all-0000000000",
    "Bearer not-even-our-prefix",
    "Bearer ",
    "Basic YWRtaW46YWRtaW4=",
])
def test_a_bad_credential_gets_a_json_401_on_the_api(app, api_probe, header):
    response = app.test_client().get(api_probe, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.is_json


def test_a_revoked_token_is_refused(app, client, login, api_probe):
    user, token = _token_for(app, "admin")
    assert app.test_client().get(api_probe, headers=_bearer(token)).status_code == 200
    login("admin")
    with get_db(app).session_scope() as s:
        token_id = s.scalars(select(ApiToken.id).where(ApiToken.user_id == user.id)).one()
    assert client.post(f"/account/tokens/{token_id}/revoke").status_code == 302
    assert app.test_client().get(api_probe, headers=_bearer(token)).status_code == 401
    assert app.test_client().get("/admin/audit/", headers=_bearer(token)).status_code == 302
    assert _actions(app)[-1] == "token.revoked"


def test_a_token_of_a_disabled_user_is_refused_and_works_again_when_enabled(app, api_probe):
    user, token = _token_for(app, "marketer")
    with get_db(app).session_scope(write=True) as s:
        set_active(s.get(StaffUser, user.id), False, session=s)
    assert app.test_client().get(api_probe, headers=_bearer(token)).status_code == 401
    with get_db(app).session_scope(write=True) as s:
        set_active(s.get(StaffUser, user.id), True, session=s)
    assert app.test_client().get(api_probe, headers=_bearer(token)).status_code == 200


def test_a_token_follows_its_owners_role_change(app):
    user, token = _token_for(app, "admin")
    with get_db(app).session_scope(write=True) as s:
        change_role(s.get(StaffUser, user.id), "agent", session=s)
    assert app.test_client().get("/admin/audit/", headers=_bearer(token)).status_code == 403


def test_someone_else_cannot_revoke_my_token_but_an_admin_can(app, client, login):
    owner, _token = _token_for(app, "analyst")
    with get_db(app).session_scope() as s:
        token_id = s.scalars(select(ApiToken.id).where(ApiToken.user_id == owner.id)).one()
    login("marketer")
    assert client.post(f"/account/tokens/{token_id}/revoke").status_code == 404
    with get_db(app).session_scope() as s:
        assert s.get(ApiToken, token_id).revoked_at is None
    other = app.test_client()
    with get_db(app).session_scope(write=True) as s:
        admin = make_user(s, role="admin")
    other.post("/login", data={"email": admin.email, "password": "correct horse battery"})
    assert other.post(f"/account/tokens/{token_id}/revoke").status_code == 302
    with get_db(app).session_scope() as s:
        assert s.get(ApiToken, token_id).revoked_at is not None


def test_my_token_page_lists_only_my_tokens(app, client, login):
    with get_db(app).session_scope(write=True) as s:
        create_token(make_user(s, role="analyst"), "nightly-etl-of-someone-else", session=s)
    login("analyst")
    client.post("/account/tokens", data={"name": "mine"})
    page = client.get("/account/tokens").get_data(as_text=True)
    assert "mine" in page
    assert "nightly-etl-of-someone-else" not in page


def test_a_token_without_a_name_is_not_created(app, client, login):
    login("analyst")
    response = client.post("/account/tokens", data={"name": ""})
    assert response.status_code == 200
    assert not TOKEN.search(response.get_data(as_text=True))
    with get_db(app).session_scope() as s:
        assert s.scalars(select(ApiToken)).all() == []


def test_creating_and_revoking_on_the_pages_is_audited(app, client, login):
    user = login("analyst")
    client.post("/account/tokens", data={"name": "etl"})
    with get_db(app).session_scope() as s:
        token_id = s.scalars(select(ApiToken.id)).one()
    client.post(f"/account/tokens/{token_id}/revoke")
    with get_db(app).session_scope() as s:
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action.startswith("token."))
                            .order_by(AuditEntry.id)).all()
    assert [(e.action, e.actor, e.target_id) for e in entries] == [
        ("token.created", user.email, str(token_id)),
        ("token.revoked", user.email, str(token_id)),
    ]
    assert entries[0].details == {"name": "etl", "user": user.email}
