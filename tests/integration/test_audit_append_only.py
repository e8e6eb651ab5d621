"""The audit log cannot be changed through the app, nor by a statement that skips the ORM (both databases)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DatabaseError

from growth.audit.models import AuditEntry
from growth.audit.services import record
from growth.auth.models import StaffUser
from growth.db import get_db
from growth.migrate import upgrade
from tests.factories import make_user
from tests.integration.test_migrations import empty_database_url  # noqa: F401 (a fixture)


def _one_entry(app, **kw) -> int:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return record("something.happened", session=s, details={"x": 1}, **kw).id


@pytest.mark.parametrize("statement", ["UPDATE audit_entries SET action = 'rewritten'",
                                       "UPDATE audit_entries SET details = '{}'",
                                       "DELETE FROM audit_entries"])
def test_the_database_refuses_a_raw_update_or_delete_of_an_audit_entry(app, statement):
    _one_entry(app)
    with pytest.raises(DatabaseError, match="append-only"), get_db(app).session_scope(write=True) as s:
        s.connection().exec_driver_sql(statement)
    with get_db(app).session_scope() as s:
        assert s.scalars(select(AuditEntry.action)).all() == ["something.happened"]


def test_deleting_a_staff_member_keeps_their_entries_with_their_email(app):
    with get_db(app).session_scope(write=True) as s:
        user = make_user(s, role="agent", email="gone@example.com")
        user_id = user.id
    entry_id = _one_entry(app, actor_id=user_id, actor="gone@example.com")
    with get_db(app).session_scope(write=True) as s:
        s.execute(text("DELETE FROM api_tokens WHERE user_id = :u"), {"u": user_id})
        s.execute(text("DELETE FROM staff_users WHERE id = :u"), {"u": user_id})
    with get_db(app).session_scope() as s:
        entry = s.get_one(AuditEntry, entry_id)
        assert (entry.actor_id, entry.actor, entry.action) == (None, "gone@example.com", "something.happened")
        assert s.get(StaffUser, user_id) is None


def test_a_migrated_database_refuses_changes_to_the_audit_log_too(empty_database_url):  # noqa: F811
    upgrade(empty_database_url)
    engine = create_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO audit_entries (at, actor, action, details) "
                              "VALUES (CURRENT_TIMESTAMP, 'system', 'x', '{}')"))
        for statement in ("UPDATE audit_entries SET action = 'y'", "DELETE FROM audit_entries"):
            with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        engine.dispose()
