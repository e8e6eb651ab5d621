"""Database kernel: declarative Base, engine and sessions, transaction scopes.

House rule: services take `session` and flush; the request, job or processor batch commits once.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import orjson
from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    DateTime,
    Float,
    MetaData,
    Table,
    and_,
    any_,
    bindparam,
    create_engine,
    event,
    exc,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from growth.crypto import Sealed

F = TypeVar("F", bound=Callable[..., object])

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every dialect (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every model."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[str]: JSON()}


# SQLite: which BEGIN to emit; write scopes take the write lock up front (BEGIN IMMEDIATE) so a
# reader never has to upgrade to a writer and fail with SQLITE_BUSY mid-transaction.
_sqlite_begin: contextvars.ContextVar[str] = contextvars.ContextVar("sqlite_begin", default="BEGIN")
_WRITER_OPTION = "growth_writer"


SQLITE_SYNCHRONOUS = ("FULL", "NORMAL", "OFF")


# A pooled connection idle for longer than this is pinged before use; one in steady use is not (one round trip
# less per request: the pre-ping was a tenth of the events API's database time, bench/README.md, issue 13).
PING_IDLE_SECONDS = 1.0


def _ping_idle_connections(engine: Engine) -> None:
    """Test a pooled connection that sat idle before handing it out; replace it if the server dropped it.

    SQLAlchemy's `pool_pre_ping` pings at every checkout. A server restart or an idle timeout shows on a
    connection that waited in the pool, so only those are pinged (SQLAlchemy's "pessimistic" recipe with a
    threshold); a connection that served a request a moment ago goes straight back to work. If the server dies
    within that moment, the statement fails once and SQLAlchemy drops the whole pool (its optimistic handling).
    """
    @event.listens_for(engine, "checkin")
    def _stamp(dbapi_connection: Any, record: Any) -> None:
        record.info["growth_checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("growth_checked_in")
        if idle_since is None or time.monotonic() - idle_since <= PING_IDLE_SECONDS:
            return  # new, or in steady use
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error:
            alive = False
        if not alive:
            raise exc.DisconnectionError("the database dropped an idle pooled connection")  # the pool reconnects


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"SQLITE_SYNCHRONOUS must be one of {', '.join(SQLITE_SYNCHRONOUS)}, not {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (pysqlite's own is broken)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: accepted events survive a power cut right after the 200 (OFF still survives a process crash).
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A short-write session's connections carry the option: their BEGIN is emitted lazily, at first use.
        immediate = conn.get_execution_options().get(_WRITER_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else _sqlite_begin.get())


@contextmanager
def committing(session: Session) -> Iterator[Session]:
    """Yield the session, then commit it once, or roll it back on error; close it either way."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class Database:
    """An engine and its session factory; one per app, created by the composition root."""

    def __init__(self, url: str, *, echo: bool = False, sqlite_synchronous: str = "FULL") -> None:
        # hide_parameters: a database error's message would carry the statement's values (names, phones) into logs.
        kwargs: dict[str, Any] = {"echo": echo, "future": True, "hide_parameters": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if ":memory:" in url or url in ("sqlite://", "sqlite:///"):
                raise ValueError("use a SQLite file: in-memory databases are not shared between connections")
        else:
            # No server-side prepared statements: a generic plan made while a table was still small
            # (a fresh install, a replay) kept scanning it whole once it had grown (bench/README.md).
            kwargs["connect_args"] = {"prepare_threshold": None}
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 20
        self.url = url
        self.engine = create_engine(url, **kwargs)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine, sqlite_synchronous)
        else:
            _ping_idle_connections(self.engine)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        # Same pool, but every transaction begins as a writer (BEGIN IMMEDIATE on SQLite) when first used.
        self.writer_sessionmaker = sessionmaker(
            self.engine.execution_options(**{_WRITER_OPTION: True}), expire_on_commit=False
        )

    @contextmanager
    def session_scope(self, *, write: bool = False) -> Iterator[Session]:
        """Yield a session that commits once at the end or rolls back on error."""
        token = _sqlite_begin.set("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            with committing(self.sessionmaker()) as session:
                yield session
        finally:
            _sqlite_begin.reset(token)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def insert_many(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], returning: Sequence[str] = (),
    *, skip_conflicts: bool = False,
) -> list[Any]:
    """Insert rows (all with the same keys) in one go; return the `returning` columns of each, in no order.

    `skip_conflicts`: a row that breaks a unique constraint is left out (ON CONFLICT DO NOTHING), and
    only the rows inserted are returned.

    On PostgreSQL the rows travel as one JSON parameter read by json_to_recordset (here and in
    update_many): psycopg re-parses a multi-row statement with thousands of placeholders on every
    call, which cost more than the writing itself (bench/README.md).
    """
    if not rows:
        return []
    if conn.dialect.name == "sqlite" and _plain_rows(table, rows[0], "default"):
        return _sqlite_insert(conn, table, rows, returning, skip_conflicts)
    if conn.dialect.name != "postgresql":
        stmt = sqlite_insert(table).on_conflict_do_nothing() if skip_conflicts else insert(table)
        if returning:
            stmt = stmt.returning(*(table.c[name] for name in returning))
            return list(conn.execute(stmt, list(rows)))
        conn.execute(stmt, list(rows))
        return []
    quote = conn.dialect.identifier_preparer.quote
    names = list(rows[0])
    columns = ", ".join(quote(n) for n in names)
    record = ", ".join(f"{quote(n)} {table.c[n].type.compile(conn.dialect)}" for n in names)
    sql = (f"INSERT INTO {quote(table.name)} ({columns}) SELECT {columns} "
           f"FROM json_to_recordset(%(rows)s::json) AS r({record})")
    if skip_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    if returning:
        sql += " RETURNING " + ", ".join(quote(n) for n in returning)
    result = conn.exec_driver_sql(sql, {"rows": _json_rows(conn, table, rows)})
    return list(result) if returning else []


