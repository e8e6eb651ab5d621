"""Time helpers: aware UTC inside, Asia/Shanghai for business dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Return an aware UTC datetime; naive values are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def local_date(value: datetime, tz: ZoneInfo = SHANGHAI) -> date:
    """Return the business date of an instant (Asia/Shanghai by default)."""
    return as_utc(value).astimezone(tz).date()


def local_day_bounds(day: date, tz: ZoneInfo = SHANGHAI) -> tuple[datetime, datetime]:
    """Return the UTC [start, end) instants of a business day."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def iso_week_key(day: date) -> str:
    """Return the ISO week key of a date, e.g. "2026-W48"."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"
