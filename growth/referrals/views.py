"""Referral pages (records, review queue, settings, QR codes), the public share link /r/<code> and its API."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, flash, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

from growth import overrides
from growth.audit.services import record
from growth.auth.permissions import Permission, public, require, role_has
from growth.db import mark_rollback, request_session, short_write, writes
from growth.errors import DomainError, Forbidden, NotFound
from growth.exports import csv_response
from growth.inputs import page_arg
from growth.investors.rules import mask_identifier, mask_phone
from growth.money import fen_to_api
from growth.referrals import rules, services
from growth.referrals.jobs import defaults_of
from growth.referrals.models import (
    CONFIRMED_HOW_LABELS,
    DECISION_LABELS,
    FLAG_REASONS,
    REASON_LABELS,
    REJECTION_LABELS,
    STATUS_LABELS,
    STATUSES,
)
from growth.timeutil import SHANGHAI, as_utc, utcnow

bp = Blueprint("referrals", __name__, url_prefix="/referrals")
share = Blueprint("referrals_share", __name__)
api = Blueprint("referrals_api", __name__, url_prefix="/api/v1")

PER_PAGE = 25
REVEALED_KEY = "referrals_revealed_until"  # session: unix time until which the review queue shows personal data
EXPORT_LIMIT = 50_000


def _may_see_pii() -> bool:
    return role_has(current_user.role, Permission.INVESTORS_PII)


def _revealed() -> bool:
    until = session.get(REVEALED_KEY)
    return _may_see_pii() and isinstance(until, int | float) and until > utcnow().timestamp()


def _settings() -> rules.ProgramSettings:
    return services.current_settings(session=request_session(), defaults=defaults_of(current_app))


def _status_arg() -> str | None:
    status = request.args.get("status", "")
    return status if status in STATUSES else None


def _shown(reveal: bool) -> dict[str, Any]:
    """Return the helpers a page uses to show personal fields: in full after a reveal, else masked."""
    return {
        "phone": (lambda v: v or "") if reveal else mask_phone,
        "ip": (lambda v: v or "") if reveal else rules.mask_ip,
        "device": (lambda v: v or "") if reveal else mask_identifier,
        "flag_detail": lambda flag: rules.flag_detail_text(flag, reveal=reveal),
    }


def _labels() -> dict[str, Any]:
    return {"status_labels": STATUS_LABELS, "reason_labels": REASON_LABELS, "flag_reasons": FLAG_REASONS,
            "rejection_labels": REJECTION_LABELS, "decision_labels": DECISION_LABELS,
            "how_labels": CONFIRMED_HOW_LABELS}


@bp.route("/")
@require(Permission.REFERRALS_VIEW)
def index():  # type: ignore[no-untyped-def]
    status = _status_arg()
    page = page_arg()
    rows, total = services.list_referrals(session=request_session(), status=status, page=page, per_page=PER_PAGE)
    return render_template("referrals/index.html", rows=rows, total=total, page=page, per_page=PER_PAGE,
                           status=status or "", statuses=STATUSES, may_see_pii=_may_see_pii(),
                           settings=_settings(), **_labels(), **_shown(False))


@bp.route("/review")
@require(Permission.REFERRALS_VIEW)
def review():  # type: ignore[no-untyped-def]
    page = page_arg()
    reveal = _revealed()
    rows, total = services.list_referrals(session=request_session(), status="in_review", page=page,
                                          per_page=PER_PAGE)
    return render_template("referrals/review.html", rows=rows, total=total, page=page, per_page=PER_PAGE,
                           may_review=role_has(current_user.role, Permission.REFERRALS_REVIEW),
                           may_see_pii=_may_see_pii(), revealed=reveal, **_labels(), **_shown(reveal))


@bp.route("/review/reveal", methods=["POST"])
@require(Permission.INVESTORS_PII)
def reveal():  # type: ignore[no-untyped-def]
    record("referral.pii_revealed", session=request_session(), target_type="referral")
    session[REVEALED_KEY] = utcnow().timestamp() + current_app.config["INVESTOR_REVEAL_SECONDS"]
    return redirect(url_for("referrals.review", page=page_arg()))


@bp.route("/<int:referee_id>/decision", methods=["POST"])
@require(Permission.REFERRALS_REVIEW)
def decide(referee_id: int):  # type: ignore[no-untyped-def]
    decision = request.form.get("decision", "")
    try:
        referral = services.decide(referee_id, decision=decision, note=request.form.get("note", ""),
                                   session=request_session(), by=current_user.email, now=utcnow(),
                                   settings=_settings())
    except DomainError as err:
        if err.status == 404:
            raise
        mark_rollback()
        flash(str(err.message), "danger")
        return redirect(url_for("referrals.review"))
    label = STATUS_LABELS.get(referral.status, referral.status)
    flash(_("已审核：%(decision)s，邀请状态为“%(status)s”。", decision=DECISION_LABELS[decision], status=label),
          "success")
    return redirect(url_for("referrals.review"))


@bp.route("/export.csv")
@require(Permission.REFERRALS_VIEW)
def export():  # type: ignore[no-untyped-def]
    unmasked = request.args.get("pii") == "1"
    if unmasked and not _may_see_pii():
        raise Forbidden(_("您没有导出完整联系方式的权限。"))
    status = _status_arg()
    rows, total = services.list_referrals(session=request_session(), status=status, page=1, per_page=EXPORT_LIMIT)
    show = _shown(unmasked)
    out: list[list[object]] = [["referee", "referrer", "status", "registered_at", "referee_phone", "referrer_phone",
                                "referee_ip", "referrer_ip", "first_investment", "first_investment_yuan",
                                "term_days", "qualified_at", "hold_ends_at", "confirmed_at", "confirmed_how",
                                "rejected_reason", "flags", "decision", "decided_by", "decision_note"]]

    def at(value: Any) -> str:
        return "" if value is None else as_utc(value).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")

    for row in rows:
        r = row.referral
        out.append([
            row.referee.platform_user_id, row.referrer.platform_user_id, r.status, at(r.registered_at),
            show["phone"](row.referee.phone), show["phone"](row.referrer.phone),
            show["ip"](row.referee.registration_ip), show["ip"](row.referrer.registration_ip),
            r.first_investment_id or "", "" if r.first_investment_fen is None else fen_to_api(r.first_investment_fen),
            r.first_investment_term_days or "", at(r.qualified_at), at(r.hold_ends_at), at(r.confirmed_at),
            r.confirmed_how or "", r.rejected_reason or "",
            "; ".join(f"{f['code']}: {show['flag_detail'](f)}".rstrip(": ") for f in r.flags),
            r.decision or "", r.decided_by or "", r.decision_note or "",
        ])
    with short_write() as audit:
        record("referrals.exported", session=audit, target_type="referral",
               details={"filters": {"status": status}, "count": total, "unmasked": unmasked})
    return csv_response(out, "referrals.csv")


@bp.route("/settings", methods=["GET", "POST"])
@require(Permission.REFERRALS_SETTINGS)
def settings_page():  # type: ignore[no-untyped-def]
    defaults = defaults_of(current_app)
    return overrides.settings_page(
        "referrals/settings.html", shown=_settings(), defaults=defaults, keys=rules.SETTING_KEYS,
        labels=rules.SETTING_LABELS,
        save=lambda typed: services.save_settings(typed, session=request_session(), defaults=defaults,
                                                  by=current_user.email, now=utcnow()),
        saved=_("邀请计划设置已保存，全部邀请记录已按新设置重新计算。"), back="referrals.settings_page")


def _qr(code: str, kind: str, mimetype: str) -> Response:
    owner = services.referrer_by_code(code, session=request_session())
    if owner is None:
        raise NotFound(_("邀请码不存在"))
    url = services.share_url(owner.referral_code, current_app.config["PUBLIC_BASE_URL"])
    scale = min(max(request.args.get("scale", 8, type=int), 2), 40)
    response = Response(services.qr_image(url, kind=kind, scale=scale), mimetype=mimetype)
    if request.args.get("download"):
        response.headers["Content-Disposition"] = f"attachment; filename=invite-{owner.referral_code}.{kind}"
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


@bp.route("/codes/<code>/qr.png")
@require(Permission.REFERRALS_VIEW)
def qr_png(code: str):  # type: ignore[no-untyped-def]
    return _qr(code, "png", "image/png")


@bp.route("/codes/<code>/qr.svg")
@require(Permission.REFERRALS_VIEW)
def qr_svg(code: str):  # type: ignore[no-untyped-def]
    return _qr(code, "svg", "image/svg+xml")


# The public share link printed on invitations and QR codes: its URL never changes.
@share.route("/r/<code>")
@public
@writes  # counts the visit: SQLite's write lock is taken up front, so no visit fails mid-transaction
def share_link(code: str):  # type: ignore[no-untyped-def]
    owner = services.record_visit(code, ip=request.remote_addr, secret=current_app.config["SECRET_KEY"],
                                  session=request_session(), now=utcnow())
    landing = current_app.config["REFERRAL_LANDING_URL"]
    # An unknown code still lands on the registration page (without a code): the visitor is not lost.
    response = redirect(services.landing_url(landing, owner.referral_code if owner else None), 302)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@api.route("/referral-codes/<code>")
@require(Permission.REFERRALS_VIEW)
def referral_code(code: str) -> Response:
    owner = services.referrer_by_code(code, session=request_session())
    if owner is None:
        return jsonify({"valid": False})
    return jsonify({"valid": True, "referrer": owner.platform_user_id})
