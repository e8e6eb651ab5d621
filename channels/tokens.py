"""Where the WeChat access token lives when several worker processes (or machines) send: one token, one refresher.

Every store implements the adapter's `TokenStore` (wechatpy's session storage, plus `refresh_lock`):
values are JSON, a value stops being served `margin` seconds before it expires (so a token is never
used in its last two minutes), and `refresh_lock(key)` lets one process at a time fetch a new token —
the others wait, then find the fresh token in the store and use it.

- `DatabaseTokenStore`: `shared_tokens` rows (the real expiry is stored). The refresh lock is a write
  transaction holding the token's row lock (PostgreSQL `SELECT … FOR UPDATE`; SQLite `BEGIN IMMEDIATE`,
  the whole database's write lock, held for the fetch only, which its HTTP timeout bounds); `set` and
  `get` made by the lock's holder go through the lock's own transaction.
- `RedisTokenStore`: `SET … EX` keys under a prefix; the refresh lock is a Redis lock that expires by
  itself should its holder die.
- `FallbackTokenStore`: Redis while it answers, the database while it does not.

Values are never logged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from datetime import UTC, datetime
from typing import Any

import redis
from flask import Flask
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from channels.adapters.wechat import TokenStore
from channels.models import SharedToken
from channels.shared_state import Fallback, once_per_app, redis_client_for
from growth.db import Database, committing, get_db, sqlite_request_writer, table_of

MARGIN = 120.0  # seconds before its expiry a value stops being served (as MemoryTokenStore)
FETCH_TIMEOUT = 30.0  # refresh_lock's default: how long one fetch may take
EXTENSION = "channels.token_store"  # the app's store (app.extensions), built on first use
REDIS_PREFIX = "growth:token:"

_TOKENS = table_of(SharedToken)
log = logging.getLogger("channels.tokens")


def _served(expires_at: float | None, now: float, margin: float) -> bool:
    return expires_at is None or now < expires_at - margin


class DatabaseTokenStore:
    """Tokens in `shared_tokens`; `refresh_lock` is a transaction holding the token's row lock."""

    def __init__(self, db: Database, margin: float = MARGIN, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._margin = margin
        self._clock = clock
        self._held = threading.local()  # key -> the session of the refresh lock this thread holds

    def _holding(self, key: str) -> Session | None:
        sessions: dict[str, Session] = getattr(self._held, "sessions", {})
        held = sessions.get(key)
        if held is None and self._db.dialect == "sqlite":
            # A writer request (a staff POST) already holds SQLite's write lock: the token is read, locked and
            # written in its transaction, or this thread would wait for itself (and not see its own write).
            held = sqlite_request_writer()
        return held

    def get(self, key: str, default: Any = None) -> Any:
        """Return the stored value while it is served, else `default`."""
        stmt = select(_TOKENS.c.value, _TOKENS.c.expires_at).where(_TOKENS.c.key == key)
        held = self._holding(key)
        if held is not None:
            row = held.execute(stmt).one_or_none()
        else:
            with committing(self._db.sessionmaker()) as session:
                row = session.execute(stmt).one_or_none()
        if row is None or row.value is None:
            return default
        expires_at = None if row.expires_at is None else row.expires_at.timestamp()
        if not _served(expires_at, self._clock(), self._margin):
            return default
        return json.loads(row.value)

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        """Store a value that expires in `ttl` seconds (None = never)."""
        if value is None:
            return
        expires_at = None if ttl is None else datetime.fromtimestamp(self._clock() + float(ttl), UTC)
        values = {"key": key, "value": json.dumps(value), "expires_at": expires_at}
        insert = (pg_insert if self._db.dialect == "postgresql" else sqlite_insert)(_TOKENS).values(**values)
        stmt = insert.on_conflict_do_update(
            index_elements=[_TOKENS.c.key],
            set_={"value": insert.excluded.value, "expires_at": insert.excluded.expires_at},
        )
        held = self._holding(key)
        if held is not None:  # the row is locked by this very transaction: write through it
            held.execute(stmt)
            return
        with committing(self._db.writer_sessionmaker()) as session:
            session.execute(stmt)

    def delete(self, key: str) -> None:
        """Forget the key."""
        stmt = delete(_TOKENS).where(_TOKENS.c.key == key)
        held = self._holding(key)
        if held is not None:
            held.execute(stmt)
            return
        with committing(self._db.writer_sessionmaker()) as session:
            session.execute(stmt)

    @contextmanager
    def refresh_lock(self, key: str, timeout: float = FETCH_TIMEOUT) -> Iterator[None]:
        """Hold the key's row lock (PostgreSQL) or the write lock (SQLite) for the block; TimeoutError if busy.

        Waiting is bounded: PostgreSQL gives up after twice `timeout` (a holder's fetch takes at most
        about that long), SQLite after its busy timeout (30 s). Do not call it inside a SQLite write
        transaction of the same thread (but a writer request: its own transaction is used).
        """
        if self._holding(key) is not None:  # re-entered by the holder, or inside a SQLite writer request
            yield
            return
        with committing(self._db.writer_sessionmaker()) as session:
            try:
                if self._db.dialect == "postgresql":
                    wait_ms = max(1, int(2 * timeout * 1000))
                    session.execute(select(func.set_config("lock_timeout", f"{wait_ms}ms", True)))
                    session.execute(pg_insert(_TOKENS).values(key=key).on_conflict_do_nothing())
                else:  # the first statement takes SQLite's write lock (BEGIN IMMEDIATE)
                    session.execute(sqlite_insert(_TOKENS).values(key=key).on_conflict_do_nothing())
                session.execute(select(_TOKENS.c.key).where(_TOKENS.c.key == key).with_for_update())
            except OperationalError as exc:  # lock_timeout / database is locked
                raise TimeoutError(f"the refresh lock of {key!r} is busy") from exc
            with self._hold(key, session):
                yield

    @contextmanager
    def _hold(self, key: str, session: Session) -> Iterator[None]:
        sessions = getattr(self._held, "sessions", None)
        if sessions is None:
            sessions = self._held.sessions = {}
        sessions[key] = session
        try:
            yield
        finally:
            del sessions[key]


class RedisTokenStore:
    """Tokens as Redis keys `{prefix}{key}` that expire `margin` seconds before the token does."""

    def __init__(self, client: redis.Redis, prefix: str = REDIS_PREFIX, margin: float = MARGIN) -> None:
        self._client = client
        self._prefix = prefix
        self._margin = margin
        self._held = threading.local()  # the keys whose refresh lock this thread holds

    def get(self, key: str, default: Any = None) -> Any:
        """Return the stored value while it is served, else `default`."""
        raw = self._client.get(self._prefix + key)
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        """Store a value that expires in `ttl` seconds (None = never)."""
        if value is None:
            return
        if ttl is None:
            self._client.set(self._prefix + key, json.dumps(value))
            return
        seconds = int(float(ttl) - self._margin)
        if seconds <= 0:  # already inside the margin: never served
            self._client.delete(self._prefix + key)
            return
        self._client.set(self._prefix + key, json.dumps(value), ex=seconds)

    def delete(self, key: str) -> None:
        """Forget the key."""
        self._client.delete(self._prefix + key)

    @contextmanager
    def refresh_lock(self, key: str, timeout: float = FETCH_TIMEOUT) -> Iterator[None]:
        """Hold a Redis lock for the block; it expires by itself after about twice `timeout`; TimeoutError if busy."""
        held: set[str] = self._held.__dict__.setdefault("keys", set())
        if key in held:  # re-entered by the holder
            yield
            return
        hold = 2 * timeout + 1  # a fetch's connect and read may each take `timeout`
        lock = self._client.lock(self._prefix + key + ":refresh", timeout=hold, blocking_timeout=hold + 1)
        if not lock.acquire():
            raise TimeoutError(f"the refresh lock of {key!r} is busy")
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
            try:
                lock.release()
            except (redis.exceptions.LockError, redis.exceptions.RedisError) as exc:  # expired, or Redis went away
                log.warning("the refresh lock of %r could not be released (%s); it expires by itself",
                            key, type(exc).__name__)


class FallbackTokenStore:
    """Redis while it answers, the database while it does not (one warning per outage)."""

    def __init__(self, primary: TokenStore, fallback: TokenStore, switch: Fallback | None = None) -> None:
        self.primary = primary
        self.fallback = fallback
        self.switch = switch or Fallback("WeChat tokens")

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value from Redis, or from the database when Redis cannot be reached."""
        return self.switch.run(lambda: self.primary.get(key, default), lambda: self.fallback.get(key, default))

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        """Store the value in Redis, or in the database when Redis cannot be reached."""
        self.switch.run(lambda: self.primary.set(key, value, ttl), lambda: self.fallback.set(key, value, ttl))

    def delete(self, key: str) -> None:
        """Forget the key in Redis, or in the database when Redis cannot be reached."""
        self.switch.run(lambda: self.primary.delete(key), lambda: self.fallback.delete(key))

    @contextmanager
    def refresh_lock(self, key: str, timeout: float = FETCH_TIMEOUT) -> Iterator[None]:
        """Hold Redis's refresh lock, or the database's when Redis cannot be reached."""
        with ExitStack() as stack:

            def enter(store: TokenStore) -> None:
                lock: AbstractContextManager[None] = store.refresh_lock(key, timeout)
                stack.enter_context(lock)

            self.switch.run(lambda: enter(self.primary), lambda: enter(self.fallback))
            yield


def token_store_for(app: Flask) -> TokenStore:
    """Return the app's token store: Redis when `REDIS_URL` is set (the database if it is down), else the database."""

    def build() -> TokenStore:
        database = DatabaseTokenStore(get_db(app))
        client = redis_client_for(app)
        return database if client is None else FallbackTokenStore(RedisTokenStore(client), database)

    return once_per_app(app, EXTENSION, build)
