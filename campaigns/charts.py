"""Plotly figures of a campaign's results (no database here): conversion per side with its interval, messages.

The page renders each figure's JSON with the locally served Plotly.js (growth/static/charts.js).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from campaigns.results import Interval

FONT = {"family": "Noto Sans CJK SC, Microsoft YaHei, sans-serif"}
TREATED_COLOUR, HOLDOUT_COLOUR = "#0d6efd", "#adb5bd"
# Message statuses in the order a reader follows them, each with a colour saying how it went.
STATUS_COLOURS = {
    "delivered": "#198754", "sent": "#20c997", "sending": "#0dcaf0", "queued": "#6ea8fe", "deferred": "#ffc107",
    "capped": "#fd7e14", "skipped_no_consent": "#adb5bd", "unreachable": "#6c757d", "failed": "#dc3545",
    "dead": "#842029",
}


def _layout(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10}, height=height, font=FONT, separators=".,",
                      legend={"orientation": "h", "y": -0.2})
    return fig


@dataclass(frozen=True, slots=True)
class Bar:
    """One side of the comparison: its label, conversion with interval, and the counts behind it."""

    label: str
    rate: Interval
    hits: int
    people: int


def conversion_figure(bars: Sequence[Bar], *, hover: str) -> go.Figure:
    """Return each side's conversion rate as a bar with its 95 % interval as an error bar.

    `hover` is a format with `{hits}` and `{people}` for the bar's tooltip (already translated).
    """
    fig = go.Figure()
    for bar, colour in zip(bars, (TREATED_COLOUR, HOLDOUT_COLOUR), strict=False):
        value = 100 * bar.rate.value
        fig.add_bar(
            x=[bar.label], y=[round(value, 2)], name=bar.label, marker={"color": colour},
            error_y={"type": "data", "symmetric": False, "array": [round(100 * bar.rate.high - value, 2)],
                     "arrayminus": [round(value - 100 * bar.rate.low, 2)], "color": "#212529"},
            text=[f"{value:.1f}%"], textposition="inside",
            hovertemplate="%{x}: %{y:.1f}%<br>" + hover.format(hits=f"{bar.hits:,}", people=f"{bar.people:,}")
                          + "<extra></extra>",
        )
    fig.update_layout(showlegend=False, yaxis={"ticksuffix": "%", "rangemode": "tozero"})
    return _layout(fig, 300)


def messages_figure(counts: Mapping[str, Mapping[str, int]], *, channel_labels: Mapping[str, str],
                    status_labels: Mapping[str, str]) -> go.Figure:
    """Return one horizontal stacked bar per channel with messages, split by status."""
    channels = [c for c in counts if sum(counts[c].values())]
    fig = go.Figure()
    for status, colour in STATUS_COLOURS.items():
        values = [counts[c].get(status, 0) for c in channels]
        if not any(values):
            continue
        label = status_labels.get(status, status)
        fig.add_bar(y=[channel_labels.get(c, c) for c in channels], x=values, name=label, orientation="h",
                    marker={"color": colour}, hovertemplate="%{y} · " + label + ": %{x:,d}<extra></extra>")
    most = max((sum(counts[c].values()) for c in channels), default=0)
    # Whole messages only: with a handful, ticks every 1 (",d" alone would print 0 1 1 2 2 at half steps).
    xaxis: dict[str, object] = {"tickformat": ",d", "rangemode": "tozero"}
    if most <= 10:
        xaxis["dtick"] = 1
    fig.update_layout(barmode="stack", xaxis=xaxis)
    return _layout(fig, 140 + 50 * len(channels))
