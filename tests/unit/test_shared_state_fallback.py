"""Falling back from Redis to the database (channels/shared_state.py): one warning per outage, Redis tried again."""

from __future__ import annotations

import logging

import pytest
import redis

from channels.shared_state import Fallback


class Flaky:
    """A Redis call that fails while `down` is set; counts its attempts."""

    def __init__(self) -> None:
        self.down = False
        self.attempts = 0

    def __call__(self) -> str:
        self.attempts += 1
        if self.down:
            raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return "redis"


def test_redis_answers_while_it_is_up() -> None:
    flaky = Flaky()

    assert Fallback("rate limits").run(flaky, lambda: "database") == "redis"


def test_an_outage_is_served_by_the_database_with_one_warning_and_redis_tried_again_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="channels")
    now = [0.0]
    switch = Fallback("rate limits", retry_seconds=30, clock=lambda: now[0])
    flaky = Flaky()
    flaky.down = True

    answers = [switch.run(flaky, lambda: "database") for _ in range(5)]
    assert answers == ["database"] * 5
    assert flaky.attempts == 1  # not asked again inside the retry period
    now[0] = 31.0
    assert switch.run(flaky, lambda: "database") == "database"  # still down when tried again
    assert flaky.attempts == 2
    assert switch.down

    flaky.down = False
    now[0] = 62.0
    assert switch.run(flaky, lambda: "database") == "redis"
    assert not switch.down

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1  # one per outage, however long it lasts
    assert "rate limits go through the database" in warnings[0]
    assert infos == ["Redis answers again: rate limits are shared through it"]


def test_a_second_outage_warns_again() -> None:
    now = [0.0]
    switch = Fallback("WeChat tokens", retry_seconds=1, clock=lambda: now[0])
    flaky = Flaky()
    flaky.down = True
    switch.run(flaky, lambda: None)
    flaky.down = False
    now[0] = 2.0
    switch.run(flaky, lambda: None)

    flaky.down = True
    now[0] = 4.0
    switch.run(flaky, lambda: None)

    assert switch.down


def test_errors_other_than_an_unreachable_redis_are_not_hidden() -> None:
    def broken() -> str:
        raise redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")

    with pytest.raises(redis.exceptions.ResponseError):
        Fallback("rate limits").run(broken, lambda: "database")
