"""API tokens through the app: created once, stored hashed, used as bearer, revoked, tied to the account."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select, text

from growth.audit.models import AuditEntry
from growth.auth.models import ApiToken, StaffUser
from growth.auth.permissions import Permission, require
from growth.auth.services import change_role, create_token, set_active
from growth.db import get_db
from growth.timeutil import SHANGHAI
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


def test_an_admin_token_opens_the_api_without_a_cookie(app, api_probe):
    user, token = _token_for(app, "admin")
    client = app.test_client()
    response = client.get(api_probe, headers=_bearer(token))
    assert response.status_code == 200
    assert response.get_json() == {"user": user.email}
    # The token authenticates this request only; it does not sign the client in.
    with client.session_transaction() as sess:
        assert "_user_id" not in sess
    assert client.get(api_probe).status_code == 401


@pytest.mark.parametrize("path", ["/admin/audit/", "/", "/admin/audit/export.csv", "/investors/export.csv"])
def test_a_token_outside_the_api_is_ignored_and_the_request_is_anonymous(app, path):
    _user, token = _token_for(app, "admin")
    response = app.test_client().get(path, headers=_bearer(token))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert _actions(app) == ["user.created", "token.created"]  # no export was made, nothing was stamped


def test_a_token_carries_its_owners_role_and_no_more(app):
    _user, token = _token_for(app, "analyst")
    assert app.test_client().get("/api/v1/funnel", headers=_bearer(token)).status_code == 200
    _user, token = _token_for(app, "agent")
    assert app.test_client().get("/api/v1/funnel", headers=_bearer(token)).status_code == 403


def test_an_expired_token_is_refused(app, api_probe):
    with get_db(app).session_scope(write=True) as s:
        user = make_user(s, role="analyst")
        _token, plain = create_token(user, "short-lived", session=s, expires_in=timedelta(days=1),
                                     now=datetime.now(UTC) - timedelta(hours=23))
    assert app.test_client().get(api_probe, headers=_bearer(plain)).status_code == 200
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=2)):
        response = app.test_client().get(api_probe, headers=_bearer(plain))
    assert response.status_code == 401
    assert response.is_json


def test_using_a_token_stamps_its_last_use_at_most_once_a_minute(app, api_probe):
    _user, token = _token_for(app, "analyst")
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def used_at(at):  # type: ignore[no-untyped-def]
        with time_machine.travel(at, tick=False):
            assert app.test_client().get(api_probe, headers=_bearer(token)).status_code == 200
        with get_db(app).session_scope() as s:
            return s.scalars(select(ApiToken.last_used_at)).one()

    assert used_at(start) == start
    assert used_at(start + timedelta(seconds=30)) == start
    assert used_at(start + timedelta(seconds=61)) == start + timedelta(seconds=61)


def test_a_token_read_never_opens_the_request_as_a_writer(app, api_probe, monkeypatch):
    from growth import db as dbmod

    _user, token = _token_for(app, "analyst")
    opened = []
    real = dbmod.request_session

    def spy(*, write: bool = False):  # type: ignore[no-untyped-def]
        session = real(write=write)
        opened.append(write or bool(dbmod.g.get("_db_writer")))
        return session

    monkeypatch.setattr("growth.security.request_session", spy)
    assert app.test_client().get(api_probe, headers=_bearer(token)).status_code == 200
    assert opened and not any(opened)


def test_the_token_page_shows_expiry_and_last_use_and_clears_the_name_after_creating(app, client, login):
    login("analyst")
    created = client.post("/account/tokens", data={"name": "weekly-report-bot", "expires_days": "30"})
    page = created.get_data(as_text=True)
    assert created.status_code == 200
    assert 'value="weekly-report-bot"' not in page  # the name field is empty again
    assert "weekly-report-bot" in page  # listed
    assert "从未使用" in page
    with get_db(app).session_scope() as s:
        token = s.scalars(select(ApiToken)).one()
    assert token.expires_at is not None
    assert timedelta(days=29, hours=23) < token.expires_at - token.created_at <= timedelta(days=30)
    assert token.expires_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") in page


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
    user, token = _token_for(app, "analyst")
    with get_db(app).session_scope(write=True) as s:
        change_role(s.get(StaffUser, user.id), "agent", session=s)
    assert app.test_client().get("/api/v1/funnel", headers=_bearer(token)).status_code == 403


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
    assert entries[0].details == {"name": "etl", "user": user.email, "expires_at": None}