def update_many(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *, key: str = "id") -> None:
    """Update rows by their key (all rows with the same keys), in one statement on PostgreSQL."""
    if not rows:
        return
    names = [n for n in rows[0] if n != key]
    if conn.dialect.name == "sqlite" and _plain_rows(table, rows[0], "onupdate"):
        quote = conn.dialect.identifier_preparer.quote
        sql = (f"UPDATE {quote(table.name)} SET {', '.join(f'{quote(n)} = ?' for n in names)} "
               f"WHERE {quote(key)} = ?")
        conn.exec_driver_sql(sql, _sqlite_values(conn, table, rows, [*names, key]))
        return
    if conn.dialect.name != "postgresql":
        stmt = (update(table).where(table.c[key] == bindparam("_key"))
                .values({n: bindparam(n) for n in names}))
        conn.execute(stmt, [{"_key": row[key], **{n: row[n] for n in names}} for row in rows])
        return
    quote = conn.dialect.identifier_preparer.quote
    record = ", ".join(f"{quote(n)} {table.c[n].type.compile(conn.dialect)}" for n in [key, *names])
    assignments = ", ".join(f"{quote(n)} = r.{quote(n)}" for n in names)
    sql = (f"UPDATE {quote(table.name)} AS t SET {assignments} "
           f"FROM json_to_recordset(%(rows)s::json) AS r({record}) WHERE t.{quote(key)} = r.{quote(key)}")
    conn.exec_driver_sql(sql, {"rows": _json_rows(conn, table, rows)})


