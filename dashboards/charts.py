"""Plotly figures from computed metrics (no database here)."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.colors import qualitative

FONT = {"family": "Noto Sans CJK SC, Microsoft YaHei, sans-serif"}
OTHERS_COLOUR = "#9e9e9e"
# Qualitative palettes chosen for telling series apart; beyond them, hues spread by the golden angle.
_PALETTE = list(dict.fromkeys(c.upper() for c in (*qualitative.Dark24, *qualitative.Light24)))


def distinct_colours(n: int) -> list[str]:
    """Return n different colours (never the grey kept for "others")."""
    colours = _PALETTE[:n]
    i = 0
    while len(colours) < n:
        hue = (i * 0.618033988749895) % 1.0
        lightness = (0.38, 0.5, 0.62)[i % 3]
        r, g, b = colorsys.hls_to_rgb(hue, lightness, 0.7)
        colour = f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"
        if colour not in colours and colour != OTHERS_COLOUR.upper():
            colours.append(colour)
        i += 1
    return colours


def _layout(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10}, height=height, font=FONT, separators=".,")
    return fig


def funnel_figure(labels: Sequence[str], counts: Sequence[int], *, people: str) -> go.Figure:
    """Return a funnel chart of step counts, labelled with full integers ("32,187", never "32.187k")."""
    fig = go.Figure(go.Funnel(
        y=list(labels), x=list(counts), marker={"color": "#0d6efd"},
        texttemplate="%{value:,d}<br>%{percentInitial:.1%}", textposition="inside",
        hovertemplate="%{y}: %{value:,d} " + people + " (%{percentInitial:.1%})<extra></extra>",
    ))
    fig.update_xaxes(tickformat=",d")
    return _layout(fig, 360)


@dataclass(frozen=True, slots=True)
class Series:
    """One group's counts per step, as a chart series."""

    label: str
    counts: Sequence[int]
    other: bool = False


def grouped_conversion_figure(steps: Sequence[str], groups: Sequence[Series], *, people: str) -> go.Figure:
    """Return a bar chart of each group's conversion from registration to each step, one colour per group."""
    fig = go.Figure()
    colours = iter(distinct_colours(sum(1 for g in groups if not g.other)))
    for group in groups:
        first = group.counts[0] or 1
        fig.add_bar(
            name=group.label, x=list(steps), y=[round(100 * c / first, 1) for c in group.counts],
            customdata=list(group.counts), marker={"color": OTHERS_COLOUR if group.other else next(colours)},
            hovertemplate="%{fullData.name}<br>%{x}: %{y:.1f}% (%{customdata:,d} " + people + ")<extra></extra>",
        )
    fig.update_layout(barmode="group", yaxis={"ticksuffix": "%", "rangemode": "tozero"},
                      legend={"orientation": "h", "y": -0.15})
    return _layout(fig, 420)


def weekly_conversion_figure(
    weeks: Sequence[str], registered: Sequence[int], steps: Sequence[str], rates: Sequence[Sequence[float | None]],
    immature: Sequence[bool], *, people: str, registered_label: str,
) -> go.Figure:
    """Return registrations per week (bars) and each later step's conversion (lines) across weeks.

    Weeks whose window has not closed get hollow markers: their later steps are still incomplete.
    """
    fig = go.Figure()
    # Registrations on the left axis; the rates on the overlaying right axis, so lines draw above the bars.
    fig.add_bar(name=registered_label, x=list(weeks), y=list(registered), marker={"color": "#ced4da"},
                hovertemplate="%{x}<br>%{y:,d} " + people + "<extra></extra>")
    symbols = ["circle-open" if young else "circle" for young in immature]
    for step, step_rates, colour in zip(steps, rates, distinct_colours(len(steps)), strict=True):
        fig.add_scatter(
            name=step, x=list(weeks), y=[None if r is None else round(100 * r, 1) for r in step_rates],
            yaxis="y2", mode="lines+markers", line={"color": colour}, marker={"symbol": symbols, "size": 8},
            hovertemplate="%{x}<br>" + step + ": %{y:.1f}%<extra></extra>",
        )
    fig.update_layout(
        yaxis={"tickformat": ",d", "rangemode": "tozero", "showgrid": False},
        yaxis2={"overlaying": "y", "side": "right", "ticksuffix": "%", "rangemode": "tozero", "tickmode": "auto"},
        legend={"orientation": "h", "y": -0.25}, xaxis={"type": "category"},
    )
    return _layout(fig, 420)


