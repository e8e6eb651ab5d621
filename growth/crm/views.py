"""CRM pages: the worklist, a task with its call and note forms, reassignment, the rules' settings, and sending
an investor a templated message (`/investors/<id>/message`, blueprint `crm_messages`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

from channels.models import CHANNEL_LABELS, CLASS_LABELS
from channels.models import STATUS_LABELS as MESSAGE_STATUS_LABELS
from channels.receipts import unsubscribe_link_for
from channels.settings import load as load_channel_settings
from growth import overrides
from growth.auth.permissions import Permission, require, role_has
from growth.crm import messages, rules, services
from growth.crm.jobs import defaults_of
from growth.crm.models import (
    OUTCOME_LABELS,
    REASON_LABELS,
    SEND_CHECK_LABELS,
    SLA_LABELS,
    STATUS_LABELS,
    TASK_STATUSES,
)
from growth.db import mark_rollback, request_session
from growth.errors import DomainError
from growth.inputs import id_arg, page_arg
from growth.investors.rules import REVEALED_KEY, mask_phone, reveal_holds
from growth.timeutil import SHANGHAI, utcnow

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
    return render_template("crm/worklist.html", rows=rows, total=total, page=page, per_page=PER_PAGE, flt=flt,
                           sla=lambda task: rules.sla_state(task.due_at, now), may_manage=_may_manage(),
                           scopes=services.SCOPES, **_labels())


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


def _follow_up_at(text: str) -> datetime | None:
    """Read a Beijing-time datetime-local value ("2026-12-05T10:00") as aware UTC; raise DomainError when bad."""
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise DomainError(_("请填写有效的日期和时间"), field="next_follow_up") from None
    if value.tzinfo is not None:
        raise DomainError(_("请填写有效的日期和时间"), field="next_follow_up")
    return value.replace(tzinfo=SHANGHAI).astimezone(UTC)


@bp.route("/tasks/<int:task_id>/call", methods=["POST"])
@require(Permission.CRM_WORK)
def log_call(task_id: int):  # type: ignore[no-untyped-def]
    form = {k: request.form.get(k, "") for k in ("outcome", "note", "next_follow_up")}
    try:
        services.log_call(task_id, outcome=form["outcome"], note=form["note"][:2000],
                          next_follow_up_at=_follow_up_at(form["next_follow_up"]), agent_id=current_user.id,
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
    agent = request.form.get("agent_id", "")
    try:
        services.reassign(task_id, int(agent) if agent.isdigit() else None, session=request_session(), now=utcnow())
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
    template_id = int(form["template_id"]) if form.get("template_id", "").isdigit() else None
    task_id = int(form["task_id"]) if form.get("task_id", "").isdigit() else None
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