def _json_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> str:
    """Return rows as the JSON json_to_recordset reads; encrypted columns (growth.crypto.Sealed) sealed first.

    The other values go as they are (orjson writes datetimes and the JSON columns' values as PostgreSQL reads
    them); an encrypted column's value must go through its type, or it would be stored in the clear.
    """
    sealed: list[tuple[str, Sealed]] = []
    for name in rows[0]:
        kind = table.c[name].type if name in table.c else None
        if isinstance(kind, Sealed):
            sealed.append((name, kind))
    if sealed:
        rows = [{**row, **{n: kind.process_bind_param(row[n], conn.dialect) for n, kind in sealed}} for row in rows]
    return orjson.dumps(list(rows)).decode()


def among(column: Any, values: Sequence[Any], *, dialect: str) -> ColumnElement[bool]:
    """`column IN values` with the values as ONE parameter: an array on PostgreSQL, a JSON list on SQLite.

    An IN list is a placeholder per value, rendered by SQLAlchemy and parsed again by the driver on every
    execution (the text is too long for psycopg's statement cache): with thousands of ids that costs more
    than the query (bench/README.md, delivery and fan-out).
    """
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    each = func.json_each(orjson.dumps(list(values)).decode()).table_valued("value")
    return column.in_(select(each.c.value))


# A set of ids spanning at most this many times its size is read as one id range (see `among_ids`).
DENSE_SPAN = 4


def among_ids(column: Any, ids: Sequence[int], *, dialect: str) -> ColumnElement[bool]:
    """`among` for integer ids; on PostgreSQL also bounded by their smallest and largest (the same rows).

    PostgreSQL 15 prices `id = ANY(<5,000 ids>)` on an index as 5,000 descents and, for a table filled
    since its last ANALYZE, often chose to read the whole table instead, once per statement and chunk: a
    fan-out read its members, rewards and investors tables whole for every chunk, so it slowed as they
    grew (bench/README.md, fan-out, 2026-12-04). A range is estimated small with or without statistics.
    Dense ids (a chunk's members, the rewards just written) are found by that range alone on the index,
    each row kept by a hash of the ids (`id + 0` is no index condition: 1.6 ms instead of 14 for 4,500
    rewards among 90,000); sparse ones keep the descents (a range would hold too many others).
    """
    if dialect != "postgresql" or not ids:
        return among(column, ids, dialect=dialect)
    low, high = min(ids), max(ids)
    if high - low + 1 <= DENSE_SPAN * len(ids):
        return and_(column.between(low, high), among(column + 0, ids, dialect=dialect))
    return and_(among(column, ids, dialect=dialect), column.between(low, high))


# SQLite's limit on bound parameters per statement (SQLITE_MAX_VARIABLE_NUMBER since 3.32), with room to spare.
_SQLITE_MAX_PARAMS = 30_000


def _plain_rows(table: Table, row: dict[str, Any], hook: str) -> bool:
    """Whether rows with these keys leave no column to a Python-side `default`/`onupdate` SQLAlchemy would fill."""
    return not any(getattr(c, hook) is not None and c.name not in row for c in table.c)


def _sqlite_values(conn: Connection, table: Table, rows: Sequence[dict[str, Any]],
                   names: Sequence[str]) -> list[tuple[Any, ...]]:
    """Return the rows as DB-API tuples, each value through its column type's bind processor.

    The same processors SQLAlchemy applies, without its per-row parameter machinery, which cost
    ~80 µs a row, several times the insert itself (bench/README.md, delivery).
    """
    dialect = conn.dialect
    procs = [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]
    if not any(procs):
        return [tuple(row[n] for n in names) for row in rows]
    # Column by column (a comprehension per column costs far less than a call per value). Rows written
    # together share values (the same `now` in five columns of every row): each distinct object is
    # processed once (a UTC datetime costs ~3 µs), by identity, so nothing equal-but-different mixes.
    columns = []
    for name, proc in zip(names, procs, strict=True):
        values = [row[name] for row in rows]
        if proc is not None:
            done: dict[int, Any] = {}
            for value in values:
                if id(value) not in done:
                    done[id(value)] = proc(value)
            values = [done[id(value)] for value in values]
        columns.append(values)
    return list(zip(*columns, strict=True))


