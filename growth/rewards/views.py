"""Staff pages of the incentive ledger and the platform's rewards API (campaigns-api.md §4)."""

from __future__ import annotations

import secrets
from datetime import date
from typing import Any

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from growth.audit.services import record
from growth.auth.permissions import Permission, require, role_has
from growth.db import mark_rollback, request_session, short_write
from growth.errors import DomainError, Forbidden
from growth.exports import csv_response
from growth.inputs import ID_MAX, page_arg
from growth.investors.models import Investor
from growth.investors.rules import mask_name, mask_phone
from growth.money import MoneyFormatError, fen_to_api, parse_rate, parse_yuan
from growth.rewards import rules, services
from growth.rewards.charts import burn_down_figure
from growth.rewards.models import (
    BUDGET_OWNER_LABELS,
    ENTRY_LABELS,
    INVALID_REASON_LABELS,
    KIND_LABELS,
    REQUEST_STATUS_LABELS,
    STATUS_LABELS,
    STATUSES,
    public_id,
)
from growth.timeutil import utcnow

bp = Blueprint("rewards", __name__, url_prefix="/rewards")
api = Blueprint("rewards_api", __name__, url_prefix="/api/v1")

API_STATUSES = ("usable", *STATUSES)
MANUAL_KINDS = ("cash", "voucher", "rate_boost", "experience_funds")  # cashback belongs to an investment's campaign
EXPORT_HEADERS = (
    _l("奖励ID"), _l("平台用户ID"), _l("姓名"), _l("手机号"), _l("类型"), _l("状态"), _l("面值/条款"), _l("成本（元）"),
    _l("活动ID"), _l("投资编号"), _l("发放时间（北京时间）"), _l("过期时间（北京时间）"), _l("发放人"),
)


def _may_see_pii() -> bool:
    return role_has(current_user.role, Permission.INVESTORS_PII)


# --- the ledger ---------------------------------------------------------------------------------------


def _parse_filters(args: MultiDict[str, str]) -> tuple[services.LedgerFilter, list[str]]:
    errors: list[str] = []
    kind = args.get("kind", "").strip() or None
    if kind not in KIND_LABELS:
        kind = None
    status = args.get("status", "").strip() or None
    if status not in STATUS_LABELS:
        status = None
    campaign_id = None
    raw = args.get("campaign_id", "").strip()
    if raw:
        if raw.isascii() and raw.isdigit() and int(raw) <= ID_MAX:
            campaign_id = int(raw)
        else:
            errors.append(_("活动 ID 须为正整数，已忽略。"))
    days: dict[str, date | None] = {}
    for name in ("start", "end"):
        text = args.get(name, "").strip()
        days[name] = None
        if text:
            try:
                days[name] = date.fromisoformat(text)
            except ValueError:
                errors.append(_("日期须写作 YYYY-MM-DD，已忽略：%(value)s", value=text[:20]))
    user_id = args.get("user_id", "").strip()[:200] or None
    return services.LedgerFilter(kind=kind, status=status, campaign_id=campaign_id, user_id=user_id,
                                 start=days["start"], end=days["end"],
                                 invalid_uses=args.get("invalid") == "1"), errors


def _filter_args(f: services.LedgerFilter) -> dict[str, Any]:
    args = {"kind": f.kind, "status": f.status, "campaign_id": f.campaign_id, "user_id": f.user_id,
            "start": f.start.isoformat() if f.start else None, "end": f.end.isoformat() if f.end else None,
            "invalid": "1" if f.invalid_uses else None}
    return {k: v for k, v in args.items() if v is not None}


