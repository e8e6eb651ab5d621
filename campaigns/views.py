"""Campaign pages for staff (list, type picker, editor, campaign page) and the campaigns JSON API of spec §3.

The editor keeps the spec §2 document as JSON in one form field (`definition`) that its sections edit
(growth/static/campaigns.js); the server reads it with `campaigns.definition.parse` and nothing else, and
answers problems with their document paths, which the page puts next to the fields.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from campaigns import editor, presets, rules, saved_segments, services, upcoming
from campaigns import preview as previews
from campaigns import report as reports
from campaigns import results as figures
from campaigns.definition import CAMPAIGN_TYPE_LABELS, CAMPAIGN_TYPES, CLASS_LABELS, DefinitionInvalid
from campaigns.models import ACTION_LABELS, STATUS_LABELS, STATUSES, Campaign
from campaigns.progress import progress as run_progress
from campaigns.segments import count as audience_count
from campaigns.transfer import export_yaml
from channels.settings import load as load_channel_settings
from growth.acquisition.models import AcquisitionChannel
from growth.auth.models import StaffUser
from growth.auth.permissions import Permission, require, role_has
from growth.db import mark_rollback, request_session
from growth.errors import Conflict, DomainError, Forbidden, Invalid, Problem
from growth.inputs import ID_MAX, page_arg
from growth.money import fen_to_api
from growth.request_size import max_body
from growth.timeutil import utcnow

bp = Blueprint("campaigns", __name__)
api = Blueprint("campaigns_api", __name__, url_prefix="/api/v1")

API_DEFAULT_LIMIT = 50
API_MAX_LIMIT = 200
MAX_DOCUMENT = 512 * 1024  # a definition with long e-mail HTML still fits


class Malformed(Invalid):
    """A body that is not a JSON document at all (400)."""

    status = 400


def _body() -> Any:
    document = request.get_json(silent=True)
    if document is None:
        raise Malformed([Problem("", "malformed", _l("请求体须是 JSON（Content-Type: application/json）"))])
    return document


def _campaign(campaign_id: int):  # type: ignore[no-untyped-def]
    if not 0 < campaign_id <= ID_MAX:
        return services.get(0, session=request_session())  # the same 404 as any unknown id
    return services.get(campaign_id, session=request_session())


def _int_arg(name: str, default: int, *, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise Invalid([Problem(name, "invalid_value", _l("应为 %(low)s 到 %(high)s 之间的整数", low=low, high=high))])
    return int(raw)


@api.post("/campaigns")
@require(Permission.CAMPAIGNS_EDIT)
@max_body(MAX_DOCUMENT)
def create():  # type: ignore[no-untyped-def]
    session = request_session()
    campaign = services.create(_body(), session=session, actor_id=current_user.id, now=utcnow())
    return jsonify(services.as_json(campaign, session=session)), 201


@api.get("/campaigns")
@require(Permission.CAMPAIGNS_VIEW)
def listing():  # type: ignore[no-untyped-def]
    status, type_ = request.args.get("status") or None, request.args.get("type") or None
    problems = []
    if status is not None and status not in STATUSES:
        problems.append(Problem("status", "invalid_choice", _l("状态只能是：%(values)s", values=", ".join(STATUSES))))
    if type_ is not None and type_ not in CAMPAIGN_TYPES:
        problems.append(Problem("type", "invalid_choice",
                                _l("类型只能是：%(values)s", values=", ".join(CAMPAIGN_TYPES))))
    if problems:
        raise Invalid(problems)
    limit = _int_arg("limit", API_DEFAULT_LIMIT, low=1, high=API_MAX_LIMIT)
    offset = _int_arg("offset", 0, low=0, high=ID_MAX)
    session = request_session()
    rows, total = services.listing(session=session, status=status, type_=type_, limit=limit, offset=offset)
    staff = services.staff_emails(rows, session=session)
    return jsonify({"campaigns": [services.as_json(c, session=session, staff=staff) for c in rows], "total": total,
                    "limit": limit, "offset": offset})


@api.get("/campaigns/<int:campaign_id>")
@require(Permission.CAMPAIGNS_VIEW)
def show(campaign_id: int):  # type: ignore[no-untyped-def]
    return jsonify(services.as_json(_campaign(campaign_id), session=request_session()))


@api.put("/campaigns/<int:campaign_id>")
@require(Permission.CAMPAIGNS_EDIT)
@max_body(MAX_DOCUMENT)
def replace(campaign_id: int):  # type: ignore[no-untyped-def]
    session = request_session()
    campaign = services.replace(_campaign(campaign_id), _body(), session=session, actor_id=current_user.id,
                                now=utcnow())
    return jsonify(services.as_json(campaign, session=session))


def _step(campaign_id: int, action: str, note: str | None = None):  # type: ignore[no-untyped-def]
    session = request_session()
    campaign = services.transition(_campaign(campaign_id), action, session=session, actor_id=current_user.id,
                                   now=utcnow(), note=note)
    return jsonify(services.as_json(campaign, session=session))


@api.post("/campaigns/<int:campaign_id>/submit")
@require(Permission.CAMPAIGNS_EDIT)
def submit(campaign_id: int):  # type: ignore[no-untyped-def]
    return _step(campaign_id, "submit")


@api.post("/campaigns/<int:campaign_id>/approve")
@require(Permission.CAMPAIGNS_APPROVE)
def approve(campaign_id: int):  # type: ignore[no-untyped-def]
    return _step(campaign_id, "approve")


@api.post("/campaigns/<int:campaign_id>/reject")
@require(Permission.CAMPAIGNS_APPROVE)
def reject(campaign_id: int):  # type: ignore[no-untyped-def]
    body = _body()
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str):
        raise Invalid([Problem("reason", "missing", _l("请填写驳回原因"))])
    return _step(campaign_id, "reject", reason)


@api.post("/campaigns/<int:campaign_id>/pause")
@require(Permission.CAMPAIGNS_CONTROL)
def pause(campaign_id: int):  # type: ignore[no-untyped-def]
    return _step(campaign_id, "pause")


@api.post("/campaigns/<int:campaign_id>/resume")
@require(Permission.CAMPAIGNS_CONTROL)
def resume(campaign_id: int):  # type: ignore[no-untyped-def]
    return _step(campaign_id, "resume")


@api.post("/campaigns/<int:campaign_id>/preview")
@require(Permission.CAMPAIGNS_PREVIEW)
def preview(campaign_id: int):  # type: ignore[no-untyped-def]
    session = request_session()
    campaign = _campaign(campaign_id)
    definition = services.definition_of(campaign)
    settings = load_channel_settings(session=session, environment=current_app.config.get("CHANNEL_ENV") or {})
    shown = previews.preview(definition, campaign_id=campaign.id, session=session, now=utcnow(),
                             sign_name=settings["sms_sign_name"])
    cost = figures.estimate(definition, shown.audience - shown.holdout)
    budget = definition.budget
    return jsonify({**shown.as_json(), "estimated_cost": cost.as_json(),
                    "budget": {"max_grants": budget.max_grants, "per_investor": budget.per_investor,
                               "max_amount": None if budget.max_amount is None else fen_to_api(budget.max_amount),
                               "estimated_grants": cost.grants}})


@api.get("/campaigns/<int:campaign_id>/results")
@require(Permission.CAMPAIGNS_VIEW)
def results(campaign_id: int):  # type: ignore[no-untyped-def]
    return jsonify(figures.results(_campaign(campaign_id).id, session=request_session()))


@api.post("/kill-switch")
@require(Permission.KILL_SWITCH)
def kill_switch():  # type: ignore[no-untyped-def]
    body = _body()
    on = body.get("on") if isinstance(body, dict) else None
    if not isinstance(on, bool):
        raise Invalid([Problem("on", "missing", _l("请用 {\"on\": true} 或 {\"on\": false}"))])
    outcome = services.kill_switch(on, session=request_session(), actor_id=current_user.id, now=utcnow())
    return jsonify({"on": outcome.on, "paused_campaigns": outcome.paused_campaigns, "messages": outcome.messages})


@api.post("/campaigns/<int:campaign_id>/cancel")
@require(Permission.CAMPAIGNS_CONTROL)
def cancel(campaign_id: int):  # type: ignore[no-untyped-def]
    return _step(campaign_id, "cancel")


# --- pages ------------------------------------------------------------------------------------------

PER_PAGE = 25
RUN_STATUS_LABELS = {"selecting": _l("正在选取人群"), "selected": _l("已选取"), "cancelled": _l("已取消")}
BUDGET_LIMIT_LABELS = {"grants": _l("发放笔数"), "amount": _l("发放金额")}
STATUS_STYLES = {
    "draft": "secondary", "pending_approval": "warning", "active": "success", "scheduled": "info",
    "running": "primary", "paused": "dark", "finished": "light", "cancelled": "danger",
}
# The life-cycle buttons of the campaign page, each with the permission its route declares.
PAGE_ACTIONS = (
    ("submit", Permission.CAMPAIGNS_EDIT), ("approve", Permission.CAMPAIGNS_APPROVE),
    ("reject", Permission.CAMPAIGNS_APPROVE), ("pause", Permission.CAMPAIGNS_CONTROL),
    ("resume", Permission.CAMPAIGNS_CONTROL), ("cancel", Permission.CAMPAIGNS_CONTROL),
)
CONFIRMS = {
    "submit": _l("提交审批后，活动须经另一位审批人批准才会生效。确定提交？"),
    "approve": _l("批准后活动将按设定生效（事件触发或定时执行）。确定批准？"),
    "reject": _l("确定驳回？活动将退回草稿。"),
    "pause": _l("暂停后活动不再触发或执行，直到继续。确定暂停？"),
    "resume": _l("确定继续执行这个活动？"),
    "cancel": _l("取消后活动不能再恢复或修改。确定取消？"),
}


@bp.app_template_filter("campaign_status")
def campaign_status(status: str) -> str:
    """Return a campaign status's label (the code itself when unknown)."""
    label = STATUS_LABELS.get(status)
    return status if label is None else str(label)


