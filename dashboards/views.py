"""Dashboard pages and the JSON API (funnel)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date

import plotly
from flask import Blueprint, Response, jsonify, render_template, request, send_file

from dashboards import charts, queries
from dashboards.metrics import FUNNEL_STEPS, conversion_rates, funnel
from growth.auth.permissions import Permission, public, require
from growth.db import request_session
from growth.errors import DomainError
from growth.exports import csv_response
from growth.investors.views import MILESTONE_LABELS
from growth.timeutil import local_date, utcnow

api = Blueprint("dashboards_api", __name__, url_prefix="/api/v1")
bp = Blueprint("dashboards", __name__, url_prefix="/dashboards")

GROUP_BY = ("none", "channel", "week")
PLOTLY_JS = os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")


@dataclass(frozen=True)
class FunnelQuery:
    """Validated funnel parameters."""

    start: date
    end: date
    window_days: int
    group_by: str


def _funnel_query(args: dict[str, str]) -> FunnelQuery:
    default_start, default_end = queries.default_range(local_date(utcnow()))
    try:
        start = date.fromisoformat(args["start"]) if args.get("start") else default_start
        end = date.fromisoformat(args["end"]) if args.get("end") else default_end
    except ValueError:
        raise DomainError("start/end: must be dates in YYYY-MM-DD form / 日期格式应为 YYYY-MM-DD") from None
    if start > end:
        raise DomainError("start: must not be after end / 开始日期不能晚于结束日期")
    raw_window = args.get("window_days") or "30"
    if not raw_window.isdigit() or not 1 <= int(raw_window) <= 3650:
        raise DomainError("window_days: must be an integer from 1 to 3650 / 转化窗口应为 1–3650 的整数")
    group_by = args.get("group_by") or "none"
    if group_by not in GROUP_BY:
        raise DomainError("group_by: must be none, channel or week / 分组方式应为 none、channel 或 week")
    return FunnelQuery(start, end, int(raw_window), group_by)


def _compute(q: FunnelQuery) -> dict:
    members = queries.funnel_cohort(session=request_session(), start=q.start, end=q.end)
    total, groups = funnel(members, window_days=q.window_days, group_by=q.group_by)
    return {
        "steps": list(FUNNEL_STEPS),
        "window_days": q.window_days,
        "total": {"counts": total},
        "groups": [{"key": g.key, "label": g.label, "counts": g.counts} for g in groups],
    }


@api.route("/funnel")
@require(Permission.FUNNEL_VIEW)
def funnel_api():  # type: ignore[no-untyped-def]
    return jsonify(_compute(_funnel_query(request.args.to_dict())))


@bp.route("/funnel")
@require(Permission.FUNNEL_VIEW)
def funnel_page():  # type: ignore[no-untyped-def]
    try:
        q = _funnel_query(request.args.to_dict())
        error = None
    except DomainError as err:
        q, error = _funnel_query({}), err.message
    data = _compute(q)
    labels = [str(MILESTONE_LABELS[s]) for s in FUNNEL_STEPS]
    total = data["total"]["counts"]
    if request.args.get("format") == "csv":
        return _funnel_csv(labels, data)
    figure = charts.funnel_figure(labels, total).to_json()
    grouped = None
    if data["groups"]:
        grouped = charts.grouped_conversion_figure(
            labels, [(g["label"], g["counts"]) for g in data["groups"][:12]]).to_json()
    return render_template(
        "dashboards/funnel.html", q=q, error=error, labels=labels, data=data, figure=figure, grouped=grouped,
        rates=conversion_rates(total),
        group_rates={g["key"]: conversion_rates(g["counts"]) for g in data["groups"]},
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
