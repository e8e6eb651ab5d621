"""Dashboard pages and the JSON API (funnel, referrals, channel economics, cohorts)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import plotly
from flask import Blueprint, Response, current_app, jsonify, render_template, request, send_file, session
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup

from campaigns.definition import CAMPAIGN_TYPE_LABELS
from campaigns.models import STATUS_LABELS as CAMPAIGN_STATUS_LABELS
from dashboards import campaign_results, charts, cohorts, kpis, queries, referral_growth
from dashboards.metrics import (
    FIRST_INVESTMENT_STEP,
    FUNNEL_STEPS,
    GROUP_BY,
    HOLDOUT_LABEL,
    HOLDOUT_SUFFIX,
    NO_CAMPAIGN_KEY,
    ChannelFigures,
    FunnelGroup,
    FunnelResult,
    WeekSpan,
    conversion_rates,
    day_range_text,
    economics_json,
    economics_total,
    funnel,
    immature_since,
    largest_groups,
    median,
    merge_groups,
    percentile,
    week_label,
    week_span,
)
from growth.acquisition import rules as acquisition_rules
from growth.auth.permissions import Permission, public, require, role_has
from growth.db import request_session
from growth.errors import DomainError, Invalid, Problem
from growth.exports import csv_response
from growth.investors.models import MILESTONE_LABELS
from growth.investors.rules import REVEALED_KEY, format_phone, mask_name, mask_phone, reveal_holds
from growth.money import fen_to_api
from growth.referrals import services as referral_services
from growth.referrals.models import FLAG_REASONS, REASON_LABELS, REJECTION_LABELS, STATUS_LABELS
from growth.timeutil import iso_week_key, local_date, utcnow

api = Blueprint("dashboards_api", __name__, url_prefix="/api/v1")
bp = Blueprint("dashboards", __name__, url_prefix="/dashboards")

PLOTLY_JS = os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")
# Registrations outside these days are refused with a message (the calendar's ends used to crash).
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
MAX_WINDOW_DAYS = 3650
CHART_GROUPS = 10  # groups drawn one by one in the channel chart; the rest are summed as "others"


@dataclass(frozen=True)
class FunnelQuery:
    """Validated funnel parameters."""

    start: date
    end: date
    window_days: int
    group_by: str


def _parse_day(args: dict[str, str], name: str, default: date) -> date:
    raw = args.get(name)
    if not raw:
        return default
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise DomainError(_("日期应为 YYYY-MM-DD 格式的有效日期，例如 2026-11-30。"), field=name) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise DomainError(_("日期应在 %(first)s 至 %(last)s 之间。", first=FIRST_DAY.isoformat(),
                            last=LAST_DAY.isoformat()), field=name)
    return day


def _funnel_query(args: dict[str, str]) -> FunnelQuery:
    default_start, default_end = queries.default_range(local_date(utcnow()))
    start = _parse_day(args, "start", default_start)
    end = _parse_day(args, "end", default_end)
    if start > end:
        raise DomainError(_("开始日期不能晚于结束日期。"), field="start")
    raw_window = args.get("window_days") or "30"
    if not (raw_window.isascii() and raw_window.isdigit()) or not 1 <= int(raw_window) <= MAX_WINDOW_DAYS:
        raise DomainError(_("转化窗口应为 1 到 %(max)d 之间的整数（天）。", max=MAX_WINDOW_DAYS), field="window_days")
    group_by = args.get("group_by") or "none"
    if group_by not in GROUP_BY:
        raise DomainError(_("分组方式应为 none、channel、week、campaign 或 referral。"), field="group_by")
    return FunnelQuery(start, end, int(raw_window), group_by)


def _compute(q: FunnelQuery, now: datetime | None = None, *, money: bool = False,
             times: bool = False) -> FunnelResult:
    """Return the funnel: from the daily rollup when it can answer, else from the cohort; `times` adds the times
    to convert (always a pass over the cohort's milestones), `money` the first investments' money."""
    session = request_session()
    result = queries.funnel_from_rollup(session=session, start=q.start, end=q.end, window_days=q.window_days,
                                        group_by=q.group_by, now=now)
    if result is not None and not times:
        return result
    live = funnel(queries.funnel_cohort(session=session, start=q.start, end=q.end, window_days=q.window_days,
                                        campaigns=q.group_by == "campaign", money=money and result is None),
                  window_days=q.window_days, group_by=q.group_by, now=now)
    if result is None:
        return live
    seconds = {g.key: g.seconds for g in live.groups}
    result.total.seconds = live.total.seconds
    for group in result.groups:
        group.seconds = seconds.get(group.key, group.seconds)
    return result


def _as_json(q: FunnelQuery, result: FunnelResult) -> dict[str, Any]:
    """Return the contract's shape (shared/spec/events-api.md): every group, sorted by key."""
    return {
        "steps": list(FUNNEL_STEPS),
        "window_days": q.window_days,
        "total": {"counts": result.total.counts},
        "groups": [{"key": g.key, "label": g.label, "counts": g.counts} for g in result.groups],
    }


@api.route("/funnel")
@require(Permission.FUNNEL_VIEW)
def funnel_api():  # type: ignore[no-untyped-def]
    q = _funnel_query(request.args.to_dict())
    return jsonify(_as_json(q, _compute(q)))


def _step_times(group: FunnelGroup) -> list[dict[str, float | None]]:
    """Return per step the median and p90 seconds from registration (None where nobody reached it)."""
    return [{"median_seconds": median(times), "p90_seconds": percentile(times, 0.9)} for times in group.seconds]


def _details_json(group: FunnelGroup, clicks: tuple[int, int] | None) -> dict[str, Any]:
    """Return what the funnel's contract leaves out: money of the first investments, times to convert, clicks."""
    data: dict[str, Any] = {
        "key": group.key, "label": group.label, "registered": group.registered,
        "first_investors": group.counts[FIRST_INVESTMENT_STEP],
        "first_investment_amount": fen_to_api(group.first_investment_fen),
        "first_investment_annualised": fen_to_api(group.first_investment_annualised_fen),
        "time_to_convert": dict(zip(FUNNEL_STEPS[1:], _step_times(group)[1:], strict=True)),
    }
    if clicks is not None:
        data["clicks"], data["click_registrations"] = clicks
    return data


def _clicks(q: FunnelQuery) -> dict[str, tuple[int, int]]:
    return queries.click_conversion(session=request_session(), start=q.start, end=q.end, window_days=q.window_days)


def _details(q: FunnelQuery, result: FunnelResult, clicks: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """Return the funnel's details: the total and each group (clicks per channel group, and in all)."""
    every = (sum(c for c, _r in clicks.values()), sum(r for _c, r in clicks.values()))
    return {
        "start": q.start.isoformat(), "end": q.end.isoformat(), "window_days": q.window_days, "group_by": q.group_by,
        "total": _details_json(result.total, every),
        "groups": [_details_json(g, clicks.get(g.key, (0, 0)) if q.group_by == "channel" else None)
                   for g in result.groups],
    }


@api.route("/dashboards/funnel-details")
@require(Permission.FUNNEL_VIEW)
def funnel_details_api():  # type: ignore[no-untyped-def]
    q = _funnel_query(request.args.to_dict())
    return jsonify(_details(q, _compute(q, money=True, times=True), _clicks(q)))


@dataclass(frozen=True)
class GroupRow:
    """One row of the groups table as people see it."""

    group: FunnelGroup
    label: str
    rates: list[float | None]
    week: WeekSpan | None = None
    clicks: tuple[int, int] | None = None  # tracking-link clicks and the registrations they became (channels)

    @property
    def show_key(self) -> bool:
        """Return whether the key adds anything beside the label (a channel code unlike its name)."""
        return self.clicks is not None and self.group.key != self.label


def _group_label(q: FunnelQuery, group: FunnelGroup) -> str:
    """Return a group's label in the page's language (the API's labels are data, in Chinese)."""
    if q.group_by == "referral":
        return _("被邀请") if group.key == "referred" else _("非邀请")
    if q.group_by == "campaign":
        if group.key == NO_CAMPAIGN_KEY:
            return _("未参加活动")
        if group.key.endswith(HOLDOUT_SUFFIX):
            return _("%(name)s（对照组）", name=group.label.removesuffix(HOLDOUT_LABEL % ""))
    return group.label


def _rows(q: FunnelQuery, groups: list[FunnelGroup], today: date,
          clicks: dict[str, tuple[int, int]]) -> list[GroupRow]:
    if q.group_by == "week":  # in calendar order, newest last, every week of the range
        rows = []
        for g in groups:
            span = week_span(g.key, start=q.start, end=q.end, today=today)
            rows.append(GroupRow(g, week_label(span), conversion_rates(g.counts), week=span))
        return rows
    ranked, _rest = largest_groups(groups, len(groups))
    return [GroupRow(g, _group_label(q, g), conversion_rates(g.counts),
                     clicks=clicks.get(g.key, (0, 0)) if q.group_by == "channel" else None) for g in ranked]


def _group_chart(q: FunnelQuery, rows: list[GroupRow], labels: list[str], show_all: bool) -> tuple[str | None, int]:
    """Return the groups chart as JSON and how many groups it sums as "others"."""
    if not rows:
        return None, 0
    people = _("人")
    if q.group_by == "week":
        ticks = [f"{r.week.key}<br>{day_range_text(r.week.monday, r.week.sunday)}" for r in rows if r.week]
        figure = charts.weekly_conversion_figure(
            ticks, [r.group.registered for r in rows], labels[1:],
            [[r.rates[k] for r in rows] for k in range(1, len(labels))], [r.group.immature > 0 for r in rows],
            people=people, registered_label=labels[0])
        return figure.to_json(), 0
    shown, rest = largest_groups([r.group for r in rows], len(rows) if show_all else CHART_GROUPS)
    series = [charts.Series(_group_label(q, g), g.counts) for g in shown]
    if rest:
        others = merge_groups(rest)
        series.append(charts.Series(_("其他（%(n)d 个分组）", n=len(rest)), others.counts, other=True))
    return charts.grouped_conversion_figure(labels, series, people=people).to_json(), len(rest)


def _step_hours(group: FunnelGroup) -> tuple[list[float | None], list[float | None]]:
    """Return per step after registration the median and p90 time to reach it, in hours."""
    times = _step_times(group)[1:]

    def hours(seconds: float | None) -> float | None:
        return None if seconds is None else seconds / 3600

    return [hours(t["median_seconds"]) for t in times], [hours(t["p90_seconds"]) for t in times]


def _funnel_figures(q: FunnelQuery, result: FunnelResult, rows: list[GroupRow], labels: list[str]) -> dict[str, str]:
    """Return the time-to-convert chart, and with groups the money of their first investments (Plotly JSON)."""
    medians, p90s = _step_hours(result.total)
    times = _step_times(result.total)[1:]
    figures = {"times": charts.time_to_convert_figure(
        labels[1:], medians, p90s, median_label=_("中位用时"), p90_label=_("P90 用时"),
        ticks=[duration_text(h * 3600) for h in charts.TIME_TICK_HOURS],
        texts=([duration_text(t["median_seconds"]) for t in times], [duration_text(t["p90_seconds"]) for t in times]),
    ).to_json()}
    if rows:
        money_rows = [r for r in rows if r.group.first_investment_fen]
        figures["money"] = charts.first_investment_money_figure(
            [r.label for r in money_rows], [r.group.first_investment_fen / 100 for r in money_rows],
            [r.group.first_investment_annualised_fen / 100 for r in money_rows],
            amount_label=_("首投金额"), annualised_label=_("首投年化金额"), yuan=_("元")).to_json()
    return figures


@bp.route("/funnel")
@require(Permission.FUNNEL_VIEW)
def funnel_page():  # type: ignore[no-untyped-def]
    args = request.args.to_dict()
    labels = [str(MILESTONE_LABELS[s]) for s in FUNNEL_STEPS]
    try:
        q = _funnel_query(args)
    except DomainError as err:
        return render_template("dashboards/funnel.html", q=None, form=args, error=err.message, labels=labels), 400
    now = utcnow()
    result = _compute(q, now, money=True, times=True)
    clicks = _clicks(q)
    if args.get("format") == "csv":
        return _funnel_csv(labels, _as_json(q, result), _details(q, result, clicks))
    show_all = args.get("show") == "all"
    rows = _rows(q, result.groups, local_date(now), clicks)
    grouped, others = _group_chart(q, rows, labels, show_all)
    total = result.total
    form = {"start": q.start.isoformat(), "end": q.end.isoformat(), "window_days": str(q.window_days),
            "group_by": q.group_by}
    every_click = (sum(c for c, _r in clicks.values()), sum(r for _c, r in clicks.values()))
    return render_template(
        "dashboards/funnel.html", q=q, form=form, error=None, labels=labels, total=total,
        rates=conversion_rates(total.counts), rows=rows, grouped=grouped, others=others, show_all=show_all,
        figure=charts.funnel_figure(labels, total.counts, people=_("人")).to_json(),
        figures=_funnel_figures(q, result, rows, labels), times=_step_times(total), clicks=every_click,
        immature_since=immature_since(now, q.window_days), chart_groups=CHART_GROUPS,
        group_title=str(GROUP_TITLES[q.group_by]),
    )


GROUP_TITLES = {"none": "", "channel": _l("按渠道"), "week": _l("按注册周"), "campaign": _l("按首个参加的活动"),
                "referral": _l("按是否被邀请")}
TIME_COLUMNS = ("median_seconds", "p90_seconds")


def _funnel_csv(labels: list[str], data: dict, details: dict) -> Response:
    """Return the funnel as CSV: counts per step, then clicks, first-investment money and times to convert."""
    steps = FUNNEL_STEPS[1:]
    head: list[object] = ["key", "label", *labels, "clicks", "click_registrations", "first_investment_amount",
            "first_investment_annualised", *(f"{step}_{col}" for step in steps for col in TIME_COLUMNS)]

    def extra(d: dict) -> list[object]:
        times = d["time_to_convert"]
        return [d.get("clicks", ""), d.get("click_registrations", ""), d["first_investment_amount"],
                d["first_investment_annualised"],
                *("" if times[s][col] is None else round(times[s][col]) for s in steps for col in TIME_COLUMNS)]

    rows: list[list[object]] = [head, ["total", "total", *data["total"]["counts"], *extra(details["total"])]]
    rows += [[g["key"], g["label"], *g["counts"], *extra(d)] for g, d in zip(data["groups"], details["groups"],
                                                                             strict=True)]
    return csv_response(rows, "funnel.csv")


@bp.app_template_filter("duration")
def duration_text(seconds: float | None) -> str:
    """Format a time to convert for people: "45 分钟", "5.2 小时", "3.4 天"."""
    if seconds is None:
        return "—"
    if seconds < 3600:
        return _("%(n)s 分钟", n=f"{seconds / 60:.0f}")
    if seconds < 48 * 3600:
        return _("%(n)s 小时", n=_short(seconds / 3600))
    return _("%(n)s 天", n=_short(seconds / 86400))


def _short(value: float) -> str:
    """Format a time for people: one decimal below 10 ("1.5", "6"), whole numbers above ("43", "1,234")."""
    return f"{value:.1f}".removesuffix(".0") if value < 10 else f"{value:,.0f}"


@bp.route("/assets/plotly.min.js")
@bp.route("/assets/plotly.min.<fingerprint>.js")  # the app fills in the content hash and strips it (growth.assets)
@public
def plotly_js():  # type: ignore[no-untyped-def]
    return send_file(PLOTLY_JS, mimetype="text/javascript", max_age=86400)


# ---------------------------------------------------------------- the referral program (growth.referrals)

REFERRAL_WEEKS = 12  # the default range: the last twelve weeks


def _referral_range(args: dict[str, str]) -> tuple[date, date]:
    today = local_date(utcnow())
    start = _parse_day(args, "start", today - timedelta(weeks=REFERRAL_WEEKS - 1))
    end = _parse_day(args, "end", today)
    if start > end:
        raise DomainError(_("开始日期不能晚于结束日期。"), field="start")
    if (end - start).days > 366 * 2:
        raise DomainError(_("时间段最长两年。"), field="start")
    return start, end


@bp.route("/referrals")
@require(Permission.REFERRALS_VIEW)
def referral_stats():  # type: ignore[no-untyped-def]
    args = request.args.to_dict()
    try:
        start, end = _referral_range(args)
    except DomainError as err:
        return render_template("dashboards/referrals.html", rows=None, form=args, error=err.message), 400
    weeks = referral_services.program_stats(session=request_session(), start=start, end=end)
    top, flags = _referral_growth(start, end)
    labels = [_("邀请访问"), _("邀请注册"), _("首投达标"), _("确认")]
    if args.get("format") == "csv":
        if args.get("table") in ("referrers", "flags"):
            return _referral_tables_csv(args["table"], start, end, top, flags)
        rows: list[list[object]] = [["week", "week_start", "invites", "registrations", "qualified", "confirmed",
                                     "rewarded", "cohort", "referred_by_cohort", "k_factor"]]
        rows += [[iso_week_key(w.week_start), w.week_start.isoformat(), w.invites, w.registrations, w.qualified,
                  w.confirmed, "" if w.rewarded is None else w.rewarded, w.cohort, w.referred_by_cohort,
                  "" if w.k_factor is None else f"{w.k_factor:.4f}"] for w in weeks]
        return csv_response(rows, f"referrals-{start.isoformat()}-{end.isoformat()}.csv")
    ticks = [iso_week_key(w.week_start) for w in weeks]
    series = [(str(labels[0]), [w.invites for w in weeks]), (str(labels[1]), [w.registrations for w in weeks]),
              (str(labels[2]), [w.qualified for w in weeks]), (str(labels[3]), [w.confirmed for w in weeks])]
    figure = charts.referral_weeks_figure(ticks, series, [w.k_factor for w in weeks], k_label=_("K 因子"))
    totals = {"invites": sum(w.invites for w in weeks), "registrations": sum(w.registrations for w in weeks),
              "qualified": sum(w.qualified for w in weeks), "confirmed": sum(w.confirmed for w in weeks),
              "cohort": sum(w.cohort for w in weeks), "referred": sum(w.referred_by_cohort for w in weeks)}
    return render_template("dashboards/referrals.html", rows=weeks, totals=totals, figure=figure.to_json(),
                           form={"start": start.isoformat(), "end": end.isoformat()}, error=None,
                           week_key=iso_week_key, top=[(r, *_referrer_shown(r)) for r in top], flags=flags,
                           reason_rows=referral_growth.reason_rows(flags), reason_labels=REASON_LABELS,
                           flag_reasons=FLAG_REASONS, rejection_labels=REJECTION_LABELS,
                           may_open_investors=role_has(current_user.role, Permission.INVESTORS_VIEW))


# ---------------------------------------------------------------- channel economics (campaigns-api.md §7)

DEFAULT_WINDOW_DAYS = 30
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class EconomicsQuery:
    """Validated channel-economics parameters: registration days [start, end] and the window."""

    start: date
    end: date
    window_days: int


def _api_day(args: dict[str, str], name: str, default: date, problems: list[Problem]) -> date:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        day = date.fromisoformat(raw) if _ISO_DAY.fullmatch(raw) else None
    except ValueError:  # 2026-02-30
        day = None
    if day is None:
        problems.append(Problem(name, "invalid_date", _l("日期应为 YYYY-MM-DD 格式的有效日期，例如 2026-11-30。")))
        return default
    if not FIRST_DAY <= day <= LAST_DAY:
        problems.append(Problem(name, "out_of_range", _l("日期应在 %(first)s 至 %(last)s 之间。",
                                                         first=FIRST_DAY.isoformat(), last=LAST_DAY.isoformat())))
    return day


def _window_days(raw: str | None, problems: list[Problem]) -> int:
    if raw is None or raw == "":
        return DEFAULT_WINDOW_DAYS
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_WINDOW_DAYS:
        problems.append(Problem("window_days", "invalid_value",
                                _l("转化窗口应为 1 到 %(max)d 之间的整数（天）。", max=MAX_WINDOW_DAYS)))
        return DEFAULT_WINDOW_DAYS
    return int(raw)


def economics_query(args: dict[str, str]) -> EconomicsQuery:
    """Read start, end (default: the last 30 days) and window_days (default 30); raise Invalid listing every problem."""
    problems: list[Problem] = []
    default_start, default_end = queries.default_range(local_date(utcnow()))
    start = _api_day(args, "start", default_start, problems)
    end = _api_day(args, "end", default_end, problems)
    window = _window_days(args.get("window_days"), problems)
    if not problems and start > end:
        problems.append(Problem("start", "start_after_end", _l("开始日期不能晚于结束日期。")))
    if problems:
        raise Invalid(problems)
    return EconomicsQuery(start, end, window)


def _economics(q: EconomicsQuery, now: datetime) -> tuple[list[ChannelFigures], ChannelFigures]:
    rows = queries.channel_economics(session=request_session(), start=q.start, end=q.end,
                                     window_days=q.window_days, now=now)
    return rows, economics_total(rows)


@api.route("/acquisition/economics")
@require(Permission.ECONOMICS_VIEW)
def economics_api():  # type: ignore[no-untyped-def]
    q = economics_query(request.args.to_dict())
    rows, total = _economics(q, utcnow())
    return jsonify({"start": q.start.isoformat(), "end": q.end.isoformat(), "window_days": q.window_days,
                    "channels": [_economics_json(q, r) for r in rows], "total": _economics_json(q, total)})


ECONOMICS_CSV_COLUMNS = ("code", "label", "cost", "clicks", "registrations", "first_investors",
                         "first_investment_amount", "annualised_amount", "incentive_cost", "cac",
                         "cost_per_registration", "annualised_per_yuan", "net_roi", "payback_days")
FEE_RATE = "dashboards.fee_rate"  # app.extensions: the configured annual service-fee rate (None: not set)


def _economics_json(q: EconomicsQuery, row: ChannelFigures) -> dict[str, Any]:
    return economics_json(row, fee_rate=current_app.extensions[FEE_RATE], window_days=q.window_days)


def _economics_csv(q: EconomicsQuery, rows: list[ChannelFigures], total: ChannelFigures) -> Response:
    # Payback only with a configured service-fee rate: without one the column would be empty throughout.
    columns = [c for c in ECONOMICS_CSV_COLUMNS if c != "payback_days" or current_app.extensions[FEE_RATE]]
    table: list[list[object]] = [list(columns)]
    for row in [*rows, total]:
        data = _economics_json(q, row)
        table.append(["" if data[c] is None else data[c] for c in columns])
    return csv_response(table, f"channel-economics-{q.start.isoformat()}-{q.end.isoformat()}-{q.window_days}d.csv")


def _economics_figures(rows: list[ChannelFigures]) -> dict[str, str]:
    """Return the page's charts as Plotly JSON: spend against annualised investment, unit costs, net ROI."""
    names = [r.label for r in rows]
    yuan = _("元")
    spend = charts.spend_and_return_figure(
        names, [r.cost_fen / 100 for r in rows], [r.incentive_fen / 100 for r in rows],
        [r.annualised_fen / 100 for r in rows], cost_label=_("获客成本"), incentive_label=_("激励成本"),
        annualised_label=_("首窗口年化投资额"), yuan=yuan)
    unit = charts.unit_cost_figure(
        names, [None if r.cac_fen is None else r.cac_fen / 100 for r in rows],
        [None if r.cost_per_registration_fen is None else r.cost_per_registration_fen / 100 for r in rows],
        cac_label=_("每首投人成本（CAC）"), registration_label=_("每注册成本"), yuan=yuan)
    # Channels without an acquisition cost (organic, referral) would show incentives alone against their
    # investment, tens of thousands of percent that flatten every paid channel: the chart compares spend.
    paid = [r for r in rows if r.cost_fen > 0]
    roi = charts.net_roi_figure([r.label for r in paid],
                                [None if r.net_roi is None else float(r.net_roi) for r in paid],
                                label=_("扣除激励后的净 ROI（有获客成本的渠道）"))
    return {"spend": spend.to_json(), "unit": unit.to_json(), "roi": roi.to_json()}


@bp.route("/economics")
@require(Permission.ECONOMICS_VIEW)
def economics_page():  # type: ignore[no-untyped-def]
    args = request.args.to_dict()
    today = local_date(utcnow())
    problems: list[Problem] = []
    try:
        period = acquisition_rules.resolve_period(args.get("period"), args.get("start"), args.get("end"), today=today)
    except acquisition_rules.RuleError as err:
        problems.append(Problem("period", "invalid_period", err.message))
        period = acquisition_rules.default_period(today)
    window = _window_days(args.get("window_days"), problems)
    form = {"window_days": args.get("window_days") or str(DEFAULT_WINDOW_DAYS)}
    context = {"period": period, "periods": acquisition_rules.PERIODS, "form": form,
               "errors": [str(p.message) for p in problems], "fee_rate": current_app.extensions[FEE_RATE]}
    if problems:
        return render_template("dashboards/economics.html", q=None, **context), 400
    q = EconomicsQuery(period.start, period.end, window)
    now = utcnow()
    rows, total = _economics(q, now)
    if args.get("format") == "csv":
        return _economics_csv(q, rows, total)
    figures = _economics_figures(rows) if rows else None
    return render_template(
        "dashboards/economics.html", q=q, rows=rows, total=total, data=[_economics_json(q, r) for r in rows],
        total_data=_economics_json(q, total), figures=figures,
        csv_args=dict(period.url_args(), window_days=window, format="csv"),
        immature_since=immature_since(now, q.window_days), **context)


# ---------------------------------------------------------------- home KPIs (issue 12)

def _kpi_period_or_problem(raw: str | None, now: datetime) -> tuple[kpis.KpiPeriod, Problem | None]:
    """Return the period the URL names, or the default and the problem with what it named."""
    try:
        return kpis.kpi_period(raw, now=now), None
    except kpis.KpiError:
        problem = Problem("period", "invalid_value", _l("统计期间应为 today、7d、30d 或 this_month。"))
        return kpis.kpi_period(None, now=now), problem


def _kpi_links(period: kpis.KpiPeriod) -> dict[str, tuple[Permission, str, dict[str, str]]]:
    """Return, per KPI, the dashboard behind it: (permission, endpoint, arguments selecting the same days)."""
    days = {"start": period.start.isoformat(), "end": period.end.isoformat()}
    custom = {"period": "custom", **days}
    return {
        "registrations": (Permission.FUNNEL_VIEW, "dashboards.funnel_page", days),
        "first_investors": (Permission.FUNNEL_VIEW, "dashboards.funnel_page", days),
        "volume": (Permission.ECONOMICS_VIEW, "dashboards.economics_page", custom),
        "incentive_spend": (Permission.REWARDS_VIEW, "rewards.index", {}),
    }


def _kpi_figures(report: kpis.KpiReport, *, compact: bool) -> dict[str, str]:
    """Return each KPI's daily trend against the previous period as Plotly JSON (none for a one-day period)."""
    if report.period.days < 2:
        return {}
    ticks = [d.day.strftime("%m-%d") for d in report.days]
    before = [d.day.strftime("%m-%d") for d in report.previous_days]
    out = {}
    for key in kpis.KPI_KEYS:
        money = key in kpis.MONEY_KPIS
        scale = 100 if money else 1
        figure = charts.kpi_trend_figure(
            ticks, [d.value(key) / scale for d in report.days], before,
            [d.value(key) / scale for d in report.previous_days], name=_("本期"), previous_name=_("上期"),
            money=money, height=48 if compact else 220, compact=compact)
        out[key] = figure.to_json()
    return out


def _kpi_context(report: kpis.KpiReport, *, compact: bool, endpoint: str) -> dict[str, Any]:
    return {"report": report, "labels": kpis.KPI_LABELS, "periods": kpis.KPI_PERIODS,
            "links": _kpi_links(report.period), "figures": _kpi_figures(report, compact=compact),
            "period_endpoint": endpoint, "change_text": kpis.change_text}


def kpi_panel(args: Mapping[str, str]) -> Markup:
    """Render the home page's KPI strip (registered as a home panel by the composition root)."""
    now = utcnow()
    period, problem = _kpi_period_or_problem(args.get("period"), now)
    report = kpis.kpi_report(session=request_session(), period=period)
    # A rendered, autoescaped template: safe to place as it is.
    return Markup(render_template(  # noqa: S704
        "dashboards/_kpi_panel.html", error=problem and str(problem.message),
        **_kpi_context(report, compact=True, endpoint="home.index")))


@bp.route("/kpis")
@require(Permission.KPIS_VIEW)
def kpis_page():  # type: ignore[no-untyped-def]
    args = request.args.to_dict()
    period, problem = _kpi_period_or_problem(args.get("period"), utcnow())
    if problem:
        return render_template("dashboards/kpis.html", report=None, error=str(problem.message),
                               periods=kpis.KPI_PERIODS), 400
    report = kpis.kpi_report(session=request_session(), period=period)
    if args.get("format") == "csv":
        return csv_response(kpis.report_csv_rows(report),
                            f"kpis-{period.key}-{period.start.isoformat()}-{period.end.isoformat()}.csv")
    return render_template("dashboards/kpis.html", error=None,
                           **_kpi_context(report, compact=False, endpoint="dashboards.kpis_page"))


@api.route("/dashboards/kpis")
@require(Permission.KPIS_VIEW)
def kpis_api():  # type: ignore[no-untyped-def]
    period, problem = _kpi_period_or_problem(request.args.get("period"), utcnow())
    if problem:
        raise Invalid([problem])
    return jsonify(kpis.report_json(kpis.kpi_report(session=request_session(), period=period)))


# ---------------------------------------------------------------- referral growth (issue 12)

def _referral_growth(start: date, end: date) -> tuple[list[referral_growth.TopReferrer], referral_growth.FlagSummary]:
    s = request_session()
    return (referral_growth.top_referrers(session=s, start=start, end=end),
            referral_growth.fraud_flags(session=s, start=start, end=end))


def _referrer_shown(r: referral_growth.TopReferrer) -> tuple[str, str]:
    """Return a top referrer's name and phone: in full only for a role with personal data and an audited reveal of
    this investor (the investor page's), else masked."""
    full = (role_has(current_user.role, Permission.INVESTORS_PII)
            and reveal_holds(session.get(REVEALED_KEY), r.investor_id, utcnow().timestamp()))
    if full:
        return r.name or "", format_phone(r.phone)
    return mask_name(r.name), mask_phone(r.phone)


REFERRER_CSV_COLUMNS = ("rank", "user_id", "name", "phone", "invites", "registrations", "qualified", "confirmed",
                        "rewards_cost")


def _referral_tables_csv(table: str, start: date, end: date, top: list[referral_growth.TopReferrer],
                         flags: referral_growth.FlagSummary) -> Response:
    """Return the top referrers (always masked: an export is not a reveal) or the fraud reasons as CSV."""
    rows: list[list[object]]
    if table == "referrers":
        rows = [list(REFERRER_CSV_COLUMNS)]
        rows += [[n, d["user_id"], d["name"], d["phone"], d["invites"], d["registrations"], d["qualified"],
                  d["confirmed"], d["rewards_cost"]]
                 for n, d in enumerate((referral_growth.referrer_json(r) for r in top), 1)]
    else:
        rows = [["code", "kind", "label", "referrals"]]
        rows += [[code, kind, str(REASON_LABELS.get(code, code)), n]
                 for code, kind, n in referral_growth.reason_rows(flags)]
        rows += [[name, "outcome", label, n] for name, label, n in _flag_outcomes(flags)]
    return csv_response(rows, f"referral-{table}-{start.isoformat()}-{end.isoformat()}.csv")


def _flag_outcomes(flags: referral_growth.FlagSummary) -> list[tuple[str, str, int]]:
    """Return the outcome counts beside the reasons: (key, label, count)."""
    return [("referrals", _("邀请注册"), flags.referrals), ("flagged", _("命中风控规则"), flags.flagged),
            ("in_review", str(STATUS_LABELS["in_review"]), flags.in_review), ("blocked", _("拦截"), flags.blocked),
            ("rejected", str(STATUS_LABELS["rejected"]), flags.rejected)]


def referral_api_range(args: Mapping[str, str]) -> tuple[date, date]:
    """Read start and end (default: the last twelve weeks); raise Invalid listing every problem."""
    problems: list[Problem] = []
    today = local_date(utcnow())
    start = _api_day(dict(args), "start", today - timedelta(weeks=REFERRAL_WEEKS - 1), problems)
    end = _api_day(dict(args), "end", today, problems)
    if not problems and start > end:
        problems.append(Problem("start", "start_after_end", _l("开始日期不能晚于结束日期。")))
    if not problems and (end - start).days > 366 * 2:
        problems.append(Problem("start", "out_of_range", _l("时间段最长两年。")))
    if problems:
        raise Invalid(problems)
    return start, end


@api.route("/dashboards/referrals")
@require(Permission.REFERRALS_VIEW)
def referrals_api():  # type: ignore[no-untyped-def]
    start, end = referral_api_range(request.args.to_dict())
    weeks = referral_services.program_stats(session=request_session(), start=start, end=end)
    top, flags = _referral_growth(start, end)
    return jsonify({
        "start": start.isoformat(), "end": end.isoformat(),
        "weeks": [{"week": iso_week_key(w.week_start), "week_start": w.week_start.isoformat(), "invites": w.invites,
                   "registrations": w.registrations, "qualified": w.qualified, "confirmed": w.confirmed,
                   "rewarded": w.rewarded, "cohort": w.cohort, "referred_by_cohort": w.referred_by_cohort,
                   "k_factor": None if w.k_factor is None else f"{w.k_factor:.4f}"} for w in weeks],
        "top_referrers": [referral_growth.referrer_json(r) for r in top],
        "fraud": referral_growth.flags_json(flags),
    })
# ---------------------------------------------------------------- campaign results across campaigns (活动效果)


CHART_NAME_CHARS = 12  # a campaign's name in a chart's axis, so the plot keeps its width on a phone


def _campaign_label(row: campaign_results.CampaignResult) -> str:
    name = row.name if len(row.name) <= CHART_NAME_CHARS else row.name[:CHART_NAME_CHARS - 1] + "…"
    return f"#{row.id} {name}"


def _campaign_figures(rows: list[campaign_results.CampaignResult]) -> dict[str, str | None]:
    """Return the page's charts as Plotly JSON: the lifts as a forest plot and the incremental amount per yuan."""
    points = [charts.LiftPoint(_campaign_label(r), r.lift.value, r.lift.low, r.lift.high)
              for r in rows if r.lift is not None]
    forest = charts.lift_forest_figure(points, label=_("转化提升"),
                                       hover=_("%(level)s 置信区间", level="95%")) if points else None
    costed = [r for r in rows if r.per_yuan is not None]
    per_yuan = charts.per_yuan_figure([_campaign_label(r) for r in costed],
                                      [float(r.per_yuan) for r in costed if r.per_yuan is not None],
                                      label=_("每元激励成本的增量年化投资额")) if costed else None
    return {"forest": forest.to_json() if forest else None, "per_yuan": per_yuan.to_json() if per_yuan else None}


def _campaign_rows(q: campaign_results.CampaignQuery) -> list[campaign_results.CampaignResult]:
    rows = campaign_results.campaign_results(session=request_session(), start=q.period.start, end=q.period.end,
                                             type=q.type, status=q.status)
    return campaign_results.ordered(rows, q.sort, q.order)


@api.route("/dashboards/campaigns")
@require(Permission.CAMPAIGNS_VIEW)
def campaigns_api():  # type: ignore[no-untyped-def]
    q = campaign_results.parse_query(request.args.to_dict(), today=local_date(utcnow()))
    rows = _campaign_rows(q)
    return jsonify({
        "start": q.period.start.isoformat(), "end": q.period.end.isoformat(), "type": q.type, "status": q.status,
        "sort": q.sort, "order": q.order, "page": q.page, "per_page": q.per_page, "total": len(rows),
        "campaigns": [campaign_results.result_json(r) for r in campaign_results.page_of(rows, q.page, q.per_page)],
        "totals": campaign_results.totals_json(campaign_results.totals(rows)),
    })


@bp.route("/campaigns")
@require(Permission.CAMPAIGNS_VIEW)
def campaigns_page():  # type: ignore[no-untyped-def]
    args = request.args.to_dict()
    today = local_date(utcnow())
    context: dict[str, Any] = {"periods": acquisition_rules.PERIODS, "round_fen": campaign_results.round_fen,
                               "types": CAMPAIGN_TYPE_LABELS,
                               "statuses": CAMPAIGN_STATUS_LABELS, "sorts": _campaign_sorts(), "form": args}
    try:
        q = campaign_results.parse_query(args, today=today)
    except Invalid as err:
        try:
            period = acquisition_rules.resolve_period(args.get("period"), args.get("start"), args.get("end"),
                                                      today=today)
        except acquisition_rules.RuleError:
            period = acquisition_rules.default_period(today)
        return render_template("dashboards/campaigns.html", q=None, period=period,
                               errors=[str(p.message) for p in err.problems], **context), 400
    rows = _campaign_rows(q)
    if args.get("format") == "csv":
        table: list[list[object]] = [list(campaign_results.CSV_COLUMNS)]
        table += [campaign_results.csv_row(r) for r in rows]
        return csv_response(table, f"campaign-results-{q.period.start.isoformat()}-{q.period.end.isoformat()}.csv")
    shown = campaign_results.page_of(rows, q.page, q.per_page)
    return render_template(
        "dashboards/campaigns.html", q=q, period=q.period, errors=[], rows=shown, total=len(rows),
        totals=campaign_results.totals(rows), figures=_campaign_figures(shown) if shown else None,
        **context)


def _campaign_sorts() -> dict[str, str]:
    return {"members": _("成员数"), "lift": _("转化提升"), "per_yuan": _("每元激励增量年化"),
            "incremental": _("增量年化投资额"), "cost": _("激励成本"), "treated_rate": _("实验组转化率"),
            "entered": _("最近入组时间"), "name": _("活动名称")}
# ---------------------------------------------------------------- cohorts (issue 12): retention and re-investment

_ISO_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")


@dataclass(frozen=True)
class CohortQuery:
    """Validated cohort parameters: registration (and maturity) months first..last, channel, base, window."""

    first: int
    last: int
    channel: str | None
    base: str
    days: int

    def url_args(self) -> dict[str, str]:
        """Return the parameters as they appear in the URL."""
        args = {"from": cohorts.month_key(self.first), "to": cohorts.month_key(self.last), "base": self.base,
                "days": str(self.days)}
        if self.channel:
            args["channel"] = self.channel
        return args


def _month(args: dict[str, str], name: str, default: int, problems: list[Problem]) -> int:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    if not _ISO_MONTH.fullmatch(raw) or not 1 <= int(raw[5:]) <= 12:
        problems.append(Problem(name, "invalid_month", _l("月份应为 YYYY-MM 格式，例如 2026-03。")))
        return default
    month = int(raw[:4]) * 12 + int(raw[5:]) - 1
    if not cohorts.month_index(FIRST_DAY) <= month <= cohorts.month_index(LAST_DAY):
        problems.append(Problem(name, "out_of_range", _l("月份应在 %(first)s 至 %(last)s 之间。",
                                                         first=FIRST_DAY.isoformat()[:7],
                                                         last=LAST_DAY.isoformat()[:7])))
        return default
    return month


def cohort_query(args: dict[str, str], *, current: int, channel_codes: set[str] | None = None) -> CohortQuery:
    """Read from/to (default: the last 12 months), channel, base and days; raise Invalid listing every problem."""
    problems: list[Problem] = []
    default_first, default_last = cohorts.month_range_default(current)
    first = _month(args, "from", default_first, problems)
    last = _month(args, "to", default_last, problems)
    if not problems:
        if first > last:
            problems.append(Problem("from", "start_after_end", _l("开始月份不能晚于结束月份。")))
        elif last > current:
            problems.append(Problem("to", "future_month", _l("结束月份不能晚于本月。")))
        elif last - first + 1 > cohorts.MAX_MONTHS:
            problems.append(Problem("from", "range_too_long", _l("月份范围最长 %(n)d 个月。", n=cohorts.MAX_MONTHS)))
    channel = args.get("channel") or None
    if channel is not None and channel_codes is not None and channel not in channel_codes:
        problems.append(Problem("channel", "unknown_channel", _l("没有这个渠道。")))
    base = args.get("base") or cohorts.BASES[0]
    if base not in cohorts.BASES:
        problems.append(Problem("base", "invalid_value",
                                _l("基数应为 investors（首投人数）或 registrations（注册人数）。")))
        base = cohorts.BASES[0]
    raw_days = args.get("days") or str(cohorts.DEFAULT_DAYS)
    days = cohorts.DEFAULT_DAYS
    if not (raw_days.isascii() and raw_days.isdigit()) or not 1 <= int(raw_days) <= cohorts.MAX_DAYS:
        problems.append(Problem("days", "invalid_value",
                                _l("复投窗口应为 1 到 %(max)d 之间的整数（天）。", max=cohorts.MAX_DAYS)))
    else:
        days = int(raw_days)
    if problems:
        raise Invalid(problems)
    return CohortQuery(first, last, channel, base, days)


def _cohort_figures(q: CohortQuery, now: datetime) -> tuple[cohorts.Retention, cohorts.Reinvestment]:
    session = request_session()
    current = cohorts.month_index(local_date(now))
    sizes, cells = cohorts.retention_counts(session=session, first=q.first, last=q.last, channel=q.channel, now=now)
    matured, again = cohorts.reinvestment_counts(session=session, first=q.first, last=q.last, days=q.days,
                                                 channel=q.channel)
    return (cohorts.retention(sizes, cells, first=q.first, last=q.last, current=current, base=q.base),
            cohorts.reinvestment(matured, again, first=q.first, last=q.last, days=q.days, now=now))


@api.route("/dashboards/cohorts")
@require(Permission.FUNNEL_VIEW)
def cohorts_api():  # type: ignore[no-untyped-def]
    now = utcnow()
    args = request.args.to_dict()
    codes = {code for code, _name in cohorts.channels(session=request_session())} if args.get("channel") else None
    q = cohort_query(args, current=cohorts.month_index(local_date(now)), channel_codes=codes)
    table, again = _cohort_figures(q, now)
    return jsonify({
        "from": cohorts.month_key(q.first), "to": cohorts.month_key(q.last), "channel": q.channel, "base": q.base,
        "current_month": cohorts.month_key(table.current), "columns": table.width,
        "cohorts": cohorts.retention_json(table),
        "reinvestment": {"days": q.days, "months": [cohorts.maturity_json(m) for m in again.months],
                         "total": cohorts.maturity_json(again.total)},
    })


RETENTION_CSV_COLUMNS = ("cohort", "registrations", "first_investors", "base", "offset", "month", "investors", "rate",
                         "incomplete")
REINVESTMENT_CSV_COLUMNS = ("month", "matured", "principal", "investors", "reinvested_investors", "reinvestments",
                            "reinvested_amount", "rate_by_count", "rate_by_amount", "incomplete")


def _csv_value(value: object) -> object:
    """Return a value as the CSV writes it: booleans as JSON spells them, None as an empty cell."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def _cohort_csv(q: CohortQuery, table: cohorts.Retention, again: cohorts.Reinvestment, which: str) -> Response:
    span = f"{cohorts.month_key(q.first)}-{cohorts.month_key(q.last)}"
    rows: list[list[object]]
    if which == "reinvestment":
        rows = [list(REINVESTMENT_CSV_COLUMNS)]
        for m in [*again.months, again.total]:
            data = cohorts.maturity_json(m)
            data["month"] = data["month"] or "total"
            rows.append([_csv_value(data[c]) for c in REINVESTMENT_CSV_COLUMNS])
        return csv_response(rows, f"reinvestment-{span}-{q.days}d.csv")
    rows = [list(RETENTION_CSV_COLUMNS)]
    for c in cohorts.retention_json(table):
        for cell in c["cells"]:
            if cell is not None:
                rows.append([c["month"], c["registrations"], c["first_investors"], c["base"], cell["offset"],
                             cell["month"], cell["investors"], "" if cell["rate"] is None else cell["rate"],
                             "true" if cell["incomplete"] else "false"])
    return csv_response(rows, f"cohorts-{span}-{q.base}.csv")


def _cohort_charts(table: cohorts.Retention, again: cohorts.Reinvestment) -> dict[str, str | None]:
    """Return the page's charts as Plotly JSON: the retention heatmap and re-investment by maturity month."""
    heat = None
    if not table.empty:
        heat = charts.retention_heatmap_figure(
            [cohorts.month_key(c.month) for c in table.cohorts], list(cohorts.column_labels(table.width)),
            [[None if cell is None or cell.rate is None else round(float(cell.rate) * 100, 1) for cell in c.cells]
             for c in table.cohorts],
            [[None if cell is None else cell.investors for cell in c.cells] for c in table.cohorts],
            [[cell is not None and cell.incomplete for cell in c.cells] for c in table.cohorts],
            people=_("人"), incomplete_label=_("本月未结束"), rate_label=_("占比"))
    maturity = None
    if not again.empty:
        maturity = charts.reinvestment_figure(
            [cohorts.month_key(m.month) for m in again.months], [m.principal_fen / 100 for m in again.months],
            [m.reinvested_fen / 100 for m in again.months],
            [None if m.rate_by_count is None else round(float(m.rate_by_count) * 100, 1) for m in again.months],
            [None if m.rate_by_amount is None else round(float(m.rate_by_amount) * 100, 1) for m in again.months],
            principal_label=_("到期本金"), reinvested_label=_("复投金额"), count_label=_("复投率（按人数）"),
            amount_label=_("复投率（按金额）"), yuan=_("元"))
    return {"heatmap": heat.to_json() if heat else None, "maturity": maturity.to_json() if maturity else None}


@bp.route("/cohorts")
@require(Permission.FUNNEL_VIEW)
def cohorts_page():  # type: ignore[no-untyped-def]
    args = request.args.to_dict()
    now = utcnow()
    current = cohorts.month_index(local_date(now))
    channel_list = cohorts.channels(session=request_session())
    context: dict[str, Any] = {"channels": channel_list, "bases": cohorts.BASES, "form": args,
                               "current": cohorts.month_key(current), "max_days": cohorts.MAX_DAYS}
    try:
        q = cohort_query(args, current=current, channel_codes={code for code, _name in channel_list})
    except Invalid as err:
        return render_template("dashboards/cohorts.html", q=None, errors=[str(p.message) for p in err.problems],
                               **context), 400
    table, again = _cohort_figures(q, now)
    if args.get("format") == "csv":
        return _cohort_csv(q, table, again, args.get("table") or "retention")
    context["form"] = q.url_args()
    return render_template(
        "dashboards/cohorts.html", q=q, errors=[], table=table, again=again, figures=_cohort_charts(table, again),
        month_key=cohorts.month_key, labels=cohorts.column_labels(table.width), percent=cohorts.percent_text,
        channel_name=dict(channel_list).get(q.channel or "", q.channel), **context)
