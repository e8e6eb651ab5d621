"""Pure metric code: funnels from milestone timestamps, and how their groups are presented."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from growth.investors.models import MILESTONES
from growth.timeutil import iso_week_key, local_date

FUNNEL_STEPS = MILESTONES  # the standard funnel walks the milestones in order
OTHERS_KEY = "__others__"


@dataclass(frozen=True, slots=True)
class CohortMember:
    """One investor of a funnel cohort: milestone times in FUNNEL_STEPS order, and their channel."""

    milestones: tuple[datetime | None, ...]
    channel_code: str | None
    channel_name: str | None


@dataclass
class FunnelGroup:
    """Counts per step for one group, and how many of its members are still inside their window."""

    key: str
    label: str
    counts: list[int] = field(default_factory=lambda: [0] * len(FUNNEL_STEPS))
    # Members registered less than window_days before `now`: their later steps may still happen.
    immature: int = 0

    @property
    def registered(self) -> int:
        """Return the group's size (its first step)."""
        return self.counts[0]


@dataclass
class FunnelResult:
    """The whole cohort's counts and each group's, groups sorted by key."""

    total: FunnelGroup
    groups: list[FunnelGroup]


def steps_reached(milestones: Sequence[datetime | None], window: timedelta) -> int:
    """Return how many leading steps happened, each within `window` of registration."""
    registered = milestones[0]
    if registered is None:
        return 0
    deadline = registered + window
    reached = 0
    for at in milestones:
        if at is None or at > deadline:
            break
        reached += 1
    return reached


def funnel(members: Iterable[CohortMember], *, window_days: int, group_by: str,
           now: datetime | None = None) -> FunnelResult:
    """Count the funnel overall and per group ("none", "channel" or "week"); `now` marks open windows."""
    window = timedelta(days=window_days)
    total = FunnelGroup("total", "total")
    groups: dict[str, FunnelGroup] = {}
    for member in members:
        reached = steps_reached(member.milestones, window)
        registered = member.milestones[0]
        immature = int(now is not None and registered is not None and registered + window > now)
        for k in range(reached):
            total.counts[k] += 1
        total.immature += immature
        if group_by == "none":
            continue
        if group_by == "channel":
            key = member.channel_code or "organic"
            label = member.channel_name or key
        else:
            key = label = iso_week_key(local_date(registered))  # type: ignore[arg-type]
        group = groups.get(key)
        if group is None:
            group = groups[key] = FunnelGroup(key, label)
        for k in range(reached):
            group.counts[k] += 1
        group.immature += immature
    return FunnelResult(total, [groups[k] for k in sorted(groups)])


def conversion_rates(counts: Sequence[int]) -> list[float | None]:
    """Return each step's share of the first step (None when the cohort is empty)."""
    first = counts[0] if counts else 0
    return [(c / first if first else None) for c in counts]


def largest_groups(groups: Sequence[FunnelGroup], limit: int) -> tuple[list[FunnelGroup], list[FunnelGroup]]:
    """Split groups into the `limit` largest by registrations (ties by key) and the rest."""
    ranked = sorted(groups, key=lambda g: (-g.registered, g.key))
    if len(ranked) <= limit:
        return ranked, []
    return ranked[:limit], ranked[limit:]


def merge_groups(groups: Iterable[FunnelGroup], *, key: str = OTHERS_KEY, label: str = "") -> FunnelGroup:
    """Return one group whose counts are the sums of the given groups'."""
    merged = FunnelGroup(key, label)
    for group in groups:
        merged.counts = [a + b for a, b in zip(merged.counts, group.counts, strict=True)]
        merged.immature += group.immature
    return merged


@dataclass(frozen=True, slots=True)
class WeekSpan:
    """An ISO week as shown to people: its days, and which of them the selected range covers."""

    key: str
    monday: date
    sunday: date
    first: date  # first day of the week inside the selected range
    last: date  # last day inside the range, and not after today
    current: bool

    @property
    def partial(self) -> bool:
        """Return whether the week is cut by the range's start or end, or is still running."""
        return self.current or self.first != self.monday or self.last != self.sunday


def week_span(key: str, *, start: date, end: date, today: date) -> WeekSpan:
    """Return the days of an ISO week key ("2026-W48") within [start, end] and up to today."""
    year, week = key.split("-W")
    monday = date.fromisocalendar(int(year), int(week), 1)
    sunday = monday + timedelta(days=6)
    return WeekSpan(key, monday, sunday, max(monday, start), min(sunday, end, max(today, monday)),
                    monday <= today <= sunday)


def day_range_text(first: date, last: date) -> str:
    """Format a day range compactly: "11-23–11-29" (years only when they differ from the first's)."""
    if first == last:
        return f"{first:%m-%d}"
    if first.year != last.year:
        return f"{first:%Y-%m-%d}–{last:%Y-%m-%d}"
    return f"{first:%m-%d}–{last:%m-%d}"


def week_label(span: WeekSpan) -> str:
    """Return "2026-W48 · 11-23–11-29": the ISO key with its Monday-to-Sunday dates."""
    return f"{span.key} · {day_range_text(span.monday, span.sunday)}"


def immature_since(now: datetime, window_days: int) -> date:
    """Return the first registration date (Asia/Shanghai) whose window has not closed by `now`."""
    return local_date(now - timedelta(days=window_days))