def referral_weeks_figure(weeks: Sequence[str], series: Sequence[tuple[str, Sequence[int]]],
                          k_factors: Sequence[float | None], *, k_label: str) -> go.Figure:
    """Return the referral program by week: counts as bars, the cohort K-factor as a line on its own axis."""
    fig = go.Figure()
    for (label, counts), colour in zip(series, distinct_colours(len(series)), strict=True):
        fig.add_bar(x=list(weeks), y=list(counts), name=label, marker={"color": colour},
                    hovertemplate="%{x}: %{y:,d}<extra>" + label + "</extra>")
    fig.add_scatter(x=list(weeks), y=[None if k is None else round(k, 3) for k in k_factors], name=k_label,
                    yaxis="y2", mode="lines+markers", line={"color": "#212529"},
                    hovertemplate="%{x}: %{y:.3f}<extra>" + k_label + "</extra>")
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.2},
                      yaxis={"tickformat": ",d", "rangemode": "tozero"},
                      yaxis2={"overlaying": "y", "side": "right", "rangemode": "tozero", "tickformat": ".2f",
                              "showgrid": False})
    return _layout(fig, 380)


def spend_and_return_figure(channels: Sequence[str], cost: Sequence[float], incentive: Sequence[float],
                            annualised: Sequence[float], *, cost_label: str, incentive_label: str,
                            annualised_label: str, yuan: str) -> go.Figure:
    """Return per channel what it cost (acquisition cost with the incentives stacked on it) beside what its
    cohort invested in the window, annualised (yuan)."""
    fig = go.Figure()
    spend_colour, incentive_colour, return_colour = "#dc3545", "#fd7e14", "#198754"
    hover = "%{x}<br>%{fullData.name}: ¥%{y:,.2f}<extra></extra>"
    fig.add_bar(name=cost_label, x=list(channels), y=list(cost), offsetgroup="spend",
                marker={"color": spend_colour}, hovertemplate=hover)
    fig.add_bar(name=incentive_label, x=list(channels), y=list(incentive), offsetgroup="spend", base=list(cost),
                marker={"color": incentive_colour}, hovertemplate=hover)
    fig.add_bar(name=annualised_label, x=list(channels), y=list(annualised), offsetgroup="return",
                marker={"color": return_colour}, hovertemplate=hover)
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.2}, xaxis={"type": "category"},
                      yaxis={"tickformat": ",.0f", "rangemode": "tozero", "title": {"text": yuan}})
    return _layout(fig, 380)


def unit_cost_figure(channels: Sequence[str], cac: Sequence[float | None], per_registration: Sequence[float | None],
                     *, cac_label: str, registration_label: str, yuan: str) -> go.Figure:
    """Return each channel's cost per first investor and per registration (yuan; gaps where nobody came)."""
    fig = go.Figure()
    hover = "%{x}<br>%{fullData.name}: ¥%{y:,.2f}<extra></extra>"
    for label, values, colour in ((cac_label, cac, "#6f42c1"), (registration_label, per_registration, "#0d6efd")):
        fig.add_bar(name=label, x=list(channels), y=list(values), marker={"color": colour}, hovertemplate=hover)
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.2}, xaxis={"type": "category"},
                      yaxis={"tickformat": ",.0f", "rangemode": "tozero", "title": {"text": yuan}})
    return _layout(fig, 340)


