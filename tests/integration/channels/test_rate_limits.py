"""Provider rate limits shared by every worker (channels/limits.py) on SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from channels.limits import (
    GUARD,
    DatabaseRateLimiter,
    FallbackRateLimiter,
    RedisRateLimiter,
    rate_limiter_for,
    spacing,
)
from channels.models import RateSlot
from growth.db import get_db
from tests.integration.channels.shared_backends import KINDS, Backend, backend_fixture, run_processes

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused at once


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from backend_fixture(request, tmp_path)


def gaps(slots: list[float]) -> list[float]:
    return [b - a for a, b in zip(slots, slots[1:], strict=False)]


def busiest_second(slots: list[float]) -> int:
    """Return the most slots inside any window [t, t + 1 s) (the busiest one starts at a slot)."""
    ordered = sorted(slots)
    return max(bisect.bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered))


def reserve_in_batches(
    backend: Backend, provider: str, total: int, batch: int, rate: float, barrier: Any
) -> list[float]:
    """Child process: reserve `total` slots, `batch` at a time, once every process is ready."""
    limiter = backend.limiter()
    limiter.reserve("warm-up", 1, 1000)  # connect before the start, so the two really overlap
    barrier.wait()
    slots: list[float] = []
    while len(slots) < total:
        slots += limiter.reserve(provider, min(batch, total - len(slots)), rate)
    return slots


def test_slots_are_spaced_at_least_one_over_the_rate_and_in_order(backend: Backend) -> None:
    limiter = backend.limiter()
    before = time.time()

    # 5/s: the first five slots span a second, so the second reservation comes before they end even on
    # a loaded machine (at 50/s a 0.1 s pause between the two started the second batch afresh).
    first = limiter.reserve("aliyun", 5, 5)
    second = limiter.reserve("aliyun", 3, 5)

    slots = first + second
    assert first[0] >= before
    assert all(gap >= 1 / 5 for gap in gaps(slots))
    assert gaps(slots) == pytest.approx([spacing(5)] * 7, abs=1e-5)
    assert spacing(5) == pytest.approx((1 + GUARD) / 5)


def test_each_provider_has_its_own_slots(backend: Backend) -> None:
    limiter = backend.limiter()

    aliyun = limiter.reserve("aliyun", 10, 1)
    tencent = limiter.reserve("tencent", 1, 1)

    assert tencent[0] < aliyun[1]  # not queued behind aliyun's ten seconds


def test_an_idle_provider_gets_a_slot_now_not_a_burst_of_old_ones(backend: Backend) -> None:
    limiter = backend.limiter()
    limiter.reserve("aliyun", 1, 100)
    time.sleep(0.1)  # ten slots' worth of idleness

    before = time.time()
    slots = limiter.reserve("aliyun", 3, 100)

    assert slots[0] >= before  # nothing saved up from the idle time
    assert all(gap >= 1 / 100 for gap in gaps(slots))


def test_two_processes_reserving_at_once_never_exceed_the_rate_in_any_second(backend: Backend) -> None:
    rate = 200
    per_process = 300

    results = run_processes(reserve_in_batches, [(backend, "wechat", per_process, 5, rate)] * 2)

    union = sorted(results[0] + results[1])
    owner = {slot: n for n, slots in enumerate(results) for slot in slots}
    turns = sum(owner[a] != owner[b] for a, b in zip(union, union[1:], strict=False))
    if backend.kind != "sqlite":  # SQLite's busy wait favours the holder: one process may do all its work first
        assert turns >= 2  # one process's slots on both sides of the other's: they reserved at the same time
    assert [len(r) for r in results] == [per_process, per_process]
    assert len(set(union)) == 2 * per_process  # no slot handed out twice
    assert min(gaps(union)) >= 1 / rate - 1e-6  # interleaved, yet never closer than the rate allows
    assert busiest_second(union) <= rate


def test_a_rate_change_takes_effect_from_the_next_reservation(backend: Backend) -> None:
    limiter = backend.limiter()

    slow = limiter.reserve("tencent", 3, 10)
    fast = limiter.reserve("tencent", 4, 100)
    slower = limiter.reserve("tencent", 2, 1)

    assert gaps(slow) == pytest.approx([spacing(10)] * 2, abs=1e-5)
    assert fast[0] == pytest.approx(slow[-1] + spacing(10), abs=1e-5)  # the last slow slot keeps its spacing
    assert gaps(fast) == pytest.approx([spacing(100)] * 3, abs=1e-5)
    assert slower[0] == pytest.approx(fast[-1] + spacing(100), abs=1e-5)
    assert gaps(slower) == pytest.approx([spacing(1)], abs=1e-5)


def test_rate_zero_is_unlimited_and_leaves_the_shared_slots_alone(backend: Backend) -> None:
    limiter = backend.limiter()
    limited = limiter.reserve("email", 3, 1)  # the next free slot is now ~3 s away

    before = time.time()
    unlimited = limiter.reserve("email", 1000, 0)
    after = time.time()
    assert len(unlimited) == 1000
    assert all(before <= slot <= after for slot in unlimited)
    assert limiter.reserve("other", 5, -1) == [pytest.approx(time.time(), abs=1)] * 5

    next_limited = limiter.reserve("email", 1, 1)
    assert next_limited[0] == pytest.approx(limited[-1] + spacing(1), abs=1e-5)  # not moved by the unlimited ones


def test_reserving_nothing_returns_no_slots(backend: Backend) -> None:
    assert backend.limiter().reserve("sms", 0, 10) == []


@pytest.mark.parametrize("app_config", [{"REDIS_URL": None}])
def test_without_redis_the_app_limits_through_the_database(app: Flask, db_kind: str) -> None:
    limiter = rate_limiter_for(app)

    slots = limiter.reserve("aliyun", 2, 10)

    assert isinstance(limiter, DatabaseRateLimiter)
    assert rate_limiter_for(app) is limiter  # one per app
    with get_db(app).session_scope() as session:
        assert session.scalar(select(RateSlot.next_at).where(RateSlot.provider == "aliyun")) == pytest.approx(
            slots[-1] + spacing(10), abs=1e-5
        )


@pytest.mark.parametrize("app_config", [{"REDIS_URL": "redis://127.0.0.1:6379/0"}])
def test_with_redis_the_app_limits_through_redis(app: Flask, db_kind: str) -> None:
    limiter = rate_limiter_for(app)

    assert isinstance(limiter, FallbackRateLimiter)
    assert isinstance(limiter.primary, RedisRateLimiter)
    assert rate_limiter_for(app) is limiter


@pytest.mark.parametrize("app_config", [{"REDIS_URL": UNREACHABLE_REDIS}])
def test_an_unreachable_redis_falls_back_to_the_database_with_one_warning(
    app: Flask, db_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="channels")
    limiter = rate_limiter_for(app)  # the app started although Redis is down: nothing connected yet

    first = limiter.reserve("aliyun", 2, 10)
    second = limiter.reserve("aliyun", 2, 10)
    third = limiter.reserve("aliyun", 1, 10)

    slots = first + second + third
    assert gaps(slots) == pytest.approx([spacing(10)] * 4, abs=1e-5)  # still limited, through the database
    with get_db(app).session_scope() as session:
        assert session.scalar(select(RateSlot.next_at).where(RateSlot.provider == "aliyun")) is not None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "rate limits go through the database" in warnings[0].getMessage()
