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


TIME_TICK_HOURS = (0.1, 1, 6, 24, 72, 168, 720, 2160)  # 6 minutes … 90 days, on a log axis


def time_to_convert_figure(steps: Sequence[str], medians: Sequence[float | None], p90s: Sequence[float | None], *,
                           median_label: str, p90_label: str, ticks: Sequence[str],
                           texts: tuple[Sequence[str], Sequence[str]]) -> go.Figure:
    """Return the median and p90 time from registration to each step on a log axis of hours (minutes to months);
    `ticks` label TIME_TICK_HOURS and `texts` are the bars' times as people read them ("5 分钟", "3.4 天")."""
    fig = go.Figure()
    for label, values, text, colour in ((median_label, medians, texts[0], "#0d6efd"),
                                        (p90_label, p90s, texts[1], "#adb5bd")):
        fig.add_bar(name=label, x=list(steps), y=[None if v is None else max(v, 0.05) for v in values],
                    customdata=list(text), marker={"color": colour},
                    hovertemplate="%{x}<br>%{fullData.name}: %{customdata}<extra></extra>")
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.2}, xaxis={"type": "category"},
                      yaxis={"type": "log", "tickvals": list(TIME_TICK_HOURS), "ticktext": list(ticks)})
    return _layout(fig, 320)


def first_investment_money_figure(groups: Sequence[str], amounts: Sequence[float], annualised: Sequence[float], *,
                                  amount_label: str, annualised_label: str, yuan: str) -> go.Figure:
    """Return per group the first investments' amount beside its annualised amount (amount × term / 365), yuan."""
    fig = go.Figure()
    hover = "%{x}<br>%{fullData.name}: ¥%{y:,.2f}<extra></extra>"
    for label, values, colour in ((amount_label, amounts, "#198754"), (annualised_label, annualised, "#20c997")):
        fig.add_bar(name=label, x=list(groups), y=list(values), marker={"color": colour}, hovertemplate=hover)
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.2}, xaxis={"type": "category"},
                      yaxis={"tickformat": ",.0f", "rangemode": "tozero", "title": {"text": yuan}})
    return _layout(fig, 340)
def kpi_trend_figure(days: Sequence[str], current: Sequence[float], previous_days: Sequence[str],
                     previous: Sequence[float], *, name: str, previous_name: str, money: bool, height: int = 220,
                     compact: bool = False) -> go.Figure:
    """Return one KPI per day (a line) over the previous period's same-numbered days (dotted, grey, hovering
    with their own dates).

    `compact` draws a sparkline for the home strip: no axes, no legend, no margins.
    """
    value = "¥%{y:,.2f}" if money else "%{y:,d}"
    fig = go.Figure()
    fig.add_scatter(x=list(days), y=list(previous), name=previous_name, mode="lines",
                    line={"color": "#adb5bd", "dash": "dot", "width": 1.5},
                    hovertemplate="%{customdata}: " + value + "<extra>" + previous_name + "</extra>",
                    customdata=list(previous_days))
    fig.add_scatter(x=list(days), y=list(current), name=name, mode="lines+markers",
                    line={"color": "#0d6efd", "width": 2}, marker={"size": 4},
                    hovertemplate="%{x}: " + value + "<extra>" + name + "</extra>")
    if compact:
        fig.update_layout(showlegend=False, xaxis={"visible": False, "type": "category"},
                          yaxis={"visible": False, "rangemode": "tozero"})
        fig.update_layout(margin={"l": 0, "r": 0, "t": 0, "b": 0}, height=height, font=FONT, separators=".,")
        return fig
    fig.update_layout(legend={"orientation": "h", "y": -0.25}, xaxis={"type": "category"},
                      yaxis={"tickformat": ",.0f" if money else ",d", "rangemode": "tozero"})
    return _layout(fig, height)
# ---------------------------------------------------------------- campaign results across campaigns


@dataclass(frozen=True, slots=True)
class LiftPoint:
    """One campaign's lift in a forest plot: its label and the lift with its 95 % interval (fractions)."""

    label: str
    value: float
    low: float
    high: float


def lift_forest_figure(points: Sequence[LiftPoint], *, label: str, hover: str) -> go.Figure:
    """Return a forest plot: each campaign's conversion lift (percentage points) with its 95 % interval as an
    error bar, a line at zero; green where the interval lies above zero, red below, grey across it.

    `hover` labels the interval in the tooltip (already translated).
    """
    labels = [p.label for p in points]
    values = [round(100 * p.value, 2) for p in points]
    colours = ["#198754" if p.low > 0 else "#dc3545" if p.high < 0 else "#6c757d" for p in points]
    fig = go.Figure(go.Scatter(
        x=values, y=labels, mode="markers", marker={"color": colours, "size": 10, "symbol": "square"},
        error_x={"type": "data", "symmetric": False, "color": "#495057", "thickness": 1.5,
                 "array": [round(100 * (p.high - p.value), 2) for p in points],
                 "arrayminus": [round(100 * (p.value - p.low), 2) for p in points]},
        customdata=[[round(100 * p.low, 2), round(100 * p.high, 2)] for p in points],
        hovertemplate="%{y}<br>" + label + ": %{x:+.2f} pp<br>" + hover
                      + " %{customdata[0]:+.2f} ~ %{customdata[1]:+.2f} pp<extra></extra>",
    ))
    fig.add_vline(x=0, line={"color": "#212529", "width": 1, "dash": "dot"})
    # The card's heading names the axis: a title under it would be cut on a phone.
    fig.update_layout(showlegend=False, xaxis={"ticksuffix": " pp", "zeroline": False},
                      yaxis={"type": "category", "autorange": "reversed", "automargin": True})
    return _layout(fig, 120 + 32 * max(len(points), 1))


def per_yuan_figure(labels: Sequence[str], values: Sequence[float | None], *, label: str) -> go.Figure:
    """Return each campaign's incremental annualised investment per yuan of incentive cost as horizontal bars:
    green above zero, red below; a campaign without a holdout or a cost has no bar."""
    shown = [round(v, 2) if v is not None else None for v in values]
    colours = ["#198754" if (v or 0) >= 0 else "#dc3545" for v in shown]
    fig = go.Figure(go.Bar(x=shown, y=list(labels), orientation="h", marker={"color": colours},
                           hovertemplate="%{y}<br>" + label + ": ¥%{x:,.2f}<extra></extra>"))
    fig.update_layout(showlegend=False, xaxis={"tickformat": ",.0f", "tickprefix": "¥", "zeroline": True},
                      yaxis={"type": "category", "autorange": "reversed", "automargin": True})
    return _layout(fig, 120 + 32 * max(len(labels), 1))

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