def _sqlite_insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], returning: Sequence[str],
                   skip_conflicts: bool) -> list[Any]:
    quote = conn.dialect.identifier_preparer.quote
    names = [n for n in rows[0] if n in table.c]  # like SQLAlchemy's executemany, keys of no column are ignored
    values = _sqlite_values(conn, table, rows, names)
    one = f"({', '.join('?' for _ in names)})"
    head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) VALUES "
    tail = " ON CONFLICT DO NOTHING" if skip_conflicts else ""
    if not returning:
        conn.exec_driver_sql(head + one + tail, values)  # executemany
        return []
    # sqlite3's executemany returns no rows: multi-row VALUES, as many rows a statement as the parameter limit allows.
    tail += " RETURNING " + ", ".join(quote(n) for n in returning)
    per = max(1, _SQLITE_MAX_PARAMS // len(names))
    found: list[Any] = []
    for start in range(0, len(values), per):
        chunk = values[start:start + per]
        flat = tuple(v for row in chunk for v in row)
        found.extend(conn.exec_driver_sql(head + ", ".join([one] * len(chunk)) + tail, flat).all())
    return found


def table_of(model: type[Base]) -> Table:
    """Return a mapped class's table, typed as the Table it is (the ORM types it as any FromClause)."""
    return cast(Table, model.__table__)


def standalone_engine(url: str) -> Engine:
    """Return an engine without pooling, for migrations and one-off admin work."""
    return create_engine(url, poolclass=NullPool)


def get_db(app: Flask | None = None) -> Database:
    """Return the app's Database."""
    return (app or current_app).extensions["growth.db"]


def writes(view: F) -> F:
    """Declare that a GET view's work is a write (a logged click), so its whole request is a writer.

    Not for reads that only leave a trace (an audited export, a token's last use): those read in the
    request's read transaction and write their trace with `short_write()`, so a long read never holds
    SQLite's single write lock.
    """
    view.writes_on_get = True  # type: ignore[attr-defined]
    return view


def _request_writes() -> bool:
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        return True
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, "writes_on_get", False))


def request_session(*, write: bool = False) -> Session:
    """Return the session of the current request, opening it on first use.

    `write=True` (or a non-GET request, or a view marked @writes) opens it as a writer: on SQLite it takes
    the write lock up front and holds it until the request commits. Everything else reads.
    """
    session = g.get("_db_session")
    if session is None:
        db = get_db()
        session = db.sessionmaker()
        g._db_session = session
        g._db_writer = bool(has_request_context() and (write or _request_writes()))
        if db.dialect == "sqlite" and g._db_writer:
            # A write request takes the write lock up front: a deferred transaction that has read cannot
            # upgrade once another connection (the background processor) committed meanwhile (SQLITE_BUSY).
            token = _sqlite_begin.set("BEGIN IMMEDIATE")
            try:
                session.connection()
            finally:
                _sqlite_begin.reset(token)
    return session


def sqlite_request_writer() -> Session | None:
    """Return the current request's session when it holds SQLite's write lock (a writer request), else None.

    Work that needs a write transaction of its own while serving such a request (a shared token's
    refresh) must use this one instead: a second writer in the same thread would wait for itself.
    """
    if not has_request_context() or not g.get("_db_writer"):
        return None
    session = g.get("_db_session")
    return session if session is not None and get_db().dialect == "sqlite" else None


@contextmanager
def short_write() -> Iterator[Session]:
    """Yield a session for a small write made while serving a read (an audit row, a token's last use).

    In a request that is already a writer this is the request's own session (it commits with the
    request; a second writer would wait on the first). Otherwise it is a transaction of its own that
    begins at its first statement and commits when the block ends, so the write lock is held for the
    write only. Do the long reading before or outside the block, never inside it.
    """
    if has_request_context():
        request_session()  # decide what this request is before choosing
        if g.get("_db_writer"):
            yield g._db_session
            return
    with committing(get_db().writer_sessionmaker()) as session:
        yield session


