"""Dashboard pages and the JSON API (funnel)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import plotly
from flask import Blueprint, Response, jsonify, render_template, request, send_file
from flask_babel import gettext as _

from dashboards import charts, queries
from dashboards.metrics import (
    FUNNEL_STEPS,
    FunnelGroup,
    FunnelResult,
    WeekSpan,
    conversion_rates,
    day_range_text,
    funnel,
    immature_since,
    largest_groups,
    merge_groups,
    week_label,
    week_span,
)
from growth.auth.permissions import Permission, public, require
from growth.db import request_session
from growth.errors import DomainError
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
