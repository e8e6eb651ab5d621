"""State every delivery worker shares across processes and machines: the app's Redis client, and the
switch that falls back to the database while Redis cannot be reached.

Redis is optional (`GROWTH_REDIS_URL`); without it the database holds the shared rate slots and
tokens. With it, a Redis that stops answering must never stop the messages: calls go to the
database instead, with one warning per outage, and Redis is tried again after `RETRY_SECONDS`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from flask import Flask

EXTENSION = "channels.redis"  # the app's Redis client (app.extensions), built on first use
RETRY_SECONDS = 30.0  # after a failure, how long the database serves before Redis is tried again
# Redis unreachable must cost a send little: connecting and each command give up quickly.
CONNECT_TIMEOUT = 1.0
COMMAND_TIMEOUT = 3.0
DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)  # AuthenticationError is a ConnectionError

T = TypeVar("T")
log = logging.getLogger("channels.shared_state")


_BUILD_LOCK = threading.Lock()


def once_per_app(app: Flask, key: str, build: Callable[[], T]) -> T:
    """Return `app.extensions[key]`, building it on first use (once, whichever thread asks first)."""
    found: T | None = app.extensions.get(key)
    if found is not None:
        return found
    with _BUILD_LOCK:
        if key not in app.extensions:
            app.extensions[key] = build()
        return app.extensions[key]


def redis_client_for(app: Flask) -> redis.Redis | None:
    """Return the app's Redis client (`REDIS_URL`), or None without one; it connects on first command."""
    url = app.config.get("REDIS_URL")
    if not url:
        return None
    client = app.extensions.get(EXTENSION)
    if client is None:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=COMMAND_TIMEOUT, health_check_interval=30
        )
        app.extensions[EXTENSION] = client
    return client


class Fallback:
    """Run a call on Redis while it answers, else on the database; warn once when Redis goes away."""

    def __init__(self, what: str, retry_seconds: float = RETRY_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.what = what  # for the log: "rate limits", "WeChat tokens"
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down = False  # a warning was logged and no success has been seen since

    @property
    def down(self) -> bool:
        """Whether the database is serving because Redis failed (until it answers again)."""
        return self._down

    def run(self, on_redis: Callable[[], T], on_database: Callable[[], T]) -> T:
        """Return `on_redis()`, or `on_database()` when Redis cannot be reached (now or lately)."""
        if self._clock() < self._down_until:
            return on_database()
        try:
            result = on_redis()
        except DOWN as exc:
            self._failed(exc)
            return on_database()
        if self._down:
            with self._lock:
                if self._down:
                    self._down = False
                    log.info("Redis answers again: %s are shared through it", self.what)
        return result

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self._down_until = self._clock() + self._retry_seconds
            if self._down:
                return
            self._down = True
        # The exception's text names the host and port, never a stored value.
        log.warning("Redis cannot be reached (%s: %s): %s go through the database until it answers again",
                    type(exc).__name__, exc, self.what)
