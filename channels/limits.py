"""Per-provider send rate limits shared by every delivery worker, on every machine (GCRA).

Each provider has one shared "next free slot" time. `reserve(provider, count, rate)` takes `count`
slots at once: they start at max(now, next free slot), are `spacing` apart, and move the next free
slot past the last one. The caller waits until each slot's time before making that provider call, so
across all workers the calls are never closer than `spacing`, whatever the number of workers.

`spacing` is (1 + GUARD) / rate, not 1 / rate: a call leaves at its slot's time but reaches the
provider a network delay later, and delays vary. With slots exactly 1/rate apart, one late call and
the next punctual one would land in the same provider second with `rate + 1` calls; 5 % of headroom
absorbs a jitter of 5 % of a slot per call (0.25 ms at 200/s, 50 ms at 1/s) accumulated over a
second, at the cost of sending 5 % below the rate.

Redis (`GROWTH_REDIS_URL`) holds the slots when configured: one Lua script, atomic. Otherwise the
database does (`provider_rate_slots`): one short transaction per call, the row created on first use
by an upsert that also locks it, so concurrent workers queue on the row. On PostgreSQL that
transaction commits without waiting for its WAL flush (`synchronous_commit = off`, about twice the
reservations a second): a crash of the database server may forget the reservations of its last
moments (at most three `wal_writer_delay`, 0.6 s by default), so once after such a crash up to that
much of the rate may be handed out twice — a brief excess we accept for the speed every call gets.

A configured Redis that cannot be reached falls back to the database (`channels.shared_state.Fallback`),
so an outage of Redis slows nothing and loses no message.

Times are `time.time()` seconds: workers on several machines need clocks kept in step (NTP); a skew
between two machines eats into the guard.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import redis
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from channels.models import RateSlot
from channels.shared_state import Fallback, once_per_app, redis_client_for
from growth.db import Database, get_db, table_of

GUARD = 0.05  # slots are (1 + GUARD)/rate apart: headroom for network jitter (module docstring)
EXTENSION = "channels.rate_limiter"  # the app's limiter (app.extensions), built on first use
REDIS_PREFIX = "growth:rate:"
REDIS_IDLE_TTL_MS = 60_000  # a provider's key outlives its last slot by this much, then Redis drops it

_SLOTS = table_of(RateSlot)


class RateLimiter(Protocol):
    """Hands out send slots for providers, shared by every worker."""

    def reserve(self, provider: str, count: int, rate: float) -> list[float]:
        """Reserve `count` send slots for a provider limited to `rate` messages a second across every
        worker; return their times (epoch seconds, time.time() clock) in order. The caller waits until each
        slot's time before making that provider call."""
        ...


def spacing(rate: float) -> float:
    """Return the seconds between two slots at `rate` messages a second, guard included."""
    return (1.0 + GUARD) / rate


def slots_from(start: float, count: int, rate: float) -> list[float]:
    """Return `count` slot times from `start`, `spacing(rate)` apart."""
    step = spacing(rate)
    return [start + i * step for i in range(count)]


class DatabaseRateLimiter:
    """Slots in `provider_rate_slots`, one short write transaction per `reserve`."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    def reserve(self, provider: str, count: int, rate: float) -> list[float]:
        """Reserve `count` slots (see `RateLimiter.reserve`); do not call it inside a SQLite write transaction."""
        now = self._clock()
        if count <= 0:
            return []
        if rate <= 0:  # no limit: nothing shared to move
            return [now] * count
        total = count * spacing(rate)
        postgres = self._db.dialect == "postgresql"
        insert = (pg_insert if postgres else sqlite_insert)(_SLOTS).values(provider=provider, next_at=now + total)
        # One statement: creates the row on first use or locks it and moves it (PostgreSQL's upsert takes the
        # row lock, so concurrent workers queue on it; SQLite's BEGIN IMMEDIATE already serialises writers).
        later = func.greatest(_SLOTS.c.next_at, now) if postgres else func.max(_SLOTS.c.next_at, now)
        stmt = insert.on_conflict_do_update(
            index_elements=[_SLOTS.c.provider], set_={"next_at": later + total}
        ).returning(_SLOTS.c.next_at)
        with self._db.session_scope(write=True) as session:
            if postgres:  # a slot lost in a server crash costs nothing; waiting for the WAL flush costs each call
                session.execute(select(func.set_config("synchronous_commit", "off", True)))
            next_at = float(session.execute(stmt).scalar_one())
        return slots_from(next_at - total, count, rate)


# KEYS[1] the provider's key; ARGV: now, total seconds the slots take. Returns the first slot's time.
_RESERVE_SCRIPT = """
local now = tonumber(ARGV[1])
local total = tonumber(ARGV[2])
local start = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local next_at = start + total
redis.call('SET', KEYS[1], string.format('%.6f', next_at), 'PX', math.ceil((next_at - now) * 1000) + tonumber(ARGV[3]))
return string.format('%.6f', start)
"""


class RedisRateLimiter:
    """Slots in Redis (`{prefix}{provider}`), moved by one atomic Lua script per `reserve`."""

    def __init__(self, client: redis.Redis, prefix: str = REDIS_PREFIX, clock: Callable[[], float] = time.time):
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._script = client.register_script(_RESERVE_SCRIPT)  # EVALSHA, loaded again after a Redis restart

    def reserve(self, provider: str, count: int, rate: float) -> list[float]:
        """Reserve `count` slots (see `RateLimiter.reserve`); raises redis errors when Redis is unreachable."""
        now = self._clock()
        if count <= 0:
            return []
        if rate <= 0:
            return [now] * count
        total = count * spacing(rate)
        start = self._script(keys=[self._prefix + provider], args=[repr(now), repr(total), REDIS_IDLE_TTL_MS])
        return slots_from(float(start), count, rate)


class FallbackRateLimiter:
    """Redis while it answers, the database while it does not (one warning per outage)."""

    def __init__(self, primary: RateLimiter, fallback: RateLimiter, switch: Fallback | None = None) -> None:
        self.primary = primary
        self.fallback = fallback
        self.switch = switch or Fallback("rate limits")

    def reserve(self, provider: str, count: int, rate: float) -> list[float]:
        """Reserve on Redis, or on the database when Redis cannot be reached."""
        return self.switch.run(
            lambda: self.primary.reserve(provider, count, rate), lambda: self.fallback.reserve(provider, count, rate)
        )


def rate_limiter_for(app: Flask) -> RateLimiter:
    """Return the app's rate limiter: Redis when `REDIS_URL` is set (the database if it is down), else the database."""

    def build() -> RateLimiter:
        database = DatabaseRateLimiter(get_db(app))
        client = redis_client_for(app)
        return database if client is None else FallbackRateLimiter(RedisRateLimiter(client), database)

    return once_per_app(app, EXTENSION, build)