def terms_text(reward: Any) -> str:
    """Return a reward's terms in a few words (face value, rate, days)."""
    from growth.money import format_rate, format_yuan

    parts: list[str] = []
    if reward.kind in ("cash", "voucher", "experience_funds") and reward.amount_fen is not None:
        parts.append(format_yuan(reward.amount_fen))
    if reward.annual_rate_bp is not None:
        parts.append(_("年化 +%(rate)s", rate=format_rate(reward.annual_rate_bp)))
    if reward.max_days is not None:
        parts.append(_("最多 %(n)d 天", n=reward.max_days))
    if reward.days is not None:
        parts.append(_("%(n)d 天", n=reward.days))
    if reward.rate_bp is not None and reward.principal_fen is not None:
        parts.append(_("%(rate)s × %(principal)s", rate=format_rate(reward.rate_bp),
                       principal=format_yuan(reward.principal_fen)))
    return " · ".join(parts)


@bp.route("/")
@require(Permission.REWARDS_VIEW)
def index():  # type: ignore[no-untyped-def]
    filters, errors = _parse_filters(request.args)
    page, per_page = page_arg(), current_app.config["PER_PAGE"]
    rows, total = services.ledger(filters, session=request_session(), page=page, per_page=per_page)
    return render_template(
        "rewards/index.html", rows=rows, total=total, page=page, per_page=per_page, filters=filters,
        filter_args=_filter_args(filters), filter_errors=errors, kinds=KIND_LABELS, statuses=STATUS_LABELS,
        names={inv.id: mask_name(inv.name) for _r, inv in rows}, terms_text=terms_text,
        may_see_pii=_may_see_pii(),
    )


@bp.route("/export.csv")
@require(Permission.REWARDS_VIEW)
def export():  # type: ignore[no-untyped-def]
    filters, _errors = _parse_filters(request.args)
    unmasked = request.args.get("pii") == "1"
    if unmasked and not _may_see_pii():
        raise Forbidden(_("您没有导出完整联系方式的权限。"))
    rows: list[list[object]] = [[str(h) for h in EXPORT_HEADERS]]
    for reward, inv in services.ledger_all(filters, session=request_session()):
        name = inv.name if unmasked else mask_name(inv.name)
        phone = inv.phone if unmasked else mask_phone(inv.phone)
        rows.append([public_id(reward.id), inv.platform_user_id, name or "", phone or "",
                     str(KIND_LABELS[reward.kind]), str(STATUS_LABELS[reward.status]), terms_text(reward),
                     fen_to_api(reward.cost_fen), reward.campaign_id or "", reward.investment_id or "",
                     _local(reward.granted_at), _local(reward.expires_at), reward.granted_by])
    with short_write() as audit:
        record("rewards.exported", session=audit, target_type="reward",
               details={"rows": len(rows) - 1, "unmasked": unmasked, "filters": _filter_args(filters)})
    return csv_response(rows, "rewards.csv")


def _local(value: Any) -> str:
    from growth.timeutil import SHANGHAI, as_utc

    return "" if value is None else as_utc(value).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


@bp.route("/<int:reward_id>")
@require(Permission.REWARDS_VIEW)
def detail(reward_id: int):  # type: ignore[no-untyped-def]
    db = request_session()
    reward = services.get_reward(reward_id, session=db)
    investor = db.get(Investor, reward.investor_id)
    return render_template(
        "rewards/detail.html", reward=reward, investor=investor, name=mask_name(investor.name if investor else ""),
        entries=services.entries_of(reward_id, session=db), uses=services.uses_of(session=db, reward_id=reward_id),
        kinds=KIND_LABELS, statuses=STATUS_LABELS, entry_labels=ENTRY_LABELS, reasons=INVALID_REASON_LABELS,
        terms_text=terms_text, public_id=public_id(reward.id),
    )


@bp.route("/<int:reward_id>/revoke", methods=["POST"])
@require(Permission.REWARDS_MANAGE)
def revoke(reward_id: int):  # type: ignore[no-untyped-def]
    db = request_session()
    reason = request.form.get("reason", "")[:500]
    reward = services.revoke(reward_id, session=db, reason=reason, actor=current_user.email, now=utcnow())
    record("reward.revoked", session=db, target_type="reward", target_id=reward.id,
           details={"reward": public_id(reward.id), "reason": reason.strip()})
    flash(_("已撤销 %(id)s。", id=public_id(reward.id)), "success")
    return redirect(url_for("rewards.detail", reward_id=reward.id))


