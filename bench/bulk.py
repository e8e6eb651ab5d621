"""Bare-driver loading the benchmark scripts share: rows into a migrated database, then ANALYZE.

A load is a stream of parts, each a list of (table, columns, rows), so a large book can be generated and
written a slice at a time without holding it all in memory. SQLite gets one transaction of executemany
calls; PostgreSQL a COPY per table and part, then its id sequences moved past the ids given.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any

import psycopg
from harness import sqlite_text
from psycopg import sql
from sqlalchemy.engine import make_url

Table = tuple[str, tuple[str, ...], list[tuple[Any, ...]]]
CHUNK = 20_000
# Key columns whose sequence must move past the ids given (PostgreSQL); "id" for every other table.
SERIAL_KEYS = {"platform_events": "seq"}


def sqlite_value(value: Any) -> Any:
    """Return a value as the app stores it in SQLite (times as its text, dates ISO)."""
    if isinstance(value, datetime):
        return sqlite_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def load_sqlite(url: str, parts: Iterable[list[Table]], *, done: Callable[[], None] | None = None) -> None:
    """Insert every part's rows in one transaction with sqlite3 executemany, then ANALYZE."""
    conn = sqlite3.connect(make_url(url).database, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for part in parts:
            for name, columns, rows in part:
                insert = f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
                for start in range(0, len(rows), CHUNK):
                    conn.executemany(insert, [tuple(map(sqlite_value, r)) for r in rows[start:start + CHUNK]])
        conn.execute("COMMIT")
        if done:
            done()
        conn.execute("ANALYZE")
    finally:
        conn.close()


def load_pg(url: str, parts: Iterable[list[Table]], *, done: Callable[[], None] | None = None) -> None:
    """COPY every part's rows in one transaction, move the id sequences past them, then VACUUM ANALYZE."""
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    keyed: dict[str, str] = {}
    with psycopg.connect(plain) as conn:
        with conn.cursor() as cur:
            for part in parts:
                for name, columns, rows in part:
                    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                        sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, columns)))
                    with cur.copy(statement) as copy:
                        for row in rows:
                            copy.write_row(row)
                    key = SERIAL_KEYS.get(name, "id")
                    if key in columns:
                        keyed[name] = key
            for name, key in keyed.items():  # ids were given: move the sequence past them
                cur.execute(sql.SQL("SELECT setval(pg_get_serial_sequence({}, {}), (SELECT max({}) FROM {}))")
                            .format(sql.Literal(name), sql.Literal(key), sql.Identifier(key), sql.Identifier(name)))
        conn.commit()
    if done:
        done()
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def load(kind: str, url: str, parts: Iterable[list[Table]], *, done: Callable[[], None] | None = None) -> None:
    """Load parts into a database of a kind ("sqlite" or "postgresql")."""
    (load_sqlite if kind == "sqlite" else load_pg)(url, parts, done=done)
