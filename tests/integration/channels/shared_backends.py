"""Where the shared rate slots and tokens live in a test: SQLite, PostgreSQL or Redis, usable from spawned processes.

A test gets a `Backend` (picklable: a kind, a database URL or a Redis key prefix) and builds the
limiter or token store from it — in the test process as in each child process it starts. Redis
tests use db 0 with a key prefix of their own, removed afterwards (never FLUSHALL).
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, delete

from channels.limits import DatabaseRateLimiter, RateLimiter, RedisRateLimiter
from channels.models import RateSlot, SharedToken
from channels.tokens import DatabaseTokenStore, RedisTokenStore
from growth.db import Base, Database, table_of

REDIS_URL = os.environ.get("GROWTH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASES = [k for k in os.environ.get("GROWTH_TEST_DATABASES", "sqlite,postgresql").split(",") if k]
KINDS = [*DATABASES, "redis"]


@dataclass(frozen=True)
class Backend:
    """Where shared state lives: `kind` sqlite/postgresql with `url`, or redis with `url` and `prefix`."""

    kind: str
    url: str
    prefix: str = ""

    def database(self) -> Database:
        return Database(self.url)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def limiter(self) -> RateLimiter:
        if self.kind == "redis":
            return RedisRateLimiter(self.redis(), prefix=self.prefix)
        return DatabaseRateLimiter(self.database())

    def token_store(self, **kwargs: Any) -> DatabaseTokenStore | RedisTokenStore:
        if self.kind == "redis":
            return RedisTokenStore(self.redis(), prefix=self.prefix, **kwargs)
        return DatabaseTokenStore(self.database(), **kwargs)


def backend_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Yield the Backend of `request.param`, emptied afterwards."""
    kind = request.param
    if kind == "redis":
        prefix = f"growth-test:{uuid.uuid4().hex}:"
        yield Backend("redis", REDIS_URL, prefix)
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()
        return
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        engine = create_engine(url)
        Base.metadata.create_all(engine)
        engine.dispose()
        yield Backend("sqlite", url)
        return
    url = request.getfixturevalue("pg_url")
    yield Backend("postgresql", url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(delete(table_of(RateSlot)))
        conn.execute(delete(table_of(SharedToken)))
    engine.dispose()


def run_processes(target: Callable[..., Any], args: Sequence[tuple[Any, ...]], timeout: float = 120) -> list[Any]:
    """Run `target(*a, barrier)` in one spawned process per `a`; return what each returned, in order.

    The processes wait on a shared barrier (passed last) before their work, so they really run at once.
    A failure in a child fails the test with the child's traceback.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(args))
    queue = ctx.Queue()
    processes = [ctx.Process(target=_child, args=(n, target, a, barrier, queue)) for n, a in enumerate(args)]
    for process in processes:
        process.start()
    try:
        answers = dict(queue.get(timeout=timeout) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=timeout)
    results = []
    for n in range(len(processes)):
        ok, value = answers[n]
        assert ok, f"child process {n} failed:\n{value}"
        results.append(value)
    return results


def _child(n: int, target: Callable[..., Any], args: tuple[Any, ...], barrier: Any, queue: Any) -> None:
    try:
        queue.put((n, (True, target(*args, barrier))))
    except BaseException:
        queue.put((n, (False, traceback.format_exc())))
