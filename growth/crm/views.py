"""CRM pages: the worklist, a task with its call and note forms, reassignment, the rules' settings, and sending
an investor a templated message (`/investors/<id>/message`, blueprint `crm_messages`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

from channels.models import CHANNEL_LABELS, CLASS_LABELS
from channels.models import STATUS_LABELS as MESSAGE_STATUS_LABELS
from channels.receipts import unsubscribe_link_for
from channels.settings import load as load_channel_settings
from growth import overrides
from growth.acquisition import rules as period_rules
from growth.acquisition.services import period_bounds
from growth.auth.permissions import Permission, require, role_has
from growth.crm import messages, rules, saved_searches, services, team
from growth.crm.jobs import defaults_of
from growth.crm.models import (
    OUTCOME_LABELS,
    REASON_LABELS,
    SEND_CHECK_LABELS,
    SLA_LABELS,
    STATUS_LABELS,
    TASK_STATUSES,
)
from growth.db import mark_rollback, request_session, short_write
from growth.errors import DomainError, Forbidden
from growth.exports import csv_response
from growth.inputs import form_id, id_arg, page_arg
from growth.investors.rules import REVEALED_KEY, mask_phone, reveal_holds
from growth.investors.tags import tags_of
from growth.timeutil import SHANGHAI, as_utc, local_date, utcnow

bp = Blueprint("crm", __name__, url_prefix="/crm")
# The send page lives under the investor it is about; its own blueprint, as `crm` is prefixed with /crm.
messages_bp = Blueprint("crm_messages", __name__)
PER_PAGE = 25


def _labels() -> dict[str, Any]:
    return {"reason_labels": REASON_LABELS, "status_labels": STATUS_LABELS, "sla_labels": SLA_LABELS,
            "outcome_labels": OUTCOME_LABELS, "mask_phone": mask_phone}


def _may_manage() -> bool:
    return role_has(current_user.role, Permission.CRM_MANAGE)


def _filter() -> services.TaskFilter:
    scope = request.args.get("scope", "mine")
    if scope not in services.SCOPES or (scope == "all" and not _may_manage()):
        scope = "mine"
    status = request.args.get("status", "open")
    reason = request.args.get("reason") or None
    return services.TaskFilter(scope=scope, reason=reason if reason in REASON_LABELS else None,
                               status=status if status in TASK_STATUSES else "open")


@bp.route("")
@require(Permission.CRM_WORK)
def worklist():  # type: ignore[no-untyped-def]
    flt, page, now = _filter(), page_arg(), utcnow()
    rows, total = services.worklist(flt, session=request_session(), user_id=current_user.id, page=page,
                                    per_page=PER_PAGE)
    tags = tags_of([row["task"].investor_id for row in rows], session=request_session())
    return render_template("crm/worklist.html", rows=rows, total=total, page=page, per_page=PER_PAGE, flt=flt,
                           tags=tags,
                           sla=lambda task: rules.sla_state(task.due_at, now), may_manage=_may_manage(),
                           scopes=services.SCOPES, filter_args=_filter_args(flt), export_cap=_export_cap(),
                           may_export_pii=_may_export_pii(),
                           saved_searches=saved_searches.listing("worklist", user_id=current_user.id,
                                                                 session=request_session()), **_labels())


def _filter_args(flt: services.TaskFilter) -> dict[str, str]:
    """Return the worklist's filters as query arguments (what a link, a saved search or the CSV keeps)."""
    args = {"scope": flt.scope, "status": flt.status}
    if flt.reason:
        args["reason"] = flt.reason
    return args


def _export_cap() -> int:
    return int(current_app.config["CRM_EXPORT_MAX_ROWS"])


def _may_export_pii() -> bool:
    """Full names and phones in the CSV: managers who may see personal data, never agents."""
    return _may_manage() and role_has(current_user.role, Permission.INVESTORS_PII)


def _shanghai(value: datetime | None) -> str:
    return "" if value is None else as_utc(value).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


