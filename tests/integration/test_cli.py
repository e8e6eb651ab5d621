"""The `growth users` and `growth tokens` commands: they work, and mistakes end in a clean message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from click.testing import Result
from sqlalchemy import select

from growth.audit.models import AuditEntry
from growth.auth.models import ApiToken, StaffUser
from growth.cli import cli
from growth.db import get_db
from tests.factories import PASSWORD, make_user


@pytest.fixture
def run(app):  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()

    def _run(*args: str) -> Result:
        return runner.invoke(cli, list(args))

    return _run


def _clean_failure(result: Result, *fragments: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for fragment in fragments:
        assert fragment in result.output


def test_users_create_makes_an_account_that_can_sign_in(app, run):
    result = run("users", "create", "Zhao@Example.com", "--role", "marketer", "--password", PASSWORD,
                 "--name", "赵敏")
    assert result.exit_code == 0, result.output
    assert "created zhao@example.com (marketer)" in result.output
    with get_db(app).session_scope() as s:
        user = s.scalars(select(StaffUser)).one()
        entry = s.scalars(select(AuditEntry)).one()
    assert (user.email, user.role, user.name) == ("zhao@example.com", "marketer", "赵敏")
    assert (entry.action, entry.actor) == ("user.created", "cli")
    response = app.test_client().post("/login", data={"email": "zhao@example.com", "password": PASSWORD})
    assert response.status_code == 302


def test_users_create_refuses_an_unknown_role(app, run):
    result = run("users", "create", "a@example.com", "--role", "root", "--password", PASSWORD)
    _clean_failure(result, "Invalid value for '--role'")
    with get_db(app).session_scope() as s:
        assert s.scalars(select(StaffUser)).all() == []


def test_users_create_refuses_a_short_password(app, run):
    result = run("users", "create", "a@example.com", "--role", "agent", "--password", "short")
    _clean_failure(result, "Error:", "10")
    with get_db(app).session_scope() as s:
        assert s.scalars(select(StaffUser)).all() == []


def test_users_create_refuses_a_duplicate_email(app, run):
    assert run("users", "create", "a@example.com", "--role", "agent", "--password", PASSWORD).exit_code == 0
    result = run("users", "create", "A@example.com", "--role", "admin", "--password", PASSWORD)
    _clean_failure(result, "Error:")
    with get_db(app).session_scope() as s:
        assert s.scalars(select(StaffUser.role)).all() == ["agent"]


def test_users_create_needs_a_password(run):
    _clean_failure(run("users", "create", "a@example.com", "--role", "agent"), "--password")


def test_users_set_role_and_list(app, run):
    run("users", "create", "b@example.com", "--role", "agent", "--password", PASSWORD)
    result = run("users", "set-role", "b@example.com", "analyst")
    assert result.exit_code == 0, result.output
    listing = run("users", "list")
    assert listing.exit_code == 0
    assert "b@example.com" in listing.output and "analyst" in listing.output and "active" in listing.output
    _clean_failure(run("users", "set-role", "nobody@example.com", "analyst"), "Error:")


def test_tokens_create_prints_a_token_that_works(app, run):
    with get_db(app).session_scope(write=True) as s:
        user = make_user(s, role="admin")
    result = run("tokens", "create", user.email, "--name", "nightly export")
    assert result.exit_code == 0, result.output
    plain = result.output.strip()
    assert plain.startswith("gro_")
    response = app.test_client().get("/api/v1/funnel", headers={"Authorization": f"Bearer {plain}"})
    assert response.status_code == 200
    with get_db(app).session_scope() as s:
        token = s.scalars(select(ApiToken)).one()
    assert (token.name, token.user_id, token.expires_at) == ("nightly export", user.id, None)
    assert token.token_hash != plain


def test_tokens_create_for_an_unknown_user_fails_cleanly(app, run):
    _clean_failure(run("tokens", "create", "nobody@example.com"), "Error:", "nobody@example.com")
    with get_db(app).session_scope() as s:
        assert s.scalars(select(ApiToken)).all() == []


def test_tokens_list_never_shows_the_secret(app, run):
    with get_db(app).session_scope(write=True) as s:
        user = make_user(s)
    plain = run("tokens", "create", user.email).output.strip()
    listing = run("tokens", "list")
    assert listing.exit_code == 0
    assert plain[:12] in listing.output
    assert plain not in listing.output
    assert "active" in listing.output


def test_tokens_revoke_stops_the_token_working(app, run):
    with get_db(app).session_scope(write=True) as s:
        user = make_user(s, role="admin")
    plain = run("tokens", "create", user.email).output.strip()
    with get_db(app).session_scope() as s:
        token_id = s.scalars(select(ApiToken.id)).one()
    result = run("tokens", "revoke", str(token_id))
    assert result.exit_code == 0, result.output
    assert f"revoked token {token_id}" in result.output
    response = app.test_client().get("/api/v1/funnel", headers={"Authorization": f"Bearer {plain}"})
    assert response.status_code == 401
    assert "revoked" in run("tokens", "list").output


def test_tokens_revoke_of_an_unknown_token_fails_cleanly(run):
    _clean_failure(run("tokens", "revoke", "987654"), "Error:")
    _clean_failure(run("tokens", "revoke", "abc"), "Invalid value")


def test_tokens_create_with_an_expiry_and_list_shows_expiry_and_last_use(app, run):
    with get_db(app).session_scope(write=True) as s:
        user = make_user(s, role="analyst")
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        plain = run("tokens", "create", user.email, "--expires-days", "7").output.strip()
        assert "last used never" in run("tokens", "list").output
        assert app.test_client().get("/api/v1/funnel", headers={"Authorization": f"Bearer {plain}"}).status_code == 200
        listing = run("tokens", "list").output
    assert "active" in listing
    assert "last used 2026-03-02 09:00Z" in listing and "expires 2026-03-09 09:00Z" in listing
    with time_machine.travel(start + timedelta(days=7), tick=False):
        assert app.test_client().get("/api/v1/funnel", headers={"Authorization": f"Bearer {plain}"}).status_code == 401
        assert "expired" in run("tokens", "list").output
    _clean_failure(run("tokens", "create", user.email, "--expires-days", "0"), "Invalid value")


def test_users_set_password_prompts_twice_and_ends_the_users_sessions(app, run):
    with get_db(app).session_scope(write=True) as s:
        user = make_user(s, role="agent")
    client = app.test_client()
    assert client.post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 302
    runner = app.test_cli_runner()
    result = runner.invoke(cli, ["users", "set-password", user.email], input="brand new secret\nbrand new secret\n")
    assert result.exit_code == 0, result.output
    assert "brand new secret" not in result.output
    assert client.get("/").status_code == 302  # the old session ended
    assert app.test_client().post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 200
    assert app.test_client().post("/login", data={"email": user.email,
                                                  "password": "brand new secret"}).status_code == 302
    with get_db(app).session_scope() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "user.password_changed")).one()
    assert (entry.actor, entry.details) == ("cli", {"email": user.email, "by": "operator"})


def test_users_set_password_refuses_a_mismatch_and_a_short_password(app, run):
    with get_db(app).session_scope(write=True) as s:
        user = make_user(s, role="agent")
    runner = app.test_cli_runner()
    mismatch = runner.invoke(cli, ["users", "set-password", user.email], input="one long secret\nanother secret\n")
    assert mismatch.exit_code != 0
    _clean_failure(run("users", "set-password", user.email, "--password", "short"), "Error:", "10")
    assert app.test_client().post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 302


def test_users_set_role_keeps_the_last_active_admin(app, run):
    run("users", "create", "only@example.com", "--role", "admin", "--password", PASSWORD)
    _clean_failure(run("users", "set-role", "only@example.com", "agent"), "Error:", "管理员")
    run("users", "create", "second@example.com", "--role", "admin", "--password", PASSWORD)
    assert run("users", "set-role", "only@example.com", "agent").exit_code == 0