def _sign_name() -> str:
    environment = current_app.config.get("CHANNEL_ENV") or {}
    return load_channel_settings(session=request_session(), environment=environment)["sms_sign_name"]


def _staff_names(ids: set[int | None], *, session: Any) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(StaffUser.id, StaffUser.name, StaffUser.email).where(StaffUser.id.in_(wanted)))
    return {staff_id: name or email for staff_id, name, email in rows}


@bp.route("/campaigns")
@require(Permission.CAMPAIGNS_VIEW)
def index():  # type: ignore[no-untyped-def]
    status = request.args.get("status") or None
    type_ = request.args.get("type") or None
    status = status if status in STATUSES else None
    type_ = type_ if type_ in CAMPAIGN_TYPES else None
    page = page_arg()
    session = request_session()
    rows, total = services.listing(session=session, status=status, type_=type_, limit=PER_PAGE,
                                   offset=(page - 1) * PER_PAGE)
    names = _staff_names({c.created_by for c in rows}, session=session)
    filter_args = {k: v for k, v in (("status", status), ("type", type_)) if v}
    held = role_has(current_user.role, Permission.KILL_SWITCH) and load_channel_settings(
        session=session, environment=current_app.config.get("CHANNEL_ENV") or {}).marketing_held()
    return render_template("campaigns/index.html", rows=rows, total=total, page=page, per_page=PER_PAGE,
                           calendar=upcoming.calendar(session=session, now=utcnow()), held=held,
                           calendar_days=upcoming.CALENDAR_DAYS, per_campaign=upcoming.PER_CAMPAIGN,
                           weekdays=upcoming.WEEKDAY_LABELS,
                           status=status, type_=type_, filter_args=filter_args, statuses=STATUS_LABELS,
                           types=CAMPAIGN_TYPE_LABELS, classes=CLASS_LABELS, styles=STATUS_STYLES, names=names)