@bp.route("/export.csv")
@require(Permission.CRM_WORK)
def export():  # type: ignore[no-untyped-def]
    flt, cap = _filter(), _export_cap()
    unmasked = request.args.get("pii") == "1"
    if unmasked and not _may_export_pii():
        raise Forbidden(_("您没有导出完整联系方式的权限。"))
    now = utcnow()
    # Read in the request's read transaction; only the audit row is a (short) write.
    with short_write() as audit:
        result = services.export_tasks(flt, session=request_session(), user_id=current_user.id, limit=cap,
                                       unmasked=unmasked, now=now, audit_session=audit)
    header = [_("任务ID"), _("平台用户ID"), _("姓名"), _("手机号"), _("原因"), _("状态"), _("时效"), _("负责客服"),
              _("到期时间（北京时间）"), _("创建时间（北京时间）"), _("关闭时间（北京时间）")]
    lines: list[list[object]] = [header]
    for task_id, uid, name, phone, reason, status, sla, assignee, due, created, closed in result.rows:
        lines.append([task_id, uid, name, phone, REASON_LABELS[reason], STATUS_LABELS[status],
                      SLA_LABELS[sla] if sla else "", assignee, _shanghai(due), _shanghai(created), _shanghai(closed)])
    if result.truncated:
        lines.append([_("仅导出前 %(n)s 行（共 %(total)s 行），请缩小筛选范围后再导出。", n=f"{cap:,}",
                        total=f"{result.total:,}")])
    response = csv_response(lines, "crm-tasks.csv")
    response.headers["X-Export-Truncated"] = "1" if result.truncated else "0"
    return response


def _back_to_worklist(args: dict[str, Any]) -> Any:
    return redirect(url_for("crm.worklist", **args))


@bp.route("/saved-searches", methods=["POST"])
@require(Permission.CRM_WORK)
def save_search():  # type: ignore[no-untyped-def]
    args, problem = saved_searches.save_posted("worklist", request.form, user_id=current_user.id,
                                               session=request_session(), now=utcnow())
    if problem:
        mark_rollback()
    flash(problem or _("筛选已保存。"), "danger" if problem else "success")
    return _back_to_worklist(args)


@bp.route("/saved-searches/<int:search_id>/delete", methods=["POST"])
@require(Permission.CRM_WORK)
def delete_search(search_id: int):  # type: ignore[no-untyped-def]
    saved_searches.delete(search_id, "worklist", user_id=current_user.id, session=request_session())
    flash(_("已删除保存的筛选。"), "success")
    return _back_to_worklist({})


def _task_page(task_id: int, *, errors: dict[str, str] | None = None, form: dict[str, str] | None = None,
               status: int = 200) -> Any:
    session = request_session()
    detail = services.task_detail(task_id, session=session)
    agents = services.active_agents(session=session) if _may_manage() else []
    return render_template("crm/task.html", task=detail.task, investor=detail.investor, calls=detail.calls,
                           notes=detail.notes, agents=agents, errors=errors or {}, form=form or {},
                           sent=messages.history(detail.investor.id, session=session),
                           channel_labels=CHANNEL_LABELS, message_status_labels=MESSAGE_STATUS_LABELS,
                           sla=rules.sla_state(detail.task.due_at, utcnow()), may_manage=_may_manage(),
                           max_note=services.MAX_NOTE, **_labels()), status


@bp.route("/tasks/<int:task_id>")
@require(Permission.CRM_WORK)
def task(task_id: int):  # type: ignore[no-untyped-def]
    return _task_page(task_id)


@bp.route("/tasks/<int:task_id>/call", methods=["POST"])
@require(Permission.CRM_WORK)
def log_call(task_id: int):  # type: ignore[no-untyped-def]
    form = {k: request.form.get(k, "") for k in ("outcome", "note", "next_follow_up")}
    try:
        services.log_call(task_id, outcome=form["outcome"], note=form["note"][:2000],
                          next_follow_up_at=rules.follow_up_at(form["next_follow_up"]), agent_id=current_user.id,
                          may_manage=_may_manage(), session=request_session(), now=utcnow())
    except DomainError as err:
        if err.field is None:
            raise
        mark_rollback()
        return _task_page(task_id, errors={err.field: str(err.message)}, form=form, status=400)
    flash(_("通话已记录，任务已完成。"), "success")
    return redirect(url_for("crm.worklist"))