# --- manual grants and their approval ------------------------------------------------------------------


def _threshold_fen() -> int:
    return parse_yuan(str(current_app.config["REWARD_APPROVAL_THRESHOLD"]))


def _form_terms(kind: str, form: MultiDict[str, str]) -> rules.Terms:
    """Read the grant form's terms for a kind (money in yuan, rates as fractions), raising DomainError per field."""
    values: dict[str, Any] = {}
    money = {"amount": "amount_fen", "min_investment": "min_investment_fen", "max_investment": "max_investment_fen"}
    for name, target in money.items():
        text = form.get(name, "").strip()
        if text:
            try:
                values[target] = parse_yuan(text)
            except MoneyFormatError as err:
                raise DomainError(str(err), field=name) from None
    text = form.get("annual_rate", "").strip()
    if text:
        try:
            values["annual_rate_bp"] = parse_rate(text)
        except MoneyFormatError as err:
            raise DomainError(str(err), field="annual_rate") from None
    for name in ("max_days", "days", "min_term_days", "valid_days"):
        text = form.get(name, "").strip()
        if text:
            if not (text.isascii() and text.isdigit()) or len(text) > 5:
                raise DomainError(_("须为正整数"), field=name)
            values[name] = int(text)
    allowed = rules.ALLOWED[kind]
    return rules.Terms(**{k: v for k, v in values.items() if k in allowed})


def _grant_page(form: MultiDict[str, str] | dict[str, str], error: str | None = None, field: str | None = None,
                status: int = 200) -> tuple[str, int]:
    values = dict(form)
    values.setdefault("nonce", secrets.token_urlsafe(16))
    return render_template("rewards/grant.html", form=values, error=error, field=field,
                           kinds={k: KIND_LABELS[k] for k in MANUAL_KINDS},
                           threshold=_threshold_fen()), status


@bp.route("/grant", methods=["GET", "POST"])
@require(Permission.REWARDS_MANAGE)
def grant():  # type: ignore[no-untyped-def]
    if request.method == "GET":
        return _grant_page({"user_id": request.args.get("user_id", "")[:200], "kind": "voucher"})
    form = request.form
    db = request_session()
    kind = form.get("kind", "")
    nonce = form.get("nonce", "")[:64]
    try:
        if kind not in MANUAL_KINDS:
            raise DomainError(_("请选择红包类型"), field="kind")
        if len(nonce) < 8:
            raise DomainError(_("表单已过期，请重新填写。"), field="nonce")
        user_id = form.get("user_id", "").strip()[:200]
        investor = db.scalar(select(Investor).where(Investor.platform_user_id == user_id)) if user_id else None
        if investor is None:
            raise DomainError(_("找不到该平台用户ID的投资人"), field="user_id")
        outcome = services.manual_grant(session=db, nonce=nonce, investor=investor, kind=kind,
                                        terms=_form_terms(kind, form), reason=form.get("reason", "")[:500],
                                        actor=current_user.email, now=utcnow(), threshold_fen=_threshold_fen())
    except DomainError as err:
        mark_rollback()
        return _grant_page(form, error=str(err.message), field=err.field, status=422)
    if outcome.request is not None:
        req = outcome.request
        record("reward.grant_requested", session=db, target_type="reward_request", target_id=req.id,
               details={"investor": user_id, "kind": kind, "value": fen_to_api(req.value_fen), "reason": req.reason})
        limit = fen_to_api(_threshold_fen())
        flash(_("金额超过 %(limit)s，已提交审批，需另一位管理员批准后发放。", limit=limit), "info")
        return redirect(url_for("rewards.requests"))
    reward = outcome.reward
    assert reward is not None
    record("reward.granted_manually", session=db, target_type="reward", target_id=reward.id,
           details={"reward": public_id(reward.id), "investor": user_id, "kind": kind,
                    "value": fen_to_api(reward.budget_fen), "reason": form.get("reason", "").strip()[:500]})
    flash(_("已发放 %(id)s。", id=public_id(reward.id)), "success")
    return redirect(url_for("rewards.detail", reward_id=reward.id))