def _acquisition_channels() -> dict[str, str]:
    rows = request_session().execute(select(AcquisitionChannel.code, AcquisitionChannel.name)
                                     .order_by(AcquisitionChannel.code))
    return {code: f"{name} ({code})" for code, name in rows}


def _editor(document: Any, *, campaign: Campaign | None, problems: list[Problem] | None = None,
            status: int = 200, version: int | None = None) -> tuple[str, int]:
    """Render the editor on a document (a dict, or the text that was posted when it was not JSON)."""
    session = request_session()
    text = document if isinstance(document, str) else json.dumps(document, ensure_ascii=False, indent=2)
    schema_problems = list(problems or [])
    compliance: list[Problem] = []
    if not schema_problems and isinstance(document, dict):
        checked = editor.check(document)
        schema_problems, compliance = checked.errors, checked.compliance
    segments = [saved_segments.as_json(s) for s in saved_segments.listing(session=session)]
    returns_to_draft = campaign is not None and campaign.status not in ("draft", *rules.ENDED)
    html = render_template(
        "campaigns/editor.html", campaign=campaign, document_text=text, problems=schema_problems,
        compliance=compliance, catalogue=editor.catalogue(acquisition_channels=_acquisition_channels()),
        segments=segments, styles=STATUS_STYLES, returns_to_draft=returns_to_draft,
        version=version if version is not None else (campaign.version if campaign else None),
        types=CAMPAIGN_TYPE_LABELS, problems_json=[p.as_json() for p in schema_problems + compliance],
    )
    return html, status


