"""CRM pages: the worklist, a task with its call and note forms, reassignment and the rules' settings."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from growth import overrides
from growth.auth.permissions import Permission, require, role_has
from growth.crm import rules, services
from growth.crm.jobs import defaults_of
from growth.crm.models import OUTCOME_LABELS, REASON_LABELS, SLA_LABELS, STATUS_LABELS, TASK_STATUSES
from growth.db import mark_rollback, request_session
from growth.errors import DomainError
from growth.inputs import page_arg
from growth.investors.rules import mask_phone
from growth.investors.tags import tags_of
from growth.timeutil import utcnow

bp = Blueprint("crm", __name__, url_prefix="/crm")
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
                           scopes=services.SCOPES, **_labels())


def _task_page(task_id: int, *, errors: dict[str, str] | None = None, form: dict[str, str] | None = None,
               status: int = 200) -> Any:
    session = request_session()
    detail = services.task_detail(task_id, session=session)
    agents = services.active_agents(session=session) if _may_manage() else []
    return render_template("crm/task.html", task=detail.task, investor=detail.investor, calls=detail.calls,
                           notes=detail.notes, agents=agents, errors=errors or {}, form=form or {},
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
