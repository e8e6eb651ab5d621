"""Sign-in throttling: per account and address with a per-account ceiling, the same answer for every account,
audited, bounded, and it wears off however hard someone hammers it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from growth.audit.models import AuditEntry
from growth.auth.models import LoginAttempt
from growth.db import get_db
from tests.factories import PASSWORD, make_user

WRONG = "definitely not it"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TOO_MANY = "尝试次数过多"


@pytest.fixture
def user(app):  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return make_user(s, role="agent", email="li@example.com")


@pytest.fixture
def clock():  # type: ignore[no-untyped-def]
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def _attempt(app, email: str, password: str = WRONG, ip: str = "10.0.0.1"):  # type: ignore[no-untyped-def]
    # A fresh client per attempt: throttling must not depend on the attacker keeping a cookie.
    return app.test_client().post(
        "/login", data={"email": email, "password": password}, environ_base={"REMOTE_ADDR": ip}
    )


def _fail(app, email: str, times: int, ip: str = "10.0.0.1") -> None:
    for _ in range(times):
        response = _attempt(app, email, ip=ip)
        assert response.status_code == 200, "refused before the limit"


def _actions(app) -> list[str]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_five_failures_are_answered_normally(app, user, clock):
    for _ in range(5):
        response = _attempt(app, user.email)
        assert response.status_code == 200
        assert "邮箱或密码不正确" in response.get_data(as_text=True)


def test_after_five_failures_even_the_right_password_is_refused(app, user, clock):
    _fail(app, user.email, 5)
    response = _attempt(app, user.email, PASSWORD)
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    assert TOO_MANY in page
    assert "邮箱或密码不正确" not in page
    assert response.headers["Retry-After"] == "30"


def test_a_missing_account_is_throttled_with_exactly_the_same_answer(app, user, clock):
    _fail(app, user.email, 5, ip="10.0.0.1")
    _fail(app, "ghost@example.com", 5, ip="10.0.0.2")
    real = _attempt(app, user.email, PASSWORD, ip="10.0.0.1")
    ghost = _attempt(app, "ghost@example.com", PASSWORD, ip="10.0.0.2")
    assert real.status_code == ghost.status_code == 429
    pages = [r.get_data(as_text=True).replace(e, "EMAIL")
             for r, e in ((real, user.email), (ghost, "ghost@example.com"))]
    assert pages[0] == pages[1]


def test_failures_from_one_address_do_not_lock_the_owner_out_elsewhere(app, user, clock):
    _fail(app, user.email, 5, ip="10.0.0.1")
    assert _attempt(app, user.email, PASSWORD, ip="10.0.0.1").status_code == 429
    assert _attempt(app, user.email, PASSWORD, ip="192.168.9.9").status_code == 302


def test_one_address_trying_many_accounts_does_not_block_colleagues_behind_the_same_proxy(app, user, clock):
    for n in range(10):
        assert _attempt(app, f"guess{n}@example.com", ip="10.9.9.9").status_code == 200
    assert _attempt(app, user.email, PASSWORD, ip="10.9.9.9").status_code == 302


def test_guessing_from_many_addresses_hits_the_account_ceiling_but_not_the_owners_usual_address(app, user, clock):
    assert _attempt(app, user.email, PASSWORD, ip="10.0.0.7").status_code == 302  # the owner's desk, last week
    clock.shift(timedelta(days=7))
    for n in range(app.config["LOGIN_ACCOUNT_MAX_FAILURES"]):
        assert _attempt(app, user.email, ip=f"172.16.0.{n}").status_code == 200
    assert _attempt(app, user.email, PASSWORD, ip="172.16.9.9").status_code == 429
    assert _attempt(app, user.email, PASSWORD, ip="10.0.0.7").status_code == 302


def test_hammering_a_throttled_account_does_not_make_the_lock_last(app, user, clock):
    _fail(app, user.email, 5)
    for _ in range(20):  # the owner (or an attacker) keeps trying, right password or not
        clock.shift(timedelta(seconds=1))
        assert _attempt(app, user.email, PASSWORD).status_code == 429
        assert _attempt(app, user.email).status_code == 429
    clock.shift(timedelta(seconds=10))
    assert _attempt(app, user.email, PASSWORD).status_code == 302


def test_no_lock_lasts_longer_than_fifteen_minutes(app, user, clock):
    waits = [0]
    for _ in range(10):  # fail as soon as each wait is over, from several addresses at once
        for n in range(4):
            response = _attempt(app, user.email, ip=f"172.16.{n}.1")
            if response.status_code == 429:
                waits.append(int(response.headers["Retry-After"]))
        clock.shift(timedelta(seconds=waits[-1] + 1))
    # Old failures age out of the window, so the doubling never even reaches its 15-minute cap.
    assert 60 <= max(waits) <= 15 * 60
    clock.shift(timedelta(minutes=15, seconds=1))
    assert _attempt(app, user.email, PASSWORD, ip="172.16.0.1").status_code == 302


def test_failures_spread_over_more_than_the_window_do_not_add_up(app, user, clock):
    _fail(app, user.email, 4)
    clock.shift(app.config["LOGIN_WINDOW"] + timedelta(seconds=1))
    _fail(app, user.email, 4)
    assert _attempt(app, user.email, PASSWORD).status_code == 302


def test_the_right_password_works_once_the_backoff_has_passed(app, user, clock):
    _fail(app, user.email, 5)
    clock.shift(timedelta(seconds=29))
    assert _attempt(app, user.email, PASSWORD).status_code == 429
    # That refused attempt was not a failure: the wait still ends 30 s after the fifth failure.
    clock.shift(timedelta(seconds=2))
    response = _attempt(app, user.email, PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_each_further_failure_after_the_wait_doubles_it(app, user, clock):
    _fail(app, user.email, 5)
    clock.shift(timedelta(seconds=31))
    _fail(app, user.email, 1)
    assert _attempt(app, user.email, PASSWORD).headers["Retry-After"] == "60"


def test_the_message_says_how_many_minutes_to_wait(app, user, clock):
    _fail(app, user.email, 5)
    page = _attempt(app, user.email, PASSWORD).get_data(as_text=True)
    assert "请 1 分钟后再试" in page


def test_failures_and_refusals_are_audited_and_recorded(app, user, clock):
    _fail(app, user.email, 5)
    _attempt(app, user.email, PASSWORD)
    assert _actions(app) == ["user.created"] + ["auth.login_failed"] * 5 + ["auth.login_throttled"]
    with get_db(app).session_scope() as s:
        throttled = s.scalars(select(AuditEntry).where(AuditEntry.action == "auth.login_throttled")).one()
        attempts = s.scalars(select(LoginAttempt)).all()
    assert throttled.actor == user.email
    assert throttled.ip == "10.0.0.1"
    assert throttled.details == {"email": user.email}
    assert len(attempts) == 5  # the refused attempt is audited but is not a failure
    assert not any(a.succeeded for a in attempts)
    assert {a.ip for a in attempts} == {"10.0.0.1"}


def test_a_failed_attempt_never_records_the_password(app, user, clock):
    _attempt(app, user.email, "my-secret-guess")
    with get_db(app).session_scope() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "auth.login_failed")).one()
    assert "my-secret-guess" not in repr(entry.details)


def test_a_successful_sign_in_is_recorded_as_an_attempt(app, user, clock):
    assert _attempt(app, user.email, PASSWORD, ip="10.1.1.1").status_code == 302
    with get_db(app).session_scope() as s:
        attempt = s.scalars(select(LoginAttempt)).one()
    assert (attempt.email, attempt.ip, attempt.succeeded) == (user.email, "10.1.1.1", True)