def _posted_document() -> tuple[Any, list[Problem]]:
    """Return the posted definition (a dict, or the raw text) and the problem when it is not a JSON object."""
    raw = request.form.get("definition", "")
    try:
        document = json.loads(raw)
    except ValueError:
        return raw, [Problem("", "malformed", _l("活动定义不是有效的 JSON"))]
    if not isinstance(document, dict):
        return raw, [Problem("", "not_an_object", _l("活动定义须是一个 JSON 对象"))]
    return document, []


@bp.get("/campaigns/new")
@require(Permission.CAMPAIGNS_EDIT)
def new():  # type: ignore[no-untyped-def]
    type_ = request.args.get("type")
    if type_ not in CAMPAIGN_TYPES:
        return render_template("campaigns/new.html", cards=presets.cards())
    return _editor(presets.preset(type_, now=utcnow()), campaign=None)


@bp.post("/campaigns/new")
@require(Permission.CAMPAIGNS_EDIT)
@max_body(MAX_DOCUMENT)
def create_page():  # type: ignore[no-untyped-def]
    document, problems = _posted_document()
    if problems:
        return _editor(document, campaign=None, problems=problems, status=422)
    try:
        campaign = services.create(document, session=request_session(), actor_id=current_user.id, now=utcnow())
    except DefinitionInvalid as exc:
        mark_rollback()
        return _editor(document, campaign=None, problems=list(exc.problems), status=422)
    flash(_("已保存为草稿。检查无误后请提交审批。"), "success")
    return redirect(url_for("campaigns.detail", campaign_id=campaign.id))


def _page_campaign(campaign_id: int) -> Campaign:
    return services.get(campaign_id if 0 < campaign_id <= ID_MAX else 0, session=request_session())


@bp.get("/campaigns/<int:campaign_id>")
@require(Permission.CAMPAIGNS_VIEW)
def detail(campaign_id: int):  # type: ignore[no-untyped-def]
    session = request_session()
    campaign = _page_campaign(campaign_id)
    definition = services.definition_of(campaign)
    history = services.history(campaign, session=session)
    names = _staff_names({campaign.created_by, campaign.approved_by, campaign.submitted_by}
                         | {t.actor_id for t in history}, session=session)
    scheduled = definition.schedule is not None
    actions = []
    for action, permission in PAGE_ACTIONS:
        if not role_has(current_user.role, permission):
            continue
        try:
            rules.after(action, campaign.status, scheduled=scheduled, paused_from=campaign.paused_from)
        except rules.WrongState:
            continue
        actions.append(action)
    own = campaign.created_by == current_user.id
    outcome = reports.report(campaign, definition, session=session, now=utcnow())
    return render_template(
        "campaigns/show.html", campaign=campaign, definition=definition, history=list(reversed(history)),
        report=outcome, run_labels=RUN_STATUS_LABELS, budget_labels=BUDGET_LIMIT_LABELS,
        names=names, actions=actions, own=own, confirms=CONFIRMS, action_labels=ACTION_LABELS,
        compliance=services.compliance_of(campaign), styles=STATUS_STYLES, types=CAMPAIGN_TYPE_LABELS,
        classes=CLASS_LABELS, words=editor, previews=editor.preview(definition, sign_name=_sign_name()),
        channel_labels=editor.CHANNEL_LABELS, editable=campaign.status not in rules.ENDED,
    )


@bp.get("/campaigns/<int:campaign_id>/progress")
@require(Permission.CAMPAIGNS_VIEW)
def progress_json(campaign_id: int):  # type: ignore[no-untyped-def]
    campaign = _page_campaign(campaign_id)
    return jsonify({"status": campaign.status, **run_progress(campaign.id, session=request_session()).as_json()})


