"""The events API answers only once its appends are flushed; the append lock is never held for a flush or a round trip.

On PostgreSQL every append takes one advisory lock until its transaction ends (seq order = commit order).
A synchronous commit held that lock through its WAL flush, so appends could not share flushes: about 400
single-event requests/s on the development disk, whatever the CPU (bench/README.md, issue 13). The append
now commits without waiting (`synchronous_commit` off for its transaction, set in the lock's statement) and a
tiny WAL record is then committed synchronously in a transaction of its own: that flush covers the appends'
commit, so a 200 still means durable events (spec: "once the response is sent, accepted events are durable").
All of it is one statement string, one round trip: the lock is held for the server's work only, never for a
client round trip.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import event as sa_event

from growth.db import get_db
from tests.events import event, post_events

pytestmark = pytest.mark.postgres_only

BARRIER = "SELECT pg_logical_emit_message"


class Recording(psycopg.Cursor):
    """A cursor that notes each statement with how it was sent."""

    log: list[dict[str, Any]] = []

    def execute(self, query, params=None, **kwargs):  # type: ignore[no-untyped-def, override]
        Recording.note(self, query, params)
        return super().execute(query, params, **kwargs)

    @staticmethod
    def note(cursor: psycopg.Cursor, query: Any, params: Any) -> None:
        Recording.log.append({"sql": " ".join(str(query).split()), "params": params,
                              "autocommit": cursor.connection.autocommit})


@pytest.fixture
def recorded(app, monkeypatch):
    """Record what the web requests send to the database, on connections committing synchronously as in production."""
    engine = get_db(app).engine

    def connect(dbapi_conn, record):  # the test databases turn synchronous commits off; production has them on
        dbapi_conn.execute("SET synchronous_commit = on")
        dbapi_conn.commit()
        dbapi_conn.cursor_factory = Recording

    client_execute = psycopg.ClientCursor.execute

    def client_side(self, query, params=None, **kwargs):  # type: ignore[no-untyped-def]
        Recording.note(self, query, params)
        return client_execute(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.ClientCursor, "execute", client_side)
    engine.dispose()
    sa_event.listen(engine, "connect", connect)
    Recording.log = []
    try:
        yield Recording.log
    finally:
        sa_event.remove(engine, "connect", connect)
        engine.dispose()


def _append(log: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the append's one round trip, split into its statements."""
    sent = next(s for s in log if s["sql"].startswith("BEGIN;"))
    return {**sent, "statements": [part.split("(")[0].strip() for part in sent["sql"].split("; ")]}


def test_the_append_commits_without_a_flush_then_a_barrier_flushes_all_in_one_round_trip(app, client, recorded):
    registered = event("user.registered", "u1", datetime(2026, 11, 1, 2, 0, tzinfo=UTC))
    assert post_events(client, [registered]).json == {"accepted": 1, "duplicates": 0, "rejected": []}

    append = _append(recorded)
    assert append["statements"] == [
        "BEGIN", "SELECT set_config", "INSERT INTO platform_events", "COMMIT", BARRIER]  # one round trip
    assert append["autocommit"]  # explicit transactions: the barrier commits on its own
    assert append["params"]["sync"] == "off"  # the append's commit does not wait for its flush ...
    # ... the barrier, after the COMMIT, runs in a transaction of its own with the connection's own setting: on.
    with get_db(app).engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None and not raw.autocommit  # handed back to the pool as SQLAlchemy expects it
        assert raw.execute("SHOW synchronous_commit").fetchone() == ("on",)


def test_a_duplicate_answer_also_waits_for_a_flush(app, client, recorded):
    registered = event("user.registered", "u1", datetime(2026, 11, 1, 2, 0, tzinfo=UTC))
    post_events(client, [registered])
    recorded.clear()
    # It vouches for another request's commit, which may not be flushed yet.
    assert post_events(client, [registered]).json == {"accepted": 0, "duplicates": 1, "rejected": []}
    assert _append(recorded)["statements"][-1] == BARRIER
    assert post_events(client, [{**registered, "id": "evt_2"}]).json["accepted"] == 1


def test_a_failed_append_rolls_back_and_the_connection_serves_the_next_request(app, client, recorded, monkeypatch):
    from growth.events import services

    monkeypatch.setattr(services, "_PG_APPEND_DURABLY",
                        services._PG_APPEND_DURABLY.replace("json_to_recordset", "no_such_function"))
    registered = event("user.registered", "u1", datetime(2026, 11, 1, 2, 0, tzinfo=UTC))
    assert post_events(client, [registered]).status_code == 500  # the platform sends it again
    assert recorded[-1]["sql"] == "ROLLBACK"
    monkeypatch.undo()
    assert post_events(client, [registered]).json == {"accepted": 1, "duplicates": 0, "rejected": []}
    with get_db(app).engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM platform_events").scalar() == 1