@bp.route("/tasks/<int:task_id>/note", methods=["POST"])
@require(Permission.CRM_WORK)
def add_note(task_id: int):  # type: ignore[no-untyped-def]
    session = request_session()
    detail = services.task_detail(task_id, session=session)
    body = request.form.get("body", "")
    try:
        services.add_note(detail.investor.id, body, author_id=current_user.id, session=session, now=utcnow())
    except DomainError as err:
        if err.field is None:
            raise
        mark_rollback()
        return _task_page(task_id, errors={err.field: str(err.message)}, form={"body": body}, status=400)
    flash(_("备注已保存。"), "success")
    return redirect(url_for("crm.task", task_id=task_id))


@bp.route("/tasks/<int:task_id>/assign", methods=["POST"])
@require(Permission.CRM_MANAGE)
def assign(task_id: int):  # type: ignore[no-untyped-def]
    try:
        services.reassign(task_id, form_id("agent_id"), session=request_session(), now=utcnow())
    except DomainError as err:
        if err.field is None:
            raise
        mark_rollback()
        return _task_page(task_id, errors={err.field: str(err.message)}, status=400)
    flash(_("任务已重新分配。"), "success")
    return redirect(url_for("crm.task", task_id=task_id))


@bp.route("/settings", methods=["GET", "POST"])
@require(Permission.CRM_MANAGE)
def settings_page():  # type: ignore[no-untyped-def]
    defaults = defaults_of(current_app)
    return overrides.settings_page(
        "crm/settings.html", shown=services.current_settings(session=request_session(), defaults=defaults),
        defaults=defaults, keys=rules.SETTING_KEYS, labels=rules.SETTING_LABELS,
        save=lambda typed: services.save_settings(typed, session=request_session(), defaults=defaults,
                                                  by=current_user.email, now=utcnow()),
        saved=_("客服跟进设置已保存，下次运行规则时生效。"), back="crm.settings_page")


# --- the manager's team view ---------------------------------------------------------------------------

TEAM_PERIODS = ("7d", "30d", "this_month", "last_month", "custom")


def _team_period() -> tuple[period_rules.Period, str | None]:
    """Return the period the URL selects (default: the last 7 days, Shanghai), or the default and why not."""
    today, args = local_date(utcnow()), request.args
    key = args.get("period") or ("custom" if args.get("start") or args.get("end") else "7d")
    try:
        if key not in TEAM_PERIODS:
            raise period_rules.RuleError(_("未知的统计期间：%(period)s", period=key))
        return period_rules.resolve_period(key, args.get("start"), args.get("end"), today=today), None
    except period_rules.RuleError as err:
        return period_rules.resolve_period("7d", today=today), str(err.message)


def _team_report() -> tuple[period_rules.Period, str | None, team.TeamReport]:
    period, problem = _team_period()
    start, end = period_bounds(period)
    return period, problem, team.team_report(session=request_session(), start=start, end=end, now=utcnow())


@bp.route("/team")
@require(Permission.CRM_MANAGE)
def team_view():  # type: ignore[no-untyped-def]
    period, problem, report = _team_report()
    return render_template("crm/team.html", period=period, problem=problem, report=report,
                           periods={k: period_rules.PERIODS[k] for k in TEAM_PERIODS},
                           reason_labels=REASON_LABELS, window_days=team.CONVERSION_WINDOW.days)


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


@bp.route("/team.csv")
@require(Permission.CRM_MANAGE)
def team_csv():  # type: ignore[no-untyped-def]
    period, _problem, report = _team_report()
    header = [_("客服"), _("新建任务"), _("完成任务"), _("当前逾期"), _("通话"), _("接通"), _("接通率"),
              _("接触客户"), _("7 天内投资"), _("转化率"), _("未接触同类客户转化率"), _("差值（百分点）")]
    rows: list[list[object]] = [header]
    for row in [*report.rows, report.total]:
        name = _("合计") if row is report.total else (_("待分配") if row.agent_id == team.POOL else row.name)
        lift = "" if row.lift is None else f"{row.lift * 100:+.1f}"
        rows.append([name, row.created, row.closed, row.overdue, row.calls, row.connected,
                     _percent(row.contact_rate), row.contacted, row.converted, _percent(row.conversion_rate),
                     _percent(row.control_rate), lift])
    return csv_response(rows, f"crm-team-{period.start.isoformat()}-{period.end.isoformat()}.csv")


