"""Plotly figures of the incentive ledger (no database here): a budget's burn-down, shared by the budget page and
the campaign page."""

from __future__ import annotations

from datetime import date

import plotly.graph_objects as go
from flask_babel import gettext as _


def burn_down_figure(points: list[tuple[date, int, int]], *, max_grants: int | None,
                     max_amount_fen: int | None) -> go.Figure:
    """Return the budget's grants and amount used over time, each against its limit."""
    days = [p[0].isoformat() for p in points]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=days, y=[p[1] for p in points], name=_("已发放笔数"), mode="lines+markers",
                             line={"shape": "hv"}))
    fig.add_trace(go.Scatter(x=days, y=[p[2] / 100 for p in points], name=_("已用金额（元）"), mode="lines+markers",
                             line={"shape": "hv"}, yaxis="y2"))
    if max_grants is not None and days:
        fig.add_trace(go.Scatter(x=[days[0], days[-1]], y=[max_grants, max_grants], name=_("笔数上限"),
                                 mode="lines", line={"dash": "dash"}))
    if max_amount_fen is not None and days:
        fig.add_trace(go.Scatter(x=[days[0], days[-1]], y=[max_amount_fen / 100] * 2, name=_("金额上限（元）"),
                                 mode="lines", line={"dash": "dot"}, yaxis="y2"))
    # Business days, not instants: a few days' points would otherwise get ticks at fractions of a millisecond.
    xaxis: dict[str, object] = {"type": "date", "tickformat": "%Y-%m-%d"}
    if len(days) < 8:
        xaxis["dtick"] = 86_400_000
    fig.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10}, height=340, separators=".,",
                      legend={"orientation": "h", "y": -0.2}, xaxis=xaxis,
                      yaxis={"title": _("笔数"), "tickformat": ",d", "rangemode": "tozero"},
                      yaxis2={"title": _("元"), "overlaying": "y", "side": "right", "tickformat": ",.2f",
                              "rangemode": "tozero"})
    return fig
