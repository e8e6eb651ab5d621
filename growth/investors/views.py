"""Investor pages: the searchable list with CSV export, and one investor's page with audited reveals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from channels import services as channel_services
from channels.models import CHANNEL_LABELS, CONSENT_SOURCES
from growth.audit.rules import MAX_REVEAL_REASON, REVEAL_REASON_LABELS
from growth.auth.permissions import Permission, require, role_has
from growth.crm import rules as crm_rules
from growth.crm import saved_searches, timeline
from growth.crm import services as crm_services
from growth.crm.models import OUTCOME_LABELS
from growth.crm.models import REASON_LABELS as TASK_REASON_LABELS
from growth.db import mark_rollback, request_session, short_write
from growth.errors import DomainError, Forbidden
from growth.exports import csv_response
from growth.inputs import form_id, id_arg, page_arg
from growth.investors import services, tags
from growth.investors.models import MILESTONE_LABELS, MILESTONES
from growth.investors.rules import REVEALED_KEY, SearchTerms, reveal_holds, search_terms
from growth.privacy import services as privacy
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
    tag: str = ""

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
        if self.tag:
            args["tag"] = self.tag
        return args


def _filters(args: MultiDict[str, str]) -> Filters:
    milestone = args.get("milestone", "").strip()
    return Filters(
        q=args.get("q", "").strip()[:MAX_QUERY_LENGTH],
        channel_id=id_arg("channel"),
        milestone=milestone if milestone in MILESTONES else None,
        stalled=args.get("stalled") == "1",
        tag=args.get("tag", "").strip()[:tags.MAX_TAG],
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
        stalled=filters.stalled, tag=filters.tag or None, page=page, per_page=per_page,
    )
    if terms.audited:
        # Its own short write: the list itself only reads, and must not hold the write lock to do so.
        with short_write() as audit_session:
            services.audit_search(terms, filters.q, results=total, session=audit_session)
    # The list is masked for every role: full contact details are shown only through an audited reveal.
    contacts = {row.investor.id: services.contact_details(row.investor) for row in rows}
    return render_template(
        "investors/index.html", rows=rows, contacts=contacts, total=total, page=page, per_page=per_page,
        tags_by_investor=tags.tags_of([row.investor.id for row in rows], session=db_session),
        filters=filters, channels=services.channel_choices(session=db_session), milestones=MILESTONES,
        milestone_labels=MILESTONE_LABELS, may_see_pii=_may_see_pii(), withheld=terms.withheld,
        saved_searches=saved_searches.listing("investors", user_id=current_user.id, session=db_session),
    )


@bp.route("/investors/saved-searches", methods=["POST"])
@require(Permission.INVESTORS_VIEW)
def save_search():  # type: ignore[no-untyped-def]
    args, problem = saved_searches.save_posted("investors", request.form, user_id=current_user.id,
                                               session=request_session(), now=utcnow())
    if problem:
        mark_rollback()
    flash(problem or _("筛选已保存。"), "danger" if problem else "success")
    return redirect(url_for("investors.index", **args))


@bp.route("/investors/saved-searches/<int:search_id>/delete", methods=["POST"])
@require(Permission.INVESTORS_VIEW)
def delete_search(search_id: int):  # type: ignore[no-untyped-def]
    saved_searches.delete(search_id, "investors", user_id=current_user.id, session=request_session())
    flash(_("已删除保存的筛选。"), "success")
    return redirect(url_for("investors.index"))


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
            milestone=filters.milestone, stalled=filters.stalled, tag=filters.tag or None, unmasked=unmasked,
            audit_session=audit,
        )
    header = [str(EXPORT_HEADERS[key]) for key in services.EXPORT_COLUMNS]
    return csv_response([header, *rows], "investors.csv")


def _revealed(investor_id: int) -> bool:
    """Tell whether this user revealed this investor a short while ago (and may still see personal data)."""
    return _may_see_pii() and reveal_holds(session.get(REVEALED_KEY), investor_id, utcnow().timestamp())


def _link(link: timeline.Link | None) -> str | None:
    """Return a timeline entry's URL when this user may open it (its route's permission), else None."""
    if link is None:
        return None
    view = current_app.view_functions.get(link.endpoint)
    permission = getattr(view, "required_permission", None)
    if view is None or (permission is not None and not role_has(current_user.role, permission)):
        return None
    return url_for(link.endpoint, **link.values)


def _detail_page(investor_id: int, *, errors: dict[str, str] | None = None, form: dict[str, str] | None = None,
                 status: int = 200) -> Any:
    """Render the investor 360 page (with a form's errors and values when a POST was refused)."""
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
    sources = timeline.sources_of(current_app)
    kinds = timeline.parse_kinds(request.args.getlist("kind"), sources)
    now = utcnow()
    history = timeline.timeline(investor, session=db_session, sources=sources, kinds=kinds,
                                page=page_arg("tl_page"), now=now)
    may_work = role_has(current_user.role, Permission.CRM_WORK)
    return render_template(
        "investors/detail.html", profile=profile, investor=profile.investor, contact=contact,
        revealed=reveal, may_see_pii=_may_see_pii(), events=events, payloads=payloads, raw_payloads=raw,
        events_total=events_total, page=page, per_page=EVENTS_PER_PAGE, milestones=MILESTONES,
        milestone_labels=MILESTONE_LABELS, status_labels=INVESTMENT_STATUS_LABELS,
        movement_labels=MOVEMENT_KIND_LABELS,
        consent=channel_services.consent_of(session=db_session, investor_id=investor.id),
        unreachable=channel_services.unreachable_on(session=db_session, investor_id=investor.id, addresses=addresses),
        addresses=addresses, message_channels=CONSENT_CHANNEL_LABELS, consent_sources=CONSENT_SOURCE_LABELS,
        rewards=reward_services.investor_rewards(investor.id, session=db_session, status=None, now=now),
        invalid_uses=[u for u in reward_services.uses_of(session=db_session, investor_id=investor.id) if not u.valid],
        reward_kinds=KIND_LABELS, reward_statuses=REWARD_STATUS_LABELS, invalid_reasons=INVALID_REASON_LABELS,
        referral_tree=tree, referee_count=referees, referral_status_labels=REFERRAL_STATUS_LABELS,
        own_referral=referral_services.referral_of(investor.id, session=db_session),
        share_url=referral_services.share_url(investor.referral_code, current_app.config["PUBLIC_BASE_URL"]),
        timeline=history, timeline_sources=sources, timeline_link=_link,
        timeline_labels={s.kind: s.label for s in sources},
        tags=tags.tags_of([investor.id], session=db_session)[investor.id], max_tag=tags.MAX_TAG,
        may_tag=role_has(current_user.role, Permission.INVESTORS_TAG),
        crm=crm_services.investor_panel(investor.id, session=db_session), may_work=may_work,
        outcome_labels=OUTCOME_LABELS, task_reason_labels=TASK_REASON_LABELS, max_note=crm_services.MAX_NOTE,
        reveal_reasons=REVEAL_REASON_LABELS, max_reveal_reason=MAX_REVEAL_REASON,
        errors=errors or {}, form=form or {},
    ), status


@bp.route("/investors/<int:investor_id>")
@require(Permission.INVESTORS_VIEW)
def detail(investor_id: int):  # type: ignore[no-untyped-def]
    return _detail_page(investor_id)


def _refused(investor_id: int, err: DomainError, form: dict[str, str]) -> Any:
    """Answer a form the page refused: the same page, 400, the error at its field and the values kept."""
    if err.field is None:
        raise err
    mark_rollback()
    return _detail_page(investor_id, errors={err.field: str(err.message)}, form=form, status=400)


@bp.route("/investors/<int:investor_id>/reveal", methods=["POST"])
@require(Permission.INVESTORS_PII)
def reveal(investor_id: int):  # type: ignore[no-untyped-def]
    investor = services.get_investor(investor_id, session=request_session())
    form = {k: request.form.get(k, "") for k in ("reason", "reason_text")}
    try:
        services.reveal_contact_details(investor, reason=form["reason"], reason_text=form["reason_text"][:1000],
                                        session=request_session())
    except DomainError as err:
        return _refused(investor_id, err, form)
    # Post-redirect-get: the session remembers the reveal (the investor id and until when, no personal
    # data), so the address bar, history and logs only ever hold the plain investor page.
    now = utcnow().timestamp()
    until = now + current_app.config["INVESTOR_REVEAL_SECONDS"]
    revealed = {key: value for key, value in session.get(REVEALED_KEY, {}).items()
                if isinstance(value, int | float) and value > now}
    revealed[str(investor_id)] = until
    session[REVEALED_KEY] = revealed
    return redirect(url_for("investors.detail", investor_id=investor_id))


# --- erasure (PIPL) -------------------------------------------------------------------------------


@bp.route("/investors/<int:investor_id>/erase", methods=["POST"])
@require(Permission.INVESTORS_ERASE)
def erase(investor_id: int):  # type: ignore[no-untyped-def]
    investor = services.get_investor(investor_id, session=request_session())
    form = {k: request.form.get(k, "") for k in ("erase_reason", "erase_confirm")}
    try:
        if form["erase_confirm"].strip() != investor.platform_user_id:
            raise DomainError(_("请输入该投资人的平台用户 ID 以确认删除"), field="erase_confirm")
        privacy.erase_investor(investor.platform_user_id, reason=form["erase_reason"][:1000],
                               session=request_session(), now=utcnow())
    except DomainError as err:
        if err.field == "reason":
            err.field = "erase_reason"
        return _refused(investor_id, err, form)
    flash(_("已删除该投资人的个人信息；其编号、里程碑与金额保留，统计数字不变。"), "success")
    return redirect(url_for("investors.detail", investor_id=investor_id))


# --- tags ------------------------------------------------------------------------------------------


@bp.route("/investors/<int:investor_id>/tags", methods=["POST"])
@require(Permission.INVESTORS_TAG)
def add_tag(investor_id: int):  # type: ignore[no-untyped-def]
    form = {"tag": request.form.get("tag", "")[:1000]}
    try:
        tag = tags.add_tag(investor_id, form["tag"], by=current_user.id, session=request_session(), now=utcnow())
    except DomainError as err:
        return _refused(investor_id, err, form)
    flash(_("已添加标签“%(tag)s”。", tag=tag), "success")
    return redirect(url_for("investors.detail", investor_id=investor_id, _anchor="tags"))


@bp.route("/investors/<int:investor_id>/tags/remove", methods=["POST"])
@require(Permission.INVESTORS_TAG)
def remove_tag(investor_id: int):  # type: ignore[no-untyped-def]
    tag = request.form.get("tag", "")
    if tags.remove_tag(investor_id, tag, session=request_session()):
        flash(_("已移除标签“%(tag)s”。", tag=tag), "success")
    return redirect(url_for("investors.detail", investor_id=investor_id, _anchor="tags"))


# --- the CRM panel: calls and notes from the investor page ----------------------------------------


@bp.route("/investors/<int:investor_id>/call", methods=["POST"])
@require(Permission.CRM_WORK)
def log_call(investor_id: int):  # type: ignore[no-untyped-def]
    form = {k: request.form.get(k, "") for k in ("task_id", "outcome", "note", "next_follow_up")}
    task_id = form_id("task_id")
    try:
        crm_services.log_investor_call(
            investor_id, task_id=task_id, outcome=form["outcome"], note=form["note"][:crm_services.MAX_NOTE],
            next_follow_up_at=crm_rules.follow_up_at(form["next_follow_up"]), agent_id=current_user.id,
            may_manage=role_has(current_user.role, Permission.CRM_MANAGE), session=request_session(), now=utcnow())
    except DomainError as err:
        return _refused(investor_id, err, form)
    flash(_("通话已记录，任务已完成。") if task_id is not None else _("通话已记录。"), "success")
    return redirect(url_for("investors.detail", investor_id=investor_id, _anchor="crm"))


@bp.route("/investors/<int:investor_id>/note", methods=["POST"])
@require(Permission.CRM_WORK)
def add_note(investor_id: int):  # type: ignore[no-untyped-def]
    form = {"body": request.form.get("body", "")}
    try:
        crm_services.add_note(investor_id, form["body"], author_id=current_user.id, session=request_session(),
                              now=utcnow())
    except DomainError as err:
        return _refused(investor_id, err, {"note_body": form["body"]})
    flash(_("备注已保存。"), "success")
    return redirect(url_for("investors.detail", investor_id=investor_id, _anchor="crm"))
