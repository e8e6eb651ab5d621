"""The campaigns JSON API of spec §3 (the editor and pages arrive with the rest of the campaigns issue)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from campaigns import preview as previews
from campaigns import results as figures
from campaigns import services
from campaigns.definition import CAMPAIGN_TYPES
from campaigns.models import STATUSES
from channels.settings import load as load_settings
from growth.auth.permissions import Permission, require
from growth.db import request_session
from growth.errors import Invalid, Problem
from growth.inputs import ID_MAX
from growth.money import fen_to_api
from growth.request_size import max_body
from growth.timeutil import utcnow

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
    settings = load_settings(session=session, environment=current_app.config.get("CHANNEL_ENV") or {})
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