def mark_rollback() -> None:
    """Make the current request roll back instead of committing (error responses)."""
    g._db_rollback = True
    session = g.get("_db_session")
    if session is not None:
        session.rollback()


def init_app(app: Flask, url: str) -> Database:
    """Create the app's Database and the per-request transaction (commit once or roll back)."""
    db = Database(url, sqlite_synchronous=app.config.get("SQLITE_SYNCHRONOUS", "FULL"))
    app.extensions["growth.db"] = db

    @app.after_request
    def _commit(response: Any) -> Any:
        g.pop("_db_writer", None)
        session = g.pop("_db_session", None)
        if session is not None:
            try:
                if g.pop("_db_rollback", False) or response.status_code >= 500:
                    session.rollback()
                else:
                    session.commit()
            finally:
                session.close()
        return response

    @app.teardown_request
    def _close(exc: BaseException | None) -> None:
        session = g.pop("_db_session", None)
        if session is not None:  # after_request did not run: an unhandled error
            session.rollback()
            session.close()

    return db


class seconds_between(FunctionElement[float]):  # lower case: it reads as the SQL function it renders
    """SQL for `later - earlier` in seconds, on every dialect (SQLite stores UTC text; PostgreSQL timestamps)."""

    type = Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between, "sqlite")
def _seconds_between_sqlite(element: seconds_between, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return f"((julianday({compiler.process(later, **kw)}) - julianday({compiler.process(earlier, **kw)})) * 86400.0)"


@compiles(seconds_between, "postgresql")
def _seconds_between_postgresql(element: seconds_between, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return f"EXTRACT(EPOCH FROM ({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)}))"


class within_days_after(FunctionElement[bool]):  # lower case: it reads as the SQL condition it renders
    """SQL for `at <= start + days × 24 h`, exact to the microsecond on every dialect (the funnel's window rule).

    Arguments: `at`, `start` (UTC timestamp columns) and `days` (an integer expression or bound value). NULL
    `at` or `start` is not within. SQLite stores UTC as "YYYY-MM-DD HH:MM:SS.ffffff" text, so the deadline is
    built as text of the same shape (whole seconds moved by the days, the original fraction kept) and compared
    as text: julianday arithmetic is exact only to the millisecond. PostgreSQL adds an interval of seconds,
    never of days (a day interval follows the session time zone's daylight saving).
    """

    type = Boolean()
    inherit_cache = True
    name = "within_days_after"


_SECOND_IN_DAYS = "0.0000115740740741"  # 1 / 86,400


@compiles(within_days_after, "sqlite")
def _within_days_after_sqlite(element: within_days_after, compiler: Any, **kw: Any) -> str:
    at, start, days = (compiler.process(c, **kw) for c in element.clauses)
    deadline = (f"(strftime('%Y-%m-%d %H:%M:%S', substr({start}, 1, 19), '+' || ({days}) || ' days') "
                f"|| substr({start}, 20))")
    # The exact text deadline costs ~5 µs a row (strftime with a modifier); julianday ~1 µs. A double holds a
    # julian day to ~50 µs, so only times within a second of the deadline (rare) need the exact test. A CASE, not
    # an OR: SQLAlchemy compares a boolean function with 1 on SQLite, and as a value an OR evaluates both sides.
    gap = f"(julianday({at}) - julianday({start}) - ({days}))"
    return (f"(CASE WHEN {gap} < -{_SECOND_IN_DAYS} THEN 1 WHEN {gap} >= {_SECOND_IN_DAYS} THEN 0 "
            f"ELSE {at} <= {deadline} END)")


@compiles(within_days_after, "postgresql")
def _within_days_after_postgresql(element: within_days_after, compiler: Any, **kw: Any) -> str:
    at, start, days = (compiler.process(c, **kw) for c in element.clauses)
    return f"({at} <= {start} + ({days}) * INTERVAL '86400 seconds')"
