"""Investor pages: the searchable list with CSV export, and one investor's page with audited reveals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from channels import services as channel_services
from channels.models import CHANNEL_LABELS, CONSENT_SOURCES
from growth.auth.permissions import Permission, require, role_has
from growth.db import request_session, short_write
from growth.errors import Forbidden
from growth.exports import csv_response
from growth.inputs import id_arg, page_arg
from growth.investors import services
from growth.investors.models import MILESTONE_LABELS, MILESTONES
from growth.investors.rules import REVEALED_KEY, SearchTerms, search_terms
from growth.referrals import services as referral_services
from growth.referrals.models import STATUS_LABELS as REFERRAL_STATUS_LABELS
from growth.rewards import services as reward_services
from growth.rewards.models import INVALID_REASON_LABELS, KIND_LABELS
from growth.rewards.models import STATUS_LABELS as REWARD_STATUS_LABELS
from growth.timeutil import utcnow

bp = Blueprint("investors", __name__)

INVESTMENT_STATUS_LABELS = {"active": _l("持有中"), "redeemed": _l("已赎回"), "matured": _l("已到期")}
MOVEMENT_KIND_LABELS = {"deposit": _l("充值"), "withdrawal": _l("提现")}

EXPORT_HEADERS = {
    "platform_user_id": _l("平台用户ID"),
    "name": _l("姓名"),
    "phone": _l("手机号"),
    "email": _l("邮箱"),
    "channel": _l("渠道"),
    "registered_at": _l("注册时间（北京时间）"),
    "milestones": _l("已达成里程碑"),
    "investment_count": _l("投资笔数"),
    "investment_total": _l("累计投资（元）"),
    "holdings": _l("在投金额（元）"),
    "deposit_total": _l("累计充值（元）"),
    "withdrawal_total": _l("累计提现（元）"),
    "last_activity_at": _l("最近活动（北京时间）"),
}

# The channels an investor states consent for, and where a statement came from (shown on their page).
CONSENT_CHANNEL_LABELS = {c: CHANNEL_LABELS[c] for c in ("wechat", "sms", "email")}
CONSENT_SOURCE_LABELS = dict(zip(CONSENT_SOURCES, (_l("平台事件"), _l("退订链接"), _l("短信回复"), _l("微信关注/取关"),
                                                  _l("客服通话：要求勿扰")),
                                 strict=True))

EVENTS_PER_PAGE = 20
MAX_QUERY_LENGTH = 100


@dataclass(frozen=True, slots=True)
class Filters:
    """The list filters as read from the query string."""

    q: str
    channel_id: int | None
    milestone: str | None
    stalled: bool

    def as_args(self) -> dict[str, Any]:
        """Return the filters as query-string arguments (empty ones left out)."""
        args: dict[str, Any] = {}
        if self.q:
            args["q"] = self.q
        if self.channel_id is not None:
            args["channel"] = self.channel_id
        if self.milestone:
            args["milestone"] = self.milestone
        if self.stalled:
            args["stalled"] = "1"
        return args


def _filters(args: MultiDict[str, str]) -> Filters:
    milestone = args.get("milestone", "").strip()
    return Filters(
        q=args.get("q", "").strip()[:MAX_QUERY_LENGTH],
        channel_id=id_arg("channel"),
        milestone=milestone if milestone in MILESTONES else None,
        stalled=args.get("stalled") == "1",
    )


def _may_see_pii() -> bool:
    return role_has(current_user.role, Permission.INVESTORS_PII)


def _search_terms(filters: Filters) -> SearchTerms:
    """Return what the query may match for this role, counting the search against the user's limit."""
    terms = search_terms(filters.q, may_see_pii=_may_see_pii())
    if filters.q:
        throttle = current_app.extensions.setdefault("growth.investor_searches", services.SearchThrottle())
        throttle.check(current_user.id, now=utcnow(), limit=current_app.config["INVESTOR_SEARCH_LIMIT"],
                       window=current_app.config["INVESTOR_SEARCH_WINDOW"])
    return terms


@bp.route("/investors")
@require(Permission.INVESTORS_VIEW)
def index():  # type: ignore[no-untyped-def]
    filters = _filters(request.args)
    terms = _search_terms(filters)
    page, per_page = page_arg(), current_app.config["PER_PAGE"]
    db_session = request_session()
    rows, total = services.search_investors(
        session=db_session, terms=terms, channel_id=filters.channel_id, milestone=filters.milestone,
        stalled=filters.stalled, page=page, per_page=per_page,
    )
    if terms.audited:
        # Its own short write: the list itself only reads, and must not hold the write lock to do so.
        with short_write() as audit_session:
            services.audit_search(terms, filters.q, results=total, session=audit_session)
    # The list is masked for every role: full contact details are shown only through an audited reveal.
    contacts = {row.investor.id: services.contact_details(row.investor) for row in rows}
    return render_template(
        "investors/index.html", rows=rows, contacts=contacts, total=total, page=page, per_page=per_page,
        filters=filters, channels=services.channel_choices(session=db_session), milestones=MILESTONES,
        milestone_labels=MILESTONE_LABELS, may_see_pii=_may_see_pii(), withheld=terms.withheld,
    )