@bp.route("/requests")
@require(Permission.REWARDS_MANAGE)
def requests():  # type: ignore[no-untyped-def]
    rows = services.pending_requests(session=request_session())
    return render_template("rewards/requests.html", rows=rows, kinds=KIND_LABELS, statuses=REQUEST_STATUS_LABELS,
                           me=current_user.email)


@bp.route("/requests/<int:request_id>/approve", methods=["POST"])
@require(Permission.REWARDS_MANAGE)
def approve(request_id: int):  # type: ignore[no-untyped-def]
    return _decide(request_id, approve=True)


@bp.route("/requests/<int:request_id>/reject", methods=["POST"])
@require(Permission.REWARDS_MANAGE)
def reject(request_id: int):  # type: ignore[no-untyped-def]
    return _decide(request_id, approve=False)


def _decide(request_id: int, *, approve: bool) -> Response:
    db = request_session()
    req = services.decide_request(request_id, session=db, approve=approve, actor=current_user.email,
                                  note=request.form.get("note", "")[:500], now=utcnow())
    record("reward.request_approved" if approve else "reward.request_rejected", session=db,
           target_type="reward_request", target_id=req.id,
           details={"requested_by": req.requested_by, "reward": public_id(req.reward_id) if req.reward_id else None})
    flash(_("已批准并发放。") if approve else _("已驳回。"), "success")
    return redirect(url_for("rewards.requests"))


# --- budgets and liability -----------------------------------------------------------------------------


@bp.route("/budgets")
@require(Permission.REWARDS_VIEW)
def budgets():  # type: ignore[no-untyped-def]
    return render_template("rewards/budgets.html", budgets=services.budgets(session=request_session()),
                           owners=BUDGET_OWNER_LABELS)


@bp.route("/budgets/<int:budget_id>")
@require(Permission.REWARDS_VIEW)
def budget(budget_id: int):  # type: ignore[no-untyped-def]
    db = request_session()
    item = services.get_budget(budget_id, session=db)
    points = services.burn_down(budget_id, session=db)
    figure = burn_down_figure(points, max_grants=item.max_grants, max_amount_fen=item.max_amount_fen).to_json() \
        if points else None
    return render_template("rewards/budget.html", budget=item, points=points, figure=figure,
                           owners=BUDGET_OWNER_LABELS)


@bp.route("/liability")
@require(Permission.REWARDS_VIEW)
def liability():  # type: ignore[no-untyped-def]
    rows, total = services.liability(session=request_session())
    return render_template("rewards/liability.html", rows=rows, total=total, kinds=KIND_LABELS,
                           default_rate=rules.DEFAULT_USE_RATE)


# --- the platform's API --------------------------------------------------------------------------------


def _api_error(status: int, path: str, code: str, message: str) -> Response:
    response = jsonify({"error": message, "errors": [{"path": path, "code": code, "message": message}]})
    response.status_code = status
    return response


@api.route("/investors/<string:user_id>/rewards")
@require(Permission.REWARDS_VIEW)
def investor_rewards_api(user_id: str):  # type: ignore[no-untyped-def]
    status = request.args.get("status", "").strip() or None
    if status is not None and status not in API_STATUSES:
        return _api_error(422, "status", "unknown_status",
                          f"unknown status {status!r}; one of: {', '.join(API_STATUSES)}")
    db = request_session()
    investor_id = db.scalar(select(Investor.id).where(Investor.platform_user_id == user_id[:200]))
    if investor_id is None:
        return _api_error(404, "user_id", "not_found", "no investor with this user id")
    rewards = services.investor_rewards(investor_id, session=db, status=status, now=utcnow())
    return jsonify({"rewards": [services.reward_json(r, user_id) for r in rewards]})