def net_roi_figure(channels: Sequence[str], roi: Sequence[float | None], *, label: str) -> go.Figure:
    """Return each channel's net ROI after incentives as a percentage: green above zero, red below."""
    values = [None if r is None else round(100 * r, 1) for r in roi]
    colours = ["#198754" if (v or 0) >= 0 else "#dc3545" for v in values]
    fig = go.Figure(go.Bar(name=label, x=list(channels), y=values, marker={"color": colours},
                           hovertemplate="%{x}<br>" + label + ": %{y:,.1f}%<extra></extra>"))
    fig.update_layout(xaxis={"type": "category"}, yaxis={"ticksuffix": "%", "tickformat": ",.0f", "zeroline": True},
                      showlegend=False)
    return _layout(fig, 300)



def retention_heatmap_figure(cohorts: Sequence[str], columns: Sequence[str], rates: Sequence[Sequence[float | None]],
                             counts: Sequence[Sequence[int | None]], open_cells: Sequence[Sequence[bool]], *,
                             people: str, incomplete_label: str, rate_label: str) -> go.Figure:
    """Return retention (percent) as a heatmap: a row per cohort, oldest on top, a column per month since registering.

    Cells not yet reachable are gaps; the current month's cells carry an asterisk and say so on hover.
    """
    text = [["" if r is None else f"{r:.1f}%" + ("*" if o else "") for r, o in zip(row, opens, strict=True)]
            for row, opens in zip(rates, open_cells, strict=True)]
    notes = [[f" ({incomplete_label})" if o else "" for o in opens] for opens in open_cells]
    custom = [[[0 if n is None else n, note] for n, note in zip(row, note_row, strict=True)]
              for row, note_row in zip(counts, notes, strict=True)]
    fig = go.Figure(go.Heatmap(
        x=list(columns), y=list(cohorts), z=[list(r) for r in rates], text=text, texttemplate="%{text}",
        customdata=custom, colorscale="Blues", zmin=0, hoverongaps=False, xgap=1, ygap=1,
        colorbar={"ticksuffix": "%", "thickness": 12, "title": {"text": rate_label}},
        hovertemplate="%{y} · %{x}<br>" + rate_label + ": %{z:.1f}%%{customdata[1]}<br>%{customdata[0]:,d} " + people
                      + "<extra></extra>",
    ))
    fig.update_layout(yaxis={"autorange": "reversed", "type": "category"},
                      xaxis={"type": "category", "side": "top"})
    return _layout(fig, max(260, 60 + 28 * len(cohorts)))


def reinvestment_figure(months: Sequence[str], principal: Sequence[float], reinvested: Sequence[float],
                        rate_by_count: Sequence[float | None], rate_by_amount: Sequence[float | None], *,
                        principal_label: str, reinvested_label: str, count_label: str, amount_label: str,
                        yuan: str) -> go.Figure:
    """Return per maturity month the principal matured beside the amount re-invested (bars, yuan) and both
    re-investment rates (lines, percent, right axis)."""
    fig = go.Figure()
    hover = "%{x}<br>%{fullData.name}: ¥%{y:,.2f}<extra></extra>"
    fig.add_bar(name=principal_label, x=list(months), y=list(principal), marker={"color": "#ced4da"},
                hovertemplate=hover)
    fig.add_bar(name=reinvested_label, x=list(months), y=list(reinvested), marker={"color": "#198754"},
                hovertemplate=hover)
    for label, values, colour in ((count_label, rate_by_count, "#0d6efd"), (amount_label, rate_by_amount, "#fd7e14")):
        fig.add_scatter(name=label, x=list(months), y=list(values), yaxis="y2", mode="lines+markers",
                        line={"color": colour}, hovertemplate="%{x}<br>" + label + ": %{y:.1f}%<extra></extra>")
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.2}, xaxis={"type": "category"},
                      yaxis={"tickformat": ",.0f", "rangemode": "tozero", "title": {"text": yuan}},
                      yaxis2={"overlaying": "y", "side": "right", "ticksuffix": "%", "tickformat": ".0f",
                              "rangemode": "tozero", "showgrid": False})
    return _layout(fig, 380)
