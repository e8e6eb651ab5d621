"""Staff accounts, sign-in and tokens on a real database, and the audit log that records them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

from growth.audit.models import AuditEntry, AuditLogIsAppendOnly
from growth.audit.services import list_entries, record
from growth.auth import services
from growth.auth.models import ApiToken, LoginAttempt, StaffUser
from growth.errors import Conflict, DomainError, NotFound
from tests.factories import PASSWORD, make_user

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def _actions(session) -> list[str]:  # type: ignore[no-untyped-def]
    return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def _sign_in(session, email: str, password: str = PASSWORD, *, ip: str = "10.0.0.1", now: datetime = NOW):  # type: ignore[no-untyped-def]
    return services.sign_in(email, password, ip=ip, session=session, now=now, max_failures=5, window=WINDOW,
                            account_max_failures=20)


# --- accounts -------------------------------------------------------------------------------------
def test_a_new_account_has_a_normalised_email_and_a_hashed_password(session):
    user = services.create_user(" Wang.Fang@Example.COM ", role="agent", password=PASSWORD, session=session)
    assert user.email == "wang.fang@example.com"
    assert user.name == "wang.fang"
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    entry = session.scalars(select(AuditEntry)).one()
    assert (entry.action, entry.target_id, entry.details) == (
        "user.created", str(user.id), {"email": "wang.fang@example.com", "role": "agent"})


def test_the_same_email_cannot_be_registered_twice_in_any_case(session):
    services.create_user("a@example.com", role="agent", password=PASSWORD, session=session)
    with pytest.raises(Conflict) as err:
        services.create_user("A@EXAMPLE.com", role="admin", password=PASSWORD, session=session)
    assert err.value.field == "email"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"email": "not-an-email"}, "email"),
    ({"role": "root"}, "role"),
    ({"password": "short"}, "password"),
])
def test_a_bad_account_is_refused_with_a_one_language_message_on_its_field(session, kwargs, field):
    values = {"email": "b@example.com", "role": "agent", "password": PASSWORD} | kwargs
    with pytest.raises(DomainError) as err:
        services.create_user(values.pop("email"), session=session, **values)
    assert err.value.field == field
    assert err.value.message and " / " not in str(err.value.message)  # a message id, never "中文 / English"
    assert session.scalars(select(StaffUser)).all() == []


def test_find_user_ignores_case_and_reports_a_missing_one(session):
    user = make_user(session, email="c@example.com")
    assert services.find_user("C@Example.com", session=session) is user
    with pytest.raises(NotFound):
        services.find_user("nobody@example.com", session=session)
    with pytest.raises(NotFound):
        services.get_user(987654, session=session)


def test_changing_a_role_ends_sessions_and_is_audited(session):
    user = make_user(session, role="agent")
    services.change_role(user, "marketer", session=session)
    assert user.role == "marketer"
    assert user.session_version == 2
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "user.role_changed")).one()
    assert entry.details == {"email": user.email, "from": "agent", "to": "marketer"}
    assert entry.target_id == str(user.id)


def test_an_unknown_role_is_refused_and_changes_nothing(session):
    user = make_user(session, role="agent")
    with pytest.raises(DomainError):
        services.change_role(user, "god", session=session)
    assert (user.role, user.session_version) == ("agent", 1)


def test_the_last_active_admin_can_be_neither_disabled_nor_demoted_and_nothing_is_recorded(session):
    admin = make_user(session, role="admin")
    make_user(session, role="admin").active = False  # a disabled admin does not count
    session.flush()
    for attempt in (lambda: services.set_active(admin, False, session=session),
                    lambda: services.change_role(admin, "analyst", session=session)):
        with pytest.raises(Conflict) as err:
            attempt()
        assert "管理员" in str(err.value.message)
    assert (admin.active, admin.role, admin.session_version) == (True, "admin", 1)
    assert "user.disabled" not in _actions(session) and "user.role_changed" not in _actions(session)


def test_disabling_and_enabling_an_account_is_audited_and_ends_sessions(session):
    user = make_user(session, role="agent")
    services.set_active(user, False, session=session)
    services.set_active(user, True, session=session)
    assert user.active and user.session_version == 3
    assert _actions(session)[-2:] == ["user.disabled", "user.enabled"]


def test_a_new_password_replaces_the_old_one(session):
    user = make_user(session)
    services.set_password(user, "another long password", session=session)
    assert _sign_in(session, user.email).user is None
    assert _sign_in(session, user.email, "another long password").user is user
    with pytest.raises(DomainError):
        services.set_password(user, "short", session=session)


# --- sign-in --------------------------------------------------------------------------------------
def test_sign_in_returns_the_user_and_records_the_attempt(session):
    user = make_user(session)
    result = _sign_in(session, user.email.upper())
    assert result.user is user
    assert result.retry_after is None
    assert user.last_login_at == NOW
    attempt = session.scalars(select(LoginAttempt)).one()
    assert (attempt.email, attempt.succeeded, attempt.at) == (user.email, True, NOW)
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "auth.login")).one()
    assert (entry.actor, entry.actor_id) == (user.email, user.id)


@pytest.mark.parametrize("case", ["wrong password", "no such account", "disabled account"])
def test_every_kind_of_failure_gives_the_same_result(session, case):
    user = make_user(session, role="agent", email="d@example.com")
    email, password = user.email, PASSWORD
    if case == "wrong password":
        password = "wrong wrong wrong"
    elif case == "no such account":
        email = "ghost@example.com"
    else:
        services.set_active(user, False, session=session)
    result = _sign_in(session, email, password)
    assert result == services.SignInResult(None)
    assert _actions(session)[-1] == "auth.login_failed"


def test_the_sixth_attempt_is_throttled_and_says_how_long_to_wait(session):
    user = make_user(session)
    for i in range(5):
        assert _sign_in(session, user.email, "nope nope nope", now=NOW + timedelta(seconds=i)).retry_after is None
    result = _sign_in(session, user.email, now=NOW + timedelta(seconds=10))
    assert result.user is None
    assert result.retry_after == timedelta(seconds=24)  # 30 s after the latest failure, at +4 s
    assert _actions(session)[-1] == "auth.login_throttled"


def test_failures_on_other_accounts_from_one_address_do_not_throttle_this_account(session):
    user = make_user(session)
    for n in range(5):
        _sign_in(session, f"guess{n}@example.com", "x" * 12, ip="10.6.6.6")
    assert _sign_in(session, user.email, ip="10.6.6.6").user is user


def test_an_attempt_refused_while_throttled_is_not_checked_and_not_counted(session):
    user = make_user(session)
    for i in range(5):
        _sign_in(session, user.email, "nope nope nope", now=NOW + timedelta(seconds=i))
    session.flush()
    before = session.scalars(select(LoginAttempt)).all()
    assert _sign_in(session, user.email, now=NOW + timedelta(seconds=10)).retry_after is not None
    session.flush()
    assert session.scalars(select(LoginAttempt)).all() == before
    assert _sign_in(session, user.email, now=NOW + timedelta(seconds=35)).user is user


def test_the_account_ceiling_stops_guessing_from_many_addresses_but_spares_a_known_one(session):
    user = make_user(session)
    assert _sign_in(session, user.email, ip="10.0.0.9", now=NOW - timedelta(days=3)).user is user
    for n in range(20):
        _sign_in(session, user.email, "wrong wrong wrong", ip=f"172.16.0.{n}", now=NOW + timedelta(seconds=n))
    later = NOW + timedelta(seconds=30)
    assert _sign_in(session, user.email, ip="172.16.1.1", now=later).retry_after == timedelta(seconds=19)
    assert _sign_in(session, user.email, ip="10.0.0.9", now=later).user is user  # where the owner signs in


def test_a_very_long_email_is_cut_to_fit_the_attempt_log(session):
    result = _sign_in(session, "x" * 400 + "@example.com", "whatever whatever")
    assert result.user is None
    session.flush()
    assert len(session.scalars(select(LoginAttempt.email)).one()) == 254


# --- tokens ---------------------------------------------------------------------------------------
def test_a_token_is_stored_only_as_its_hash(session):
    user = make_user(session)
    token, plain = services.create_token(user, "  etl  ", session=session)
    assert plain.startswith("gro_") and len(plain) > 40
    assert token.name == "etl"
    assert token.prefix == plain[:12]
    assert token.token_hash != plain and plain not in token.token_hash
    assert services.user_for_token(plain, session=session, now=NOW) is user
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "token.created")).one()
    assert plain not in repr(entry.details)


def test_two_tokens_are_never_the_same(session):
    user = make_user(session)
    plains = {services.create_token(user, f"t{i}", session=session)[1] for i in range(20)}
    assert len(plains) == 20


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_a_token_needs_a_sensible_name(session, name):
    with pytest.raises(DomainError):
        services.create_token(make_user(session), name, session=session)


def test_a_revoked_token_no_longer_authenticates_and_revoking_twice_is_harmless(session):
    user = make_user(session)
    token, plain = services.create_token(user, "t", session=session)
    services.revoke_token(token.id, session=session)
    services.revoke_token(token.id, session=session)
    assert token.revoked_at is not None
    assert services.user_for_token(plain, session=session, now=NOW) is None
    assert _actions(session).count("token.revoked") == 1


def test_only_the_owner_may_revoke_when_an_owner_is_given(session):
    owner, other = make_user(session, role="analyst"), make_user(session, role="analyst")
    token, _plain = services.create_token(owner, "t", session=session)
    with pytest.raises(NotFound):
        services.revoke_token(token.id, session=session, owner=other)
    assert token.revoked_at is None
    services.revoke_token(token.id, session=session, owner=owner)
    assert token.revoked_at is not None
    with pytest.raises(NotFound):
        services.revoke_token(987654, session=session)


def test_a_token_of_a_disabled_user_does_not_authenticate(session):
    user = make_user(session, role="analyst")
    _token, plain = services.create_token(user, "t", session=session)
    services.set_active(user, False, session=session)
    assert services.user_for_token(plain, session=session, now=NOW) is None


@pytest.mark.parametrize("plain", ["", "gro_", "gro_nope", "xyz_abc", "GRO_abc"])
def test_an_unknown_token_does_not_authenticate(session, plain):
    make_user(session)
    assert services.user_for_token(plain, session=session, now=NOW) is None


def test_looking_a_token_up_never_writes(session):
    user = make_user(session)
    token, plain = services.create_token(user, "t", session=session)
    session.flush()
    assert services.token_for(plain, session=session, now=NOW) is token
    assert services.user_for_token(plain, session=session, now=NOW) is user
    assert token.last_used_at is None
    assert not session.dirty


def test_token_use_is_stamped_at_most_once_a_minute(session):
    user = make_user(session)
    token, _plain = services.create_token(user, "t", session=session)
    session.flush()

    def stamp(at):  # type: ignore[no-untyped-def]
        services.touch_token(token.id, session=session, now=at)
        session.expire(token)
        return token.last_used_at

    assert stamp(NOW) == NOW
    assert stamp(NOW + timedelta(seconds=50)) == NOW  # a second stamper within the minute changes nothing
    assert stamp(NOW + timedelta(seconds=61)) == NOW + timedelta(seconds=61)


def test_an_expired_token_does_not_authenticate(session):
    user = make_user(session)
    token, plain = services.create_token(user, "t", session=session, expires_in=timedelta(days=7), now=NOW)
    assert token.expires_at == NOW + timedelta(days=7)
    assert services.user_for_token(plain, session=session, now=NOW + timedelta(days=7) - timedelta(seconds=1)) is user
    assert services.user_for_token(plain, session=session, now=NOW + timedelta(days=7)) is None


def test_listing_tokens_shows_the_newest_first_and_can_narrow_to_one_user(session):
    a, b = make_user(session), make_user(session)
    first = services.create_token(a, "first", session=session)[0]
    second = services.create_token(b, "second", session=session)[0]
    assert services.list_tokens(session=session) == [second, first]
    assert services.list_tokens(session=session, user=a) == [first]


# --- the audit log --------------------------------------------------------------------------------
def test_an_audit_entry_cannot_be_changed(session):
    entry = record("something.happened", session=session, details={"n": 1})
    session.commit()
    entry.action = "something.else"
    with pytest.raises(AuditLogIsAppendOnly):
        session.flush()


def test_an_audit_entry_cannot_be_deleted(session):
    entry = record("something.happened", session=session)
    session.commit()
    session.delete(entry)
    with pytest.raises(AuditLogIsAppendOnly):
        session.flush()


def test_audit_entries_cannot_be_changed_or_deleted_in_bulk(session):
    record("something.happened", session=session)
    session.commit()
    with pytest.raises(AuditLogIsAppendOnly):
        session.execute(update(AuditEntry).values(action="rewritten"))
    session.rollback()
    with pytest.raises(AuditLogIsAppendOnly):
        session.execute(delete(AuditEntry))
    session.rollback()
    assert _actions(session) == ["something.happened"]


def test_other_rows_can_still_be_deleted_in_bulk(session):
    make_user(session)
    session.execute(delete(ApiToken))
    session.execute(update(StaffUser).values(name="renamed"))
    assert session.scalars(select(StaffUser.name)).one() == "renamed"


def test_a_system_action_is_recorded_as_done_by_the_system(session):
    entry = record("job.ran", session=session)
    assert (entry.actor, entry.actor_id, entry.ip) == ("system", None, None)


def test_audit_entries_are_listed_newest_first_and_filtered(session):
    for n in range(7):
        record("auth.login" if n % 2 else "token.created", session=session, actor=f"user{n}@example.com")
    entries, total = list_entries(session=session, per_page=3)
    assert total == 7
    assert [e.actor for e in entries] == ["user6@example.com", "user5@example.com", "user4@example.com"]
    logins, total = list_entries(session=session, action="auth")
    assert total == 3 and {e.action for e in logins} == {"auth.login"}
    by_actor, total = list_entries(session=session, actor=" USER3@ ")
    assert total == 1 and by_actor[0].actor == "user3@example.com"
    last_page, total = list_entries(session=session, page=3, per_page=3)
    assert [e.actor for e in last_page] == ["user0@example.com"]
