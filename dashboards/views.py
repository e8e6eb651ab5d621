"""Dashboard pages and the JSON API (funnel, referrals, channel economics, cohorts)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import plotly
from flask import Blueprint, Response, jsonify, render_template, request, send_file
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from dashboards import charts, cohorts, queries
from dashboards.metrics import (
    FUNNEL_STEPS,
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
    merge_groups,
    week_label,
    week_span,
)
from growth.acquisition import rules as acquisition_rules
from growth.auth.permissions import Permission, public, require
from growth.db import request_session
from growth.errors import DomainError, Invalid, Problem
from growth.exports import csv_response
from growth.investors.models import MILESTONE_LABELS
from growth.referrals import services as referral_services
from growth.timeutil import iso_week_key, local_date, utcnow

api = Blueprint("dashboards_api", __name__, url_prefix="/api/v1")
bp = Blueprint("dashboards", __name__, url_prefix="/dashboards")

GROUP_BY = ("none", "channel", "week")
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
        raise DomainError(_("分组方式应为 none、channel 或 week。"), field="group_by")
    return FunnelQuery(start, end, int(raw_window), group_by)


def _compute(q: FunnelQuery, now: datetime | None = None) -> FunnelResult:
    members = queries.funnel_cohort(session=request_session(), start=q.start, end=q.end)
    return funnel(members, window_days=q.window_days, group_by=q.group_by, now=now)


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


@dataclass(frozen=True)
class GroupRow:
    """One row of the groups table as people see it."""

    group: FunnelGroup
    label: str
    rates: list[float | None]
    week: WeekSpan | None = None
    other_count: int = 0  # for the "others" row: how many groups it sums

    @property
    def show_key(self) -> bool:
        """Return whether the key adds anything beside the label (a channel code unlike its name)."""
        return self.week is None and not self.other_count and self.group.key != self.label


def _rows(q: FunnelQuery, groups: list[FunnelGroup], today: date) -> list[GroupRow]:
    if q.group_by == "week":  # in calendar order, newest last, every week of the range
        rows = []
        for g in groups:
            span = week_span(g.key, start=q.start, end=q.end, today=today)
            rows.append(GroupRow(g, week_label(span), conversion_rates(g.counts), week=span))
        return rows
    ranked, _rest = largest_groups(groups, len(groups))
    return [GroupRow(g, g.label, conversion_rates(g.counts)) for g in ranked]


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
    series = [charts.Series(g.label, g.counts) for g in shown]
    if rest:
        others = merge_groups(rest)
        series.append(charts.Series(_("其他（%(n)d 个分组）", n=len(rest)), others.counts, other=True))
    return charts.grouped_conversion_figure(labels, series, people=people).to_json(), len(rest)


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
    result = _compute(q, now)
    if args.get("format") == "csv":
        return _funnel_csv(labels, _as_json(q, result))
    show_all = args.get("show") == "all"
    rows = _rows(q, result.groups, local_date(now))
    grouped, others = _group_chart(q, rows, labels, show_all)
    total = result.total
    form = {"start": q.start.isoformat(), "end": q.end.isoformat(), "window_days": str(q.window_days),
            "group_by": q.group_by}
    return render_template(
        "dashboards/funnel.html", q=q, form=form, error=None, labels=labels, total=total,
        rates=conversion_rates(total.counts), rows=rows, grouped=grouped, others=others, show_all=show_all,
        figure=charts.funnel_figure(labels, total.counts, people=_("人")).to_json(),
        immature_since=immature_since(now, q.window_days), chart_groups=CHART_GROUPS,
    )


def _funnel_csv(labels: list[str], data: dict) -> Response:
    rows = [["key", "label", *labels], ["total", "total", *data["total"]["counts"]]]
    rows += [[g["key"], g["label"], *g["counts"]] for g in data["groups"]]
    return csv_response(rows, "funnel.csv")


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
    labels = [_("邀请访问"), _("邀请注册"), _("首投达标"), _("确认")]
    if args.get("format") == "csv":
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
                           week_key=iso_week_key)


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
                    "channels": [economics_json(r) for r in rows], "total": economics_json(total)})


ECONOMICS_CSV_COLUMNS = ("code", "label", "cost", "clicks", "registrations", "first_investors",
                         "first_investment_amount", "annualised_amount", "incentive_cost", "cac",
                         "cost_per_registration", "annualised_per_yuan", "net_roi")


def _economics_csv(q: EconomicsQuery, rows: list[ChannelFigures], total: ChannelFigures) -> Response:
    table: list[list[object]] = [list(ECONOMICS_CSV_COLUMNS)]
    for row in [*rows, total]:
        data = economics_json(row)
        table.append(["" if data[c] is None else data[c] for c in ECONOMICS_CSV_COLUMNS])
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
               "errors": [str(p.message) for p in problems]}
    if problems:
        return render_template("dashboards/economics.html", q=None, **context), 400
    q = EconomicsQuery(period.start, period.end, window)
    now = utcnow()
    rows, total = _economics(q, now)
    if args.get("format") == "csv":
        return _economics_csv(q, rows, total)
    figures = _economics_figures(rows) if rows else None
    return render_template(
        "dashboards/economics.html", q=q, rows=rows, total=total, data=[economics_json(r) for r in rows],
        total_data=economics_json(total), figures=figures, csv_args=dict(period.url_args(), window_days=window,
                                                                         format="csv"),
        immature_since=immature_since(now, q.window_days), **context)


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
