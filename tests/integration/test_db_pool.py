"""The pool pings a connection that sat idle before handing it out, and only such a one."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.engine import make_url

import growth.db
from growth.db import get_db

pytestmark = pytest.mark.postgres_only


def _pid(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()


def test_a_connection_the_server_dropped_while_it_was_idle_is_replaced_without_an_error(app, database_url, monkeypatch):
    engine = get_db(app).engine
    engine.dispose()
    dropped = _pid(engine)
    plain = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as admin:  # a server restart, or an idle timeout, as the pool sees it
        assert admin.execute("SELECT pg_terminate_backend(%s)", (dropped,)).fetchone() == (True,)
    monkeypatch.setattr(growth.db, "PING_IDLE_SECONDS", 0.0)  # it has now been idle long enough to be pinged
    assert _pid(engine) != dropped


def test_a_connection_in_steady_use_is_not_pinged(app):
    engine = get_db(app).engine
    engine.dispose()
    pings: list[object] = []
    real = engine.dialect.do_ping
    engine.dialect.do_ping = lambda dbapi_connection: pings.append(dbapi_connection) or real(dbapi_connection)
    try:
        first = _pid(engine)
        assert _pid(engine) == first  # the same connection, straight back to work
        assert pings == []
    finally:
        del engine.dialect.do_ping
