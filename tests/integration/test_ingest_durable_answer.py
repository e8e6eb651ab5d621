"""The events API answers only once its appends are flushed, but the append lock is not held for the flush.

On PostgreSQL every append takes one advisory lock until its transaction ends (seq order = commit order).
A synchronous commit held that lock through its WAL flush, so appends could not share flushes: about 400
single-event requests/s on the development disk, whatever the CPU (bench/README.md, issue 13). The append
now commits without waiting (`synchronous_commit` off for its transaction, set in the lock's statement) and the
request then commits a tiny WAL record synchronously on the same connection, outside it: that flush covers the
appends' commit, so a 200 still means durable events (spec: "once the response is sent, accepted events are durable").
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import event as sa_event
from sqlalchemy.engine import make_url

from growth.db import get_db
from tests.events import event, post_events

pytestmark = pytest.mark.postgres_only

BARRIER = "SELECT pg_logical_emit_message"


def test_the_append_lock_is_let_go_before_the_flush_and_the_answer_waits_for_it(app, client, database_url):
    engine = get_db(app).engine
    plain = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    seen: list[str] = []
    inserted_up_to: list[str] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement.split("(")[0].strip())
        if "pg_advisory_xact_lock" in statement:  # the append's commit will not wait for its flush
            assert parameters["sync"] == "off" and not conn.connection.dbapi_connection.autocommit
        if statement.startswith(BARRIER):  # the appends' commit is in the WAL by now
            with psycopg.connect(plain, autocommit=True) as other:
                inserted_up_to.append(other.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0])

    def durable(dbapi_conn, record):  # the test databases turn synchronous commits off; production has them on
        dbapi_conn.execute("SET synchronous_commit = on")
        dbapi_conn.commit()

    engine.dispose()
    sa_event.listen(engine, "connect", durable)
    sa_event.listen(engine, "before_cursor_execute", on_execute)
    sa_event.listen(engine, "commit", lambda conn: seen.append("COMMIT"))
    try:
        registered = event("user.registered", "u1", datetime(2026, 11, 1, 2, 0, tzinfo=UTC))
        assert post_events(client, [registered]).json == {"accepted": 1, "duplicates": 0, "rejected": []}
        first = list(seen)
        seen.clear()
        # A duplicate answer vouches for another request's commit: it waits for a flush too.
        assert post_events(client, [registered]).json == {"accepted": 0, "duplicates": 1, "rejected": []}
        assert post_events(client, [{**registered, "id": "evt_2"}]).json["accepted"] == 1
    finally:
        sa_event.remove(engine, "before_cursor_execute", on_execute)
        sa_event.remove(engine, "connect", durable)
        engine.dispose()

    appends = [s for s in first if s != "SELECT 1"]  # the pool's pre-ping
    # The appends' COMMIT goes to the driver directly (no pool round trip): the barrier's hook checks it is in the WAL.
    assert appends == ["SELECT set_config", "INSERT INTO platform_events", "SELECT pg_logical_emit_message", "COMMIT"]
    assert "SELECT pg_logical_emit_message" in seen
    with psycopg.connect(plain, autocommit=True) as other:
        flushed = other.execute("SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", (inserted_up_to[0],)).fetchone()[0]
    assert flushed  # answered after the flush