# One rule for GET and POST: two rules on one path would answer a too-big id with 405 instead of 404.
@bp.route("/campaigns/<int:campaign_id>/edit", methods=["GET", "POST"])
@require(Permission.CAMPAIGNS_EDIT)
@max_body(MAX_DOCUMENT)
def edit(campaign_id: int):  # type: ignore[no-untyped-def]
    campaign = _page_campaign(campaign_id)
    if request.method == "GET":
        if campaign.status in rules.ENDED:
            flash(_("已结束或已取消的活动不能修改"), "warning")
            return redirect(url_for("campaigns.detail", campaign_id=campaign.id))
        return _editor(campaign.definition, campaign=campaign)
    document, problems = _posted_document()
    version = request.form.get("version", "")
    if problems:
        return _editor(document, campaign=campaign, problems=problems, status=422, version=_int(version))
    if version != str(campaign.version):  # someone saved since this editor was opened: do not overwrite it
        flash(_("活动刚被别人改过，请刷新后再试。"), "danger")
        return _editor(document, campaign=campaign, status=409, version=_int(version))
    before = campaign.status
    try:
        services.replace(campaign, document, session=request_session(), actor_id=current_user.id, now=utcnow())
    except DefinitionInvalid as exc:
        mark_rollback()
        return _editor(document, campaign=campaign, problems=list(exc.problems), status=422, version=_int(version))
    except Conflict as exc:
        mark_rollback()
        flash(str(exc.message), "danger")
        return redirect(url_for("campaigns.detail", campaign_id=campaign_id))
    if before != "draft" and campaign.status == "draft":
        flash(_("已保存。修改后活动已退回草稿，需要重新提交审批。"), "warning")
    else:
        flash(_("已保存。"), "success")
    return redirect(url_for("campaigns.detail", campaign_id=campaign_id))


def _int(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) <= ID_MAX else None


def _act(campaign_id: int, action: str, note: str | None = None):  # type: ignore[no-untyped-def]
    campaign = _page_campaign(campaign_id)
    back = redirect(url_for("campaigns.detail", campaign_id=campaign.id))
    try:
        services.transition(campaign, action, session=request_session(), actor_id=current_user.id, now=utcnow(),
                            note=note)
    except Invalid as exc:
        mark_rollback()
        lines = "；".join(f"{p.path}: {p.message}" if p.path and p.path != "reason" else str(p.message)
                         for p in exc.problems)
        flash(f"{exc.message} {lines}", "danger")
        return back
    except (Forbidden, Conflict) as exc:
        mark_rollback()
        flash(str(exc.message), "danger")
        return back
    flash(_("已%(action)s：活动现为“%(status)s”。", action=ACTION_LABELS[action],
            status=STATUS_LABELS.get(campaign.status, campaign.status)), "success")
    return back


@bp.post("/campaigns/<int:campaign_id>/submit")
@require(Permission.CAMPAIGNS_EDIT)
def submit_page(campaign_id: int):  # type: ignore[no-untyped-def]
    return _act(campaign_id, "submit")


@bp.post("/campaigns/<int:campaign_id>/approve")
@require(Permission.CAMPAIGNS_APPROVE)
def approve_page(campaign_id: int):  # type: ignore[no-untyped-def]
    return _act(campaign_id, "approve")


@bp.post("/campaigns/<int:campaign_id>/reject")
@require(Permission.CAMPAIGNS_APPROVE)
def reject_page(campaign_id: int):  # type: ignore[no-untyped-def]
    return _act(campaign_id, "reject", request.form.get("reason", ""))


@bp.post("/campaigns/<int:campaign_id>/pause")
@require(Permission.CAMPAIGNS_CONTROL)
def pause_page(campaign_id: int):  # type: ignore[no-untyped-def]
    return _act(campaign_id, "pause")


@bp.post("/campaigns/<int:campaign_id>/resume")
@require(Permission.CAMPAIGNS_CONTROL)
def resume_page(campaign_id: int):  # type: ignore[no-untyped-def]
    return _act(campaign_id, "resume")


@bp.post("/campaigns/<int:campaign_id>/cancel")
@require(Permission.CAMPAIGNS_CONTROL)
def cancel_page(campaign_id: int):  # type: ignore[no-untyped-def]
    return _act(campaign_id, "cancel")


@bp.get("/campaigns/<int:campaign_id>/export.yaml")
@require(Permission.CAMPAIGNS_VIEW)
def export(campaign_id: int):  # type: ignore[no-untyped-def]
    campaign = _page_campaign(campaign_id)
    text = export_yaml([campaign.id], session=request_session())
    return Response(text, mimetype="application/x-yaml",
                    headers={"Content-Disposition": f'attachment; filename="campaign-{campaign.id}.yaml"'})