# --- a templated message from the investor page or a task ------------------------------------------------------


def _revealed(investor_id: int) -> bool:
    """Tell whether this user may see the investor's personal data now (the role, and an audited reveal)."""
    return role_has(current_user.role, Permission.INVESTORS_PII) and reveal_holds(
        session.get(REVEALED_KEY), investor_id, utcnow().timestamp())


def _message_page(investor_id: int, *, template_id: int | None, task_id: int | None, token: str | None = None,
                  errors: dict[str, str] | None = None, close_task: bool = True, status: int = 200) -> Any:
    db = request_session()
    investor = messages.investor_of(db, investor_id)
    task = services.task_detail(task_id, session=db).task if task_id is not None else None
    if task is not None and task.investor_id != investor.id:
        task = None  # a task of someone else in the address: ignore it rather than close the wrong one
    draft = None
    if template_id is not None:
        config = load_channel_settings(session=db, environment=current_app.config.get("CHANNEL_ENV") or {})
        try:
            draft = messages.compose(investor.id, template_id, session=db, config=config, now=utcnow(),
                                     revealed=_revealed(investor.id),
                                     preview_link=current_app.config["PUBLIC_BASE_URL"].rstrip("/") + "/unsubscribe/…")
        except DomainError as err:
            if err.field is None:
                raise
            errors = {**(errors or {}), err.field: str(err.message)}
    return render_template(
        "crm/message.html", investor=investor, task=task, draft=draft, choices=messages.choices(investor, session=db),
        template_id=template_id, token=token or messages.new_token(), errors=errors or {}, close_task=close_task,
        sent=messages.history(investor.id, session=db), mask_phone=mask_phone, channel_labels=CHANNEL_LABELS,
        class_labels=CLASS_LABELS, check_labels=SEND_CHECK_LABELS, message_status_labels=MESSAGE_STATUS_LABELS,
        may_work_task=task is not None and task.status == "open" and (
            task.assignee_id in (None, current_user.id) or _may_manage()),
    ), status


@messages_bp.route("/investors/<int:investor_id>/message", methods=["GET"])
@require(Permission.CRM_WORK)
def compose_message(investor_id: int):  # type: ignore[no-untyped-def]
    return _message_page(investor_id, template_id=id_arg("template"), task_id=id_arg("task"))


@messages_bp.route("/investors/<int:investor_id>/message", methods=["POST"])
@require(Permission.CRM_WORK)
def send_message(investor_id: int):  # type: ignore[no-untyped-def]
    form = request.form
    template_id, task_id = form_id("template_id"), form_id("task_id")
    close_task = form.get("close_task") == "1"
    token = form.get("token", "")[:100]
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        sent = messages.send(investor_id, template_id, token=token, agent_id=current_user.id,
                             session=request_session(), now=utcnow(), task_id=task_id, close_task=close_task,
                             may_manage=_may_manage(),
                             unsubscribe_link=lambda i, ch: unsubscribe_link_for(i, ch, app=app, now=utcnow()))
    except DomainError as err:
        if err.field is None:
            raise
        mark_rollback()
        return _message_page(investor_id, template_id=template_id, task_id=task_id, token=token,
                             errors={err.field: str(err.message)}, close_task=close_task, status=400)
    if sent.created:
        flash(_("消息已进入发送队列，发送结果见下方记录。"), "success")
    else:
        flash(_("这条消息已经提交过，没有重复发送。"), "info")
    if task_id is not None and close_task and sent.created:
        return redirect(url_for("crm.worklist"))
    return redirect(url_for("crm_messages.compose_message", investor_id=investor_id, task=task_id))
