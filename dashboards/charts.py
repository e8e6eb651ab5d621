"""Plotly figures from computed metrics (no database here)."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go


def funnel_figure(labels: Sequence[str], counts: Sequence[int]) -> go.Figure:
    """Return a funnel chart of step counts."""
    fig = go.Figure(go.Funnel(y=list(labels), x=list(counts), textinfo="value+percent initial",
                              marker={"color": "#0d6efd"}))
    fig.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10}, height=360,
                      font={"family": "Noto Sans CJK SC, Microsoft YaHei, sans-serif"})
    return fig


def grouped_conversion_figure(steps: Sequence[str], groups: Sequence[tuple[str, Sequence[int]]]) -> go.Figure:
    """Return a bar chart of each group's conversion from registration to each step."""
    fig = go.Figure()
    for label, counts in groups:
        first = counts[0] or 1
        fig.add_bar(name=label, x=list(steps), y=[round(100 * c / first, 1) for c in counts])
    fig.update_layout(barmode="group", yaxis={"ticksuffix": "%"}, height=380,
                      margin={"l": 10, "r": 10, "t": 10, "b": 10}, legend={"orientation": "h"})
    return fig
