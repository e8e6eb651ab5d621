"""Pure metric code: funnels from milestone timestamps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from growth.timeutil import iso_week_key, local_date

FUNNEL_STEPS = ("registered", "kyc_verified", "card_bound", "first_deposit", "first_investment", "repeat_investment")


@dataclass(frozen=True, slots=True)
class CohortMember:
    """One investor of a funnel cohort: milestone times in FUNNEL_STEPS order, and their channel."""

    milestones: tuple[datetime | None, ...]
    channel_code: str | None
    channel_name: str | None


@dataclass
class FunnelGroup:
    """Counts per step for one group."""

    key: str
    label: str
    counts: list[int] = field(default_factory=lambda: [0] * len(FUNNEL_STEPS))


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


def funnel(members: Iterable[CohortMember], *, window_days: int, group_by: str) -> tuple[list[int], list[FunnelGroup]]:
    """Count the funnel overall and per group ("none", "channel" or "week")."""
    window = timedelta(days=window_days)
    total = [0] * len(FUNNEL_STEPS)
    groups: dict[str, FunnelGroup] = {}
    for member in members:
        reached = steps_reached(member.milestones, window)
        for k in range(reached):
            total[k] += 1
        if group_by == "none":
            continue
        if group_by == "channel":
            key = member.channel_code or "organic"
            label = member.channel_name or key
        else:
            key = label = iso_week_key(local_date(member.milestones[0]))  # type: ignore[arg-type]
        group = groups.get(key)
        if group is None:
            group = groups[key] = FunnelGroup(key, label)
        for k in range(reached):
            group.counts[k] += 1
    return total, [groups[k] for k in sorted(groups)]


def conversion_rates(counts: Sequence[int]) -> list[float | None]:
    """Return each step's share of the first step (None when the cohort is empty)."""
    first = counts[0] if counts else 0
    return [(c / first if first else None) for c in counts]
