"""Consent rules: plain functions over plain data."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def statement_order(occurred_at: datetime, granted: bool, source: str) -> tuple[datetime, bool, str]:
    """Return a statement's rank: the latest wins; on a tie the opt-out; then the source name (order-free)."""
    return (occurred_at, not granted, source)


def statement_wins(current: tuple[datetime, bool, str] | None, occurred_at: datetime, granted: bool,
                   source: str) -> bool:
    """Tell whether a new statement replaces the current one (given as occurred_at, granted, source)."""
    if current is None:
        return True
    return statement_order(occurred_at, granted, source) > statement_order(*current)


# --- delivery rules ---------------------------------------------------------------------------------

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_CAP = re.compile(r"^(sms|email|wechat|all):(\d{1,4})/(day|week)$")
CAP_SCOPES = ("sms", "email", "wechat", "all")


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily period, in business time, when marketing waits; it may run past midnight (21:00–08:00)."""

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_quiet_hours(value: str) -> QuietHours | None:
    """Parse `HH:MM-HH:MM` (or `off`); raise ValueError with a bilingual reason."""
    value = value.strip()
    if value.lower() == "off":
        return None
    parts = value.split("-")
    matches = [_CLOCK.match(p.strip()) for p in parts] if len(parts) == 2 else []
    if len(matches) != 2 or not all(matches):
        raise ValueError("quiet hours look like 21:00-08:00, or off")
    start, end = (time(int(m.group(1)), int(m.group(2))) for m in matches if m)
    if start == end:
        raise ValueError("quiet hours cannot start and end at the same time")
    return QuietHours(start, end)


def quiet_until(quiet: QuietHours | None, now: datetime, tz: ZoneInfo) -> datetime | None:
    """Return when the quiet period holding `now` ends (aware UTC), or None when `now` is not quiet.

    The period is [start, end): 21:00:00 is quiet, 08:00:00 is not.
    """
    if quiet is None:
        return None
    local = now.astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    today = local.date()
    if quiet.start < quiet.end:  # within one day, e.g. 12:00-14:00
        if not quiet.start <= clock < quiet.end:
            return None
        end_day = today
    elif clock >= quiet.start:  # past midnight, evening side
        end_day = today + timedelta(days=1)
    elif clock < quiet.end:  # past midnight, morning side
        end_day = today
    else:
        return None
    return datetime.combine(end_day, quiet.end, tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Cap:
    """At most `limit` marketing messages per investor and period, on one channel or on all of them."""

    scope: str  # a channel or "all"
    limit: int
    unit: str  # "day" (the business day) or "week" (the ISO week)

    def __str__(self) -> str:
        return f"{self.scope}:{self.limit}/{self.unit}"

    def applies_to(self, channel: str) -> bool:
        """Tell whether a message on `channel` counts against this cap."""
        return self.scope in ("all", channel)


def parse_caps(value: str) -> tuple[Cap, ...]:
    """Parse `sms:1/day,all:3/week` (empty or `off` = no caps); raise ValueError with a bilingual reason."""
    value = value.strip()
    if value.lower() in ("", "off"):
        return ()
    caps = []
    for part in value.split(","):
        m = _CAP.match(part.strip())
        if not m:
            raise ValueError(f"the cap {part.strip()!r} must look like sms:1/day or all:3/week")
        caps.append(Cap(m.group(1), int(m.group(2)), m.group(3)))
    keys = [(c.scope, c.unit) for c in caps]
    if len(set(keys)) != len(keys):
        raise ValueError("one cap per channel and period")
    return tuple(caps)


def cap_period(cap: Cap, now: datetime, tz: ZoneInfo) -> str:
    """Return the key of the period `now` falls in for a cap: `day:2026-12-03` or `week:2026-W49` (business time)."""
    day = now.astimezone(tz).date()
    if cap.unit == "day":
        return f"day:{day.isoformat()}"
    year, week, _ = day.isocalendar()
    return f"week:{year}-W{week:02d}"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most `max_attempts` tries; with `give_up_after`, retries go on at least that long after creation."""

    max_attempts: int
    give_up_after: timedelta | None = None
    base: float = 30.0  # seconds: the first retry comes within this (the spec asks within 60 s)
    longest: float = 3600.0

    def exhausted(self, attempts: int, age: timedelta) -> bool:
        """Tell whether a message that has been tried `attempts` times and is `age` old is dead."""
        if attempts < self.max_attempts:
            return False
        return self.give_up_after is None or age >= self.give_up_after

    def delay(self, attempts: int, draw: Callable[[float, float], float]) -> float:
        """Seconds before the next try, exponential with full jitter: uniform over [0, base·2^(attempts−1)], capped.

        `draw(a, b)` is `random.uniform` (passed in so tests can fix it); never less than one second.
        """
        ceiling = min(self.longest, self.base * 2 ** max(0, min(attempts - 1, 20)))
        return max(1.0, draw(0.0, ceiling))