@bp.route("/investors/export.csv")
@require(Permission.INVESTORS_VIEW)
def export():  # type: ignore[no-untyped-def]
    filters = _filters(request.args)
    unmasked = request.args.get("pii") == "1"
    if unmasked and not _may_see_pii():
        raise Forbidden(_("您没有导出完整联系方式的权限。"))
    terms = _search_terms(filters)
    # Read in the request's read transaction; only the audit row is a (short) write.
    with short_write() as audit:
        rows = services.export_investors_csv(
            session=request_session(), terms=terms, q=filters.q, channel_id=filters.channel_id,
            milestone=filters.milestone, stalled=filters.stalled, unmasked=unmasked, audit_session=audit,
        )
    header = [str(EXPORT_HEADERS[key]) for key in services.EXPORT_COLUMNS]
    return csv_response([header, *rows], "investors.csv")


def _revealed(investor_id: int) -> bool:
    """Tell whether this user revealed this investor a short while ago (and may still see personal data)."""
    until = session.get(REVEALED_KEY, {}).get(str(investor_id))
    return _may_see_pii() and isinstance(until, int | float) and until > utcnow().timestamp()


@bp.route("/investors/<int:investor_id>")
@require(Permission.INVESTORS_VIEW)
def detail(investor_id: int):  # type: ignore[no-untyped-def]
    reveal = _revealed(investor_id)
    db_session = request_session()
    profile = services.investor_profile(investor_id, session=db_session)
    contact = services.contact_details(profile.investor, masked=not reveal)
    page = page_arg()
    events, events_total = services.investor_events(profile.investor, session=db_session, page=page,
                                                    per_page=EVENTS_PER_PAGE)
    # Every role sees events masked; the raw payloads only after an audited reveal, folded away.
    payloads = {event.seq: services.pretty_payload(event.payload) for event in events}
    raw = {event.seq: services.pretty_payload(event.payload, masked=False) for event in events} if reveal else {}
    investor = profile.investor
    tree, referees = referral_services.referral_tree(investor.id, session=db_session)
    addresses = {k: v for k, v in (("sms", investor.phone), ("email", investor.email),
                                   ("wechat", investor.wechat_openid)) if v}
    return render_template(
        "investors/detail.html", profile=profile, investor=profile.investor, contact=contact,
        revealed=reveal, may_see_pii=_may_see_pii(), events=events, payloads=payloads, raw_payloads=raw,
        events_total=events_total, page=page, per_page=EVENTS_PER_PAGE, milestones=MILESTONES,
        milestone_labels=MILESTONE_LABELS, status_labels=INVESTMENT_STATUS_LABELS,
        movement_labels=MOVEMENT_KIND_LABELS,
        consent=channel_services.consent_of(session=db_session, investor_id=investor.id),
        unreachable=channel_services.unreachable_on(session=db_session, investor_id=investor.id, addresses=addresses),
        addresses=addresses, message_channels=CONSENT_CHANNEL_LABELS, consent_sources=CONSENT_SOURCE_LABELS,
        rewards=reward_services.investor_rewards(investor.id, session=db_session, status=None, now=utcnow()),
        invalid_uses=[u for u in reward_services.uses_of(session=db_session, investor_id=investor.id) if not u.valid],
        reward_kinds=KIND_LABELS, reward_statuses=REWARD_STATUS_LABELS, invalid_reasons=INVALID_REASON_LABELS,
        referral_tree=tree, referee_count=referees, referral_status_labels=REFERRAL_STATUS_LABELS,
        own_referral=referral_services.referral_of(investor.id, session=db_session),
        share_url=referral_services.share_url(investor.referral_code, current_app.config["PUBLIC_BASE_URL"]),
    )


@bp.route("/investors/<int:investor_id>/reveal", methods=["POST"])
@require(Permission.INVESTORS_PII)
def reveal(investor_id: int):  # type: ignore[no-untyped-def]
    investor = services.get_investor(investor_id, session=request_session())
    services.reveal_contact_details(investor, session=request_session())
    # Post-redirect-get: the session remembers the reveal (the investor id and until when, no personal
    # data), so the address bar, history and logs only ever hold the plain investor page.
    now = utcnow().timestamp()
    until = now + current_app.config["INVESTOR_REVEAL_SECONDS"]
    revealed = {key: value for key, value in session.get(REVEALED_KEY, {}).items()
                if isinstance(value, int | float) and value > now}
    revealed[str(investor_id)] = until
    session[REVEALED_KEY] = revealed
    return redirect(url_for("investors.detail", investor_id=investor_id))