# --- the kill switch ----------------------------------------------------------------------------------


def _kill_switch_page(status: int = 200) -> tuple[str, int]:
    session = request_session()
    state = services.kill_switch_state(session=session, environment=current_app.config.get("CHANNEL_ENV") or {})
    names = _staff_names({state.changed_by}, session=session)
    return render_template("campaigns/kill_switch.html", state=state, names=names,
                           max_reason=services.MAX_REASON), status


@bp.route("/campaigns/kill-switch", methods=["GET", "POST"])
@require(Permission.KILL_SWITCH)
def kill_switch_page():  # type: ignore[no-untyped-def]
    if request.method == "GET":
        return _kill_switch_page()
    wanted, reason = request.form.get("on"), request.form.get("reason", "").strip()
    if wanted not in ("true", "false"):
        flash(_("请选择开启或关闭。"), "danger")
        return _kill_switch_page(400)
    if not reason:
        flash(_("请填写原因（会写入审计日志）。"), "danger")
        return _kill_switch_page(422)
    if len(reason) > services.MAX_REASON:
        flash(_("原因太长（最多 %(n)s 字）", n=services.MAX_REASON), "danger")
        return _kill_switch_page(422)
    outcome = services.kill_switch(wanted == "true", session=request_session(), actor_id=current_user.id,
                                   now=utcnow(), reason=reason)
    if outcome.on:
        flash(_("营销一键暂停已开启：暂停了 %(campaigns)s 个营销活动，扣住 %(messages)s 条营销消息。",
                campaigns=len(outcome.paused_campaigns), messages=outcome.messages), "warning")
    else:
        flash(_("营销一键暂停已关闭：放行 %(messages)s 条被扣住的营销消息。活动仍保持暂停，需逐个继续执行。",
                messages=outcome.messages), "success")
    return redirect(url_for("campaigns.kill_switch_page"))


# --- the editor's JSON helpers (session + CSRF header, like the pages) ---------------------------------


def _json_body() -> dict[str, Any] | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


def _malformed():  # type: ignore[no-untyped-def]
    return jsonify({"error": _("请求体须是 JSON 对象"), "errors": []}), 400


@bp.post("/campaigns/audience-count")
@require(Permission.CAMPAIGNS_EDIT)
@max_body(MAX_DOCUMENT)
def count_audience():  # type: ignore[no-untyped-def]
    body = _json_body()
    if body is None:
        return _malformed()
    try:
        audience = editor.parse_audience(body.get("audience", {}))
    except DefinitionInvalid as exc:
        # 200: the question was well asked; the audience being edited is just not complete yet.
        return jsonify({"errors": [p.as_json() for p in exc.problems]})
    return jsonify({"count": audience_count(audience, session=request_session(), now=utcnow())})


@bp.post("/campaigns/check")
@require(Permission.CAMPAIGNS_EDIT)
@max_body(MAX_DOCUMENT)
def check_document():  # type: ignore[no-untyped-def]
    body = _json_body()
    if body is None:
        return _malformed()
    return jsonify(editor.check(body, sign_name=_sign_name()).as_json())


@bp.post("/campaigns/segments")
@require(Permission.CAMPAIGNS_EDIT)
def save_segment():  # type: ignore[no-untyped-def]
    body = _json_body()
    if body is None:
        return _malformed()
    session = request_session()
    try:
        segment = saved_segments.save(body.get("name"), body.get("audience", {}), session=session,
                                      actor_id=current_user.id, now=utcnow())
    except Invalid as exc:
        mark_rollback()
        return jsonify({"error": str(exc.message), "errors": [p.as_json() for p in exc.problems]}), 422
    return jsonify({"segment": saved_segments.as_json(segment),
                    "segments": [saved_segments.as_json(s) for s in saved_segments.listing(session=session)]})


@bp.post("/campaigns/segments/<int:segment_id>/delete")
@require(Permission.CAMPAIGNS_EDIT)
def delete_segment(segment_id: int):  # type: ignore[no-untyped-def]
    session = request_session()
    try:
        saved_segments.delete(segment_id if segment_id <= ID_MAX else 0, session=session, actor_id=current_user.id)
    except DomainError as exc:
        mark_rollback()
        return jsonify({"error": str(exc.message)}), exc.status
    return jsonify({"segments": [saved_segments.as_json(s) for s in saved_segments.listing(session=session)]})
