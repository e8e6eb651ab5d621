"""Pure rules for sign-in throttling."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

MAX_BACKOFF = timedelta(minutes=15)


def throttled_until(
    failures: Sequence[datetime], *, now: datetime, max_failures: int, window: timedelta
) -> datetime | None:
    """Return until when sign-in is refused, given one key's recent failure times; None if allowed.

    Below `max_failures` failures in `window` nothing happens; from then on each further failure
    doubles the wait after the latest one (30 s, 1 min, 2 min ... capped at 15 min).
    """
    recent = sorted(t for t in failures if now - t <= window)
    if len(recent) < max_failures:
        return None
    extra = len(recent) - max_failures
    backoff = min(timedelta(seconds=30) * (2 ** min(extra, 10)), MAX_BACKOFF)
    until = recent[-1] + backoff
    return until if until > now else None
