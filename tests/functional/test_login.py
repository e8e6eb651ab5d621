"""Signing in and out: answers that leak nothing, fresh sessions, safe redirects, timeouts, cookies, headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from growth.audit.models import AuditEntry
from growth.auth.models import StaffUser
from growth.auth.services import change_role, set_active, set_password
from growth.db import get_db
from tests.factories import PASSWORD, make_user

COOKIE = "growth_session"
WRONG = "definitely not it"


@pytest.fixture
def user(app):  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return make_user(s, role="marketer", email="mei@example.com")


def _sign_in(client, email: str, password: str = PASSWORD, **kwargs):  # type: ignore[no-untyped-def]
    return client.post("/login", data={"email": email, "password": password}, **kwargs)


def _signed_in(client) -> bool:  # type: ignore[no-untyped-def]
    return client.get("/").status_code == 200


def _session_cookie(client) -> str | None:  # type: ignore[no-untyped-def]
    cookie = client.get_cookie(COOKIE)
    return None if cookie is None else cookie.value


def _with_cookie(app, value: str):  # type: ignore[no-untyped-def]
    other = app.test_client()
    other.set_cookie(COOKIE, value)
    return other


def _reload(app, user_id: int) -> StaffUser:
    with get_db(app).session_scope() as s:
        return s.get(StaffUser, user_id)


# --- success and failure --------------------------------------------------------------------------
def test_the_right_password_signs_in_and_lands_on_the_home_page(client, user):
    response = _sign_in(client, user.email)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert _signed_in(client)


def test_the_email_is_matched_without_regard_to_case_or_spaces(client, user):
    assert _sign_in(client, "  MEI@Example.COM ").status_code == 302
    assert _signed_in(client)


def test_a_successful_sign_in_is_audited_and_stamps_the_last_login(app, client, user):
    _sign_in(client, user.email)
    with get_db(app).session_scope() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "auth.login")).one()
    assert (entry.actor, entry.actor_id, entry.target_id) == (user.email, user.id, str(user.id))
    assert entry.ip == "127.0.0.1"
    assert _reload(app, user.id).last_login_at is not None


def test_a_wrong_password_is_refused_with_a_generic_message(client, user):
    response = _sign_in(client, user.email, WRONG)
    assert response.status_code == 200
    assert "邮箱或密码不正确" in response.get_data(as_text=True)
    assert not _signed_in(client)


def test_an_unknown_account_gets_exactly_the_same_answer_as_a_wrong_password(app, client, user):
    wrong_password = _sign_in(client, user.email, WRONG)
    unknown_account = _sign_in(app.test_client(), "nobody@example.com", WRONG)
    assert wrong_password.status_code == unknown_account.status_code
    # The page echoes the typed email back, so compare the pages with the email taken out.
    pages = [r.get_data(as_text=True).replace(e, "EMAIL")
             for r, e in ((wrong_password, user.email), (unknown_account, "nobody@example.com"))]
    assert pages[0] == pages[1]


def test_a_disabled_account_cannot_sign_in_and_is_not_told_why(app, client, user):
    with get_db(app).session_scope(write=True) as s:
        set_active(s.get(StaffUser, user.id), False, session=s)
    response = _sign_in(client, user.email)
    assert response.status_code == 200
    assert "邮箱或密码不正确" in response.get_data(as_text=True)
    assert not _signed_in(client)


def test_an_empty_form_is_refused_without_checking_anything(app, client):
    response = client.post("/login", data={"email": "", "password": ""})
    assert response.status_code == 200
    assert not _signed_in(client)
    with get_db(app).session_scope() as s:
        assert s.scalars(select(AuditEntry)).all() == []


def test_a_signed_in_user_visiting_the_login_page_goes_home(client, user):
    _sign_in(client, user.email)
    response = client.get("/login")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


# --- session rotation -----------------------------------------------------------------------------
def test_signing_in_starts_a_fresh_session(client, user):
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    before = _session_cookie(client)
    _sign_in(client, user.email)
    after = _session_cookie(client)
    assert after is not None and after != before
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess["_user_id"] == f"{user.id}:1"


def test_signing_in_keeps_the_chosen_language(client, user):
    client.get("/lang/en")
    _sign_in(client, user.email)
    with client.session_transaction() as sess:
        assert sess["locale"] == "en"


def test_a_cookie_captured_before_sign_in_is_not_signed_in_afterwards(app, client, user):
    client.get("/lang/en")  # gives the visitor a session cookie
    captured = _session_cookie(client)
    assert captured is not None
    _sign_in(client, user.email)
    assert _signed_in(client)
    assert not _signed_in(_with_cookie(app, captured))


# --- sign-out -------------------------------------------------------------------------------------
def test_signing_out_needs_a_post(client, user):
    _sign_in(client, user.email)
    assert client.get("/logout").status_code == 405
    assert _signed_in(client)


def test_signing_out_ends_the_session_and_is_audited(app, client, user):
    _sign_in(client, user.email)
    response = client.post("/logout")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert not _signed_in(client)
    with get_db(app).session_scope() as s:
        assert s.scalars(select(AuditEntry.actor).where(AuditEntry.action == "auth.logout")).all() == [user.email]


def test_a_cookie_copied_while_signed_in_is_useless_after_sign_out(app, client, user):
    _sign_in(client, user.email)
    stolen = _session_cookie(client)
    assert _signed_in(_with_cookie(app, stolen))
    client.post("/logout")
    assert not _signed_in(_with_cookie(app, stolen))


# --- open redirects -------------------------------------------------------------------------------
def test_a_local_next_page_is_followed_after_sign_in(client, user):
    response = _sign_in(client, user.email, query_string={"next": "/account/tokens?x=1"})
    assert response.headers["Location"] == "/account/tokens?x=1"


@pytest.mark.parametrize("target", [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "https:evil.example",
    "javascript:alert(1)",
    "evil.example",
])
def test_a_next_page_elsewhere_is_ignored_after_sign_in(client, user, target):
    response = _sign_in(client, user.email, query_string={"next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("target", ["//evil.example/", "/\\evil.example", "https://evil.example/"])
def test_the_language_switch_does_not_redirect_elsewhere(client, target):
    response = client.get("/lang/en", query_string={"next": target})
    assert response.headers["Location"] == "/"


# --- sessions that end ----------------------------------------------------------------------------
@pytest.mark.parametrize("change", [
    lambda u, s: change_role(u, "analyst", session=s),
    lambda u, s: set_active(u, False, session=s),
    lambda u, s: set_password(u, "a brand new password", session=s),
], ids=["role changed", "disabled", "password changed"])
def test_an_account_change_by_someone_else_ends_the_users_sessions(app, client, user, change):
    _sign_in(client, user.email)
    assert _signed_in(client)
    with get_db(app).session_scope(write=True) as s:
        change(s.get(StaffUser, user.id), s)
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_after_a_role_change_the_user_signs_in_again_with_the_new_role(app, client, user):
    _sign_in(client, user.email)
    with get_db(app).session_scope(write=True) as s:
        change_role(s.get(StaffUser, user.id), "admin", session=s)
    _sign_in(client, user.email)
    assert client.get("/admin/audit/").status_code == 200


def test_a_session_idle_longer_than_the_timeout_is_sent_to_sign_in(app, client, user):
    with time_machine.travel(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), tick=False) as clock:
        _sign_in(client, user.email)
        clock.shift(app.config["IDLE_TIMEOUT"] + timedelta(seconds=1))
        response = client.get("/admin/audit/")
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")
        # The session is over: coming back at once does not revive it.
        assert not _signed_in(client)
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        assert "长时间未操作" in page


def test_activity_keeps_a_session_alive_past_the_timeout(app, client, user):
    step = app.config["IDLE_TIMEOUT"] - timedelta(minutes=1)
    with time_machine.travel(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), tick=False) as clock:
        _sign_in(client, user.email)
        for _ in range(3):
            clock.shift(step)
            assert _signed_in(client)


def test_an_idle_api_session_gets_a_json_401(app, client, user):
    from growth.auth.permissions import Permission, require

    @app.route("/api/v1/_probe")
    @require(Permission.HOME)
    def api_probe():  # type: ignore[no-untyped-def]
        return {"ok": True}

    with time_machine.travel(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), tick=False) as clock:
        _sign_in(client, user.email)
        assert client.get("/api/v1/_probe").status_code == 200
        clock.shift(app.config["IDLE_TIMEOUT"] + timedelta(seconds=1))
        response = client.get("/api/v1/_probe")
    assert response.status_code == 401
    assert response.is_json


# --- cookies and headers --------------------------------------------------------------------------
def _session_set_cookie(response) -> str:  # type: ignore[no-untyped-def]
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(COOKIE + "=")]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return cookies[0]


def test_the_session_cookie_is_http_only_and_same_site_lax(client, user):
    cookie = _session_set_cookie(_sign_in(client, user.email))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # the test configuration serves plain HTTP


class TestBehindHttps:
    @pytest.fixture
    def app_config(self) -> dict:
        return {"SESSION_COOKIE_SECURE": True}

    def test_the_session_cookie_is_secure_when_configured(self, client, user):
        response = _sign_in(client, user.email, base_url="https://localhost")
        cookie = _session_set_cookie(response)
        assert "Secure" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie


def test_secure_cookies_are_the_default_outside_tests():
    from growth.config import Config

    assert Config.SESSION_COOKIE_SECURE is True
    assert Config.SESSION_COOKIE_HTTPONLY is True
    assert Config.SESSION_COOKIE_SAMESITE == "Lax"


def _csp(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    policy = response.headers["Content-Security-Policy"]
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in (p.strip() for p in policy.split(";")) if part}


@pytest.mark.parametrize("path", ["/login", "/", "/no-such-page"])
def test_every_answer_carries_the_security_headers(client, path):
    response = client.get(path)
    csp = _csp(response)
    assert csp["frame-ancestors"] == "'none'"
    assert csp["script-src"] == "'self'"  # no inline scripts
    assert csp["default-src"] == "'self'"
    assert csp["object-src"] == "'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_a_forbidden_page_carries_the_security_headers_too(client, login):
    login("agent")
    response = client.get("/admin/users")
    assert response.status_code == 403
    assert _csp(response)["frame-ancestors"] == "'none'"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_pages_load_no_script_from_elsewhere(client, user):
    _sign_in(client, user.email)
    html = client.get("/").get_data(as_text=True)
    assert "<script>" not in html  # inline scripts would be blocked by the policy anyway
    for src in html.split('src="')[1:]:
        assert src.startswith("/"), src[:80]
