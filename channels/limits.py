"""Per-provider rate limits shared by every delivery worker (placeholder: no limit until the shared one lands)."""

from __future__ import annotations

import time
from typing import Protocol

from flask import Flask


class RateLimiter(Protocol):
    """Reserves send slots for a provider limited to `rate` messages a second across every worker."""

    def reserve(self, provider: str, count: int, rate: float) -> list[float]:
        """Return the times (epoch seconds) of `count` slots; the caller waits for each before its call."""
        ...


class NoLimit:
    """Every slot is now."""

    def reserve(self, provider: str, count: int, rate: float) -> list[float]:
        """Return `count` slots at the current time."""
        now = time.time()
        return [now] * count


def rate_limiter_for(app: Flask) -> RateLimiter:
    """Return the app's rate limiter."""
    return app.extensions.setdefault("channels.rate_limiter", NoLimit())
