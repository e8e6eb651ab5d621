"""Pure funnel presentation helpers: distinct colours, largest groups and others, ISO week spans."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from dashboards.charts import OTHERS_COLOUR, distinct_colours
from dashboards.metrics import CohortMember, FunnelGroup, funnel, largest_groups, merge_groups, week_label, week_span


def test_any_number_of_groups_gets_as_many_different_colours_none_of_them_the_others_grey():
    for n in (1, 12, 20, 48, 49, 120):
        colours = distinct_colours(n)
        assert len(colours) == len(set(colours)) == n
        assert OTHERS_COLOUR.upper() not in colours


def test_the_largest_groups_are_kept_and_the_rest_sum_into_one_others_group():
    groups = [FunnelGroup(f"g{i}", f"g{i}", [i, i // 2, 0, 0, 0, 0], immature=i % 2) for i in range(1, 8)]
    shown, rest = largest_groups(groups, 3)
    assert [g.key for g in shown] == ["g7", "g6", "g5"]
    others = merge_groups(rest, label="others")
    assert others.counts == [1 + 2 + 3 + 4, 0 + 1 + 1 + 2, 0, 0, 0, 0] and others.immature == 2
    assert largest_groups(groups, 7) == (sorted(groups, key=lambda g: -g.registered), [])


def test_a_week_label_shows_the_key_with_its_monday_to_sunday_dates():
    span = week_span("2026-W48", start=date(2026, 11, 1), end=date(2026, 11, 30), today=date(2026, 12, 3))
    assert week_label(span) == "2026-W48 · 11-23–11-29"
    assert not span.partial
    across = week_span("2026-W01", start=date(2025, 12, 1), end=date(2026, 1, 31), today=date(2026, 12, 3))
    assert week_label(across) == "2026-W01 · 2025-12-29–2026-01-04"


def test_a_week_is_partial_when_the_range_cuts_it_or_it_is_still_running():
    today = date(2026, 12, 3)
    cut_start = week_span("2026-W48", start=date(2026, 11, 25), end=today, today=today)
    assert cut_start.partial and (cut_start.first, cut_start.last) == (date(2026, 11, 25), date(2026, 11, 29))
    cut_end = week_span("2026-W48", start=date(2026, 11, 1), end=date(2026, 11, 26), today=today)
    assert cut_end.partial and cut_end.last == date(2026, 11, 26)
    running = week_span("2026-W49", start=date(2026, 11, 1), end=date(2026, 12, 31), today=today)
    assert running.partial and running.current and running.last == today


def test_members_registered_less_than_the_window_ago_are_counted_as_immature():
    now = datetime(2026, 12, 3, tzinfo=UTC)
    members = [CohortMember((now - timedelta(days=d),) + (None,) * 5, "c", "C") for d in (1, 29, 31, 100)]
    result = funnel(members, window_days=30, group_by="channel", now=now)
    assert result.total.immature == 2 and result.groups[0].immature == 2
    assert funnel(members, window_days=30, group_by="channel").total.immature == 0  # no `now`, no flag
