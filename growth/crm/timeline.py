"""The investor 360 timeline: one list, newest first, of everything that happened to and around an investor.

Each kind of entry comes from a source: a function that reads the newest `limit` entries of its kind for one
investor (one query, by `investor_id`, on an index). The timeline asks every source for the same window —
enough rows for the page asked for — merges them and cuts the page, so a page costs one query per source
however many rows an investor has, and the newest N entries of the merge are always among the sources'
newest N. Pages beyond MAX_PAGES are not offered.

The growth sources are built in; a package `growth` may not import (campaigns) registers its own with the app
(`register_source`, called by the composition root), the way it contributes to the OpenAPI description.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from flask import Flask
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import String, literal, select, union_all
from sqlalchemy.orm import Session

from channels.models import CHANNEL_LABELS, CLASS_LABELS, OutboxMessage
from channels.models import STATUS_LABELS as MESSAGE_STATUS_LABELS
from channels.queries import redact_contacts
from channels.templates import fill_name
from growth.auth.models import StaffUser
from growth.crm.models import DO_NOT_CONTACT, OUTCOME_LABELS, REASON_LABELS, CrmCall, CrmNote, CrmTask
from growth.crm.models import STATUS_LABELS as TASK_STATUS_LABELS
from growth.investors.models import MILESTONE_LABELS, MILESTONES, FundsMovement, Investment, Investor
from growth.investors.rules import mask_name
from growth.money import format_rate, format_yuan
from growth.rewards.models import ENTRY_LABELS, KIND_LABELS, Reward, RewardEntry
from growth.timeutil import SHANGHAI

PER_PAGE = 20
MAX_PAGES = 25  # the window a source reads is at most MAX_PAGES × PER_PAGE + 1 rows
SNIPPET = 80  # characters of a message's text shown (masked)
EXTENSION = "growth.crm.timeline"

# Entry kinds in filter-chip order, with their labels; a registered source brings its own label.
KIND_LABELS_BUILT_IN = {
    "milestone": _l("里程碑"),
    "investment": _l("投资记录"),
    "funds": _l("充值提现"),
    "reward": _l("奖励"),
    "message": _l("消息记录"),
    "call": _l("通话"),
    "note": _l("客服备注"),
    "task": _l("任务"),
}
# Badge colours (Bootstrap) of a message's status, so a failure stands out.
MESSAGE_TONES = {"delivered": "success", "sent": "success", "failed": "danger", "dead": "danger",
                 "unreachable": "dark", "skipped_no_consent": "secondary", "capped": "secondary",
                 "deferred": "warning", "queued": "info", "sending": "info"}
REWARD_TONES = {"granted": "success", "redeemed": "primary", "paid": "primary", "expired": "secondary",
                "revoked": "warning", "clawed_back": "danger", "debt": "danger"}


@dataclass(frozen=True, slots=True)
class Link:
    """Where an entry leads: an endpoint and its values (the page shows it only to roles that may open it)."""

    endpoint: str
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the timeline.

    `title` and `detail` are already in the reader's language and hold no personal data of the investor
    (message texts are masked; calls and notes are staff text). `status` is a short badge with its
    Bootstrap `tone`; `upcoming` marks an entry in the future (a maturity to come).
    """

    at: datetime
    kind: str
    title: str
    detail: str = ""
    link: Link | None = None
    status: str | None = None
    tone: str = "secondary"
    upcoming: bool = False


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What a source reads with: the session, the investor's row, how many entries at most, and now."""

    session: Session
    investor: Investor
    limit: int
    now: datetime


SourceFn = Callable[[SourceContext], Sequence[Entry]]


@dataclass(frozen=True, slots=True)
class Source:
    """A kind of entry, its label (a filter chip) and the function that reads it."""

    kind: str
    label: Any
    fetch: SourceFn


@dataclass(frozen=True, slots=True)
class TimelinePage:
    """One page of the timeline, the kinds it was filtered to, and whether an older page exists."""

    entries: list[Entry]
    page: int
    per_page: int
    has_more: bool
    kinds: frozenset[str]


# --- the registry -----------------------------------------------------------------------------------


def _registry(app: Flask) -> list[Source]:
    registered: list[Source] = app.extensions.setdefault(EXTENSION, [])
    return registered


def register_source(app: Flask, kind: str, fetch: SourceFn, *, label: Any) -> None:
    """Add a kind of entry to the app's timeline; a kind taken twice is a programming error."""
    if kind in KIND_LABELS_BUILT_IN or any(s.kind == kind for s in _registry(app)):
        raise ValueError(f"timeline source {kind!r} registered twice")
    _registry(app).append(Source(kind, label, fetch))


def sources_of(app: Flask) -> list[Source]:
    """Return the built-in sources and the ones registered with the app, in filter-chip order."""
    built_in = [Source(kind, KIND_LABELS_BUILT_IN[kind], fetch) for kind, fetch in _BUILT_IN.items()]
    # Registered kinds (campaigns) go after the money kinds and before the CRM's own.
    cut = list(KIND_LABELS_BUILT_IN).index("call")
    return built_in[:cut] + _registry(app) + built_in[cut:]


def parse_kinds(values: Iterable[str], sources: Sequence[Source]) -> frozenset[str]:
    """Return the known kinds among `values` (an empty set means every kind)."""
    known = {s.kind for s in sources}
    return frozenset(v for v in values if v in known)


def timeline(investor: Investor, *, session: Session, sources: Sequence[Source], kinds: frozenset[str] = frozenset(),
             page: int = 1, per_page: int = PER_PAGE, now: datetime) -> TimelinePage:
    """Return one page of an investor's timeline, newest first (`kinds` empty: every kind).

    One query per source: each reads its newest `page × per_page + 1` entries.
    """
    page = min(max(page, 1), MAX_PAGES)
    window = page * per_page + 1
    context = SourceContext(session, investor, window, now)
    entries: list[Entry] = []
    for source in sources:
        if kinds and source.kind not in kinds:
            continue
        entries += list(source.fetch(context))[:window]
    entries.sort(key=lambda e: e.at, reverse=True)  # stable: ties keep the sources' order
    start = (page - 1) * per_page
    return TimelinePage(entries[start:start + per_page], page, per_page,
                        has_more=len(entries) > start + per_page and page < MAX_PAGES, kinds=kinds)


# --- masking ----------------------------------------------------------------------------------------


def masked_text(text: object, investor: Investor, *, limit: int = SNIPPET) -> str:
    """Return a message text as the timeline shows it: phones and emails hidden, the investor's name masked, cut.

    A stored body holds a name slot (`channels.templates.NAME_SLOT`) where the name goes: it shows masked too.
    """
    if not isinstance(text, str) or not text:
        return ""
    name = (investor.name or "").strip()
    text = str(fill_name({"text": text}, mask_name(name))["text"])
    out = redact_contacts(text) or ""
    if name:
        out = out.replace(name, mask_name(name))
        if len(name) > 2:  # a given name alone ("三丰") is as telling as the whole name
            out = out.replace(name[1:], "*" * (len(name) - 1))
    out = re.sub(r"\s+", " ", out).strip()
    return out if len(out) <= limit else out[:limit - 1] + "…"


# --- the built-in sources ---------------------------------------------------------------------------


def milestones(ctx: SourceContext) -> list[Entry]:
    """Return the milestones the investor reached (read from their row: no query)."""
    out = [Entry(at, "milestone", _("达成里程碑：%(name)s", name=MILESTONE_LABELS[m]))
           for m in MILESTONES if (at := ctx.investor.milestone(m)) is not None]
    return sorted(out, key=lambda e: e.at, reverse=True)[:ctx.limit]


def _product(name: str | None, ref: str) -> str:
    product = name or _("未知产品")
    return f"{product} · {ref}"


def _start_of(day: date) -> datetime:
    """Return the start of a Shanghai calendar day, in UTC."""
    return datetime.combine(day, time(0), tzinfo=SHANGHAI).astimezone(UTC)


def investments(ctx: SourceContext) -> list[Entry]:
    """Return investments made, redeemed and matured, and the maturities of active ones (two queries)."""
    iid = ctx.investor.id
    cols = (Investment.id, Investment.investment_id, Investment.product_name, Investment.amount_fen,
            Investment.term_days, Investment.annual_rate_bp, Investment.redeemed_fen,
            Investment.matured_principal_fen, Investment.interest_fen)
    branches = [select(*cols, at.label("at"), literal(what, String).label("what"))
                .where(Investment.investor_id == iid, at.is_not(None))
                for what, at in (("made", Investment.started_at), ("redeemed", Investment.redeemed_at),
                                 ("matured", Investment.matured_at))]
    u = union_all(*branches).subquery()
    rows = ctx.session.execute(select(u).order_by(u.c.at.desc(), u.c.id.desc()).limit(ctx.limit)).all()
    out: list[Entry] = []
    for r in rows:
        link = Link("investors.detail", {"investor_id": iid, "_anchor": "investments"})
        if r.what == "made":
            terms = " · ".join(x for x in (_("%(n)d 天", n=r.term_days) if r.term_days else "",
                                           format_rate(r.annual_rate_bp) if r.annual_rate_bp else "") if x)
            out.append(Entry(r.at, "investment", _("投资 %(amount)s", amount=format_yuan(r.amount_fen)),
                             " · ".join(x for x in (_product(r.product_name, r.investment_id), terms) if x), link))
        elif r.what == "redeemed":
            out.append(Entry(r.at, "investment", _("赎回 %(amount)s", amount=format_yuan(r.redeemed_fen)),
                             _product(r.product_name, r.investment_id), link, status=_("赎回"), tone="warning"))
        else:
            out.append(Entry(r.at, "investment", _("到期 %(amount)s", amount=format_yuan(r.matured_principal_fen)),
                             _("%(product)s · 利息 %(interest)s", product=_product(r.product_name, r.investment_id),
                               interest=format_yuan(r.interest_fen)), link, status=_("已到期")))
    today = ctx.now.astimezone(SHANGHAI).date()
    coming = ctx.session.execute(
        select(Investment.investment_id, Investment.product_name, Investment.amount_fen, Investment.maturity_date)
        .where(Investment.investor_id == iid, Investment.status == "active", Investment.maturity_date.is_not(None))
        .order_by(Investment.maturity_date.desc(), Investment.id.desc()).limit(ctx.limit)).all()
    for ref, product, amount, day in coming:
        if day is None:
            continue
        days = (day - today).days
        when = (_("今天到期") if days == 0 else _("%(n)d 天后到期", n=days) if days > 0
                else _("已过到期日，待平台确认"))
        title = _("到期日 %(day)s：%(amount)s", day=day.isoformat(), amount=format_yuan(amount))
        out.append(Entry(_start_of(day), "investment", title, _product(product, ref),
                         Link("investors.detail", {"investor_id": iid, "_anchor": "investments"}),
                         status=when, tone="info" if days >= 0 else "warning", upcoming=days >= 0))
    return out


def funds(ctx: SourceContext) -> list[Entry]:
    """Return deposits and withdrawals, newest first."""
    rows = ctx.session.execute(
        select(FundsMovement.kind, FundsMovement.amount_fen, FundsMovement.occurred_at, FundsMovement.external_id)
        .where(FundsMovement.investor_id == ctx.investor.id)
        .order_by(FundsMovement.occurred_at.desc(), FundsMovement.id.desc()).limit(ctx.limit)).all()
    return [Entry(at, "funds", _("充值 %(amount)s", amount=format_yuan(amount)) if kind == "deposit"
                  else _("提现 %(amount)s", amount=format_yuan(amount)), ref)
            for kind, amount, at, ref in rows]


def rewards(ctx: SourceContext) -> list[Entry]:
    """Return the ledger entries of the investor's rewards (granted, redeemed, expired, revoked, paid …)."""
    rows = ctx.session.execute(
        select(RewardEntry.kind, RewardEntry.at, RewardEntry.amount_fen, RewardEntry.investment_id, RewardEntry.note,
               Reward.id, Reward.kind.label("reward_kind"), Reward.amount_fen.label("face_fen"),
               Reward.annual_rate_bp, Reward.rate_bp)
        .join(Reward, Reward.id == RewardEntry.reward_id)
        .where(Reward.investor_id == ctx.investor.id)
        .order_by(RewardEntry.at.desc(), RewardEntry.id.desc()).limit(ctx.limit)).all()
    out = []
    for r in rows:
        face = (format_yuan(r.face_fen) if r.face_fen else
                format_rate(r.annual_rate_bp or r.rate_bp) if (r.annual_rate_bp or r.rate_bp) else "")
        title = f"{KIND_LABELS.get(r.reward_kind, r.reward_kind)} {face}".strip()
        detail = " · ".join(x for x in (f"rw_{r.id}", r.investment_id or "",
                                        format_yuan(r.amount_fen) if r.amount_fen else "") if x)
        out.append(Entry(r.at, "reward", title, detail, Link("rewards.detail", {"reward_id": r.id}),
                         status=str(ENTRY_LABELS.get(r.kind, r.kind)), tone=REWARD_TONES.get(r.kind, "secondary")))
    return out


def messages(ctx: SourceContext) -> list[Entry]:
    """Return messages to the investor with channel, class, sender or campaign, status and masked text."""
    rows = ctx.session.execute(
        select(OutboxMessage.id, OutboxMessage.channel, OutboxMessage.message_class, OutboxMessage.sender,
               OutboxMessage.campaign_id, OutboxMessage.status, OutboxMessage.content, OutboxMessage.created_at,
               OutboxMessage.error_code, OutboxMessage.fallback_of)
        .where(OutboxMessage.investor_id == ctx.investor.id)
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc()).limit(ctx.limit)).all()
    out = []
    for r in rows:
        content = r.content if isinstance(r.content, dict) else {}
        origin = _("活动 #%(id)d", id=r.campaign_id) if r.campaign_id is not None else r.sender
        template = content.get("template_code") or content.get("template_id") or ""
        body = content.get("subject") or content.get("text")
        if r.channel == "wechat" and content.get("wechat_kind") == "mass" and isinstance(body, str):
            body = fill_name({"text": body}, "")["text"]  # a mass send went to everyone without a name
        text = masked_text(body, ctx.investor)
        parts = [origin, _("模板 %(code)s", code=template) if template else "",
                 _("（备用渠道）") if r.fallback_of else "", text, r.error_code or ""]
        title = f"{CHANNEL_LABELS.get(r.channel, r.channel)} · {CLASS_LABELS.get(r.message_class, r.message_class)}"
        out.append(Entry(r.created_at, "message", title, " · ".join(p for p in parts if p),
                         Link("channels.detail", {"message_id": r.id}),
                         status=str(MESSAGE_STATUS_LABELS.get(r.status, r.status)),
                         tone=MESSAGE_TONES.get(r.status, "secondary")))
    return out


def _staff_name(name: str | None, email: str | None) -> str:
    return name or email or _("（已删除的员工）")


def calls(ctx: SourceContext) -> list[Entry]:
    """Return logged calls: outcome, agent, note and the next follow-up agreed."""
    rows = ctx.session.execute(
        select(CrmCall.id, CrmCall.task_id, CrmCall.outcome, CrmCall.note, CrmCall.next_follow_up_at,
               CrmCall.created_at, StaffUser.name, StaffUser.email)
        .outerjoin(StaffUser, StaffUser.id == CrmCall.agent_id)
        .where(CrmCall.investor_id == ctx.investor.id)
        .order_by(CrmCall.created_at.desc(), CrmCall.id.desc()).limit(ctx.limit)).all()
    out = []
    for r in rows:
        follow = (_("下次回访 %(at)s", at=r.next_follow_up_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M"))
                  if r.next_follow_up_at else "")
        detail = " · ".join(x for x in (_staff_name(r.name, r.email), follow, r.note or "") if x)
        out.append(Entry(r.created_at, "call", _("通话：%(outcome)s", outcome=OUTCOME_LABELS.get(r.outcome, r.outcome)),
                         detail, Link("crm.task", {"task_id": r.task_id}) if r.task_id else None,
                         # The title names the outcome; only 要求勿扰 also gets a badge, since it stops marketing.
                         status=str(OUTCOME_LABELS[r.outcome]) if r.outcome == DO_NOT_CONTACT else None,
                         tone="danger"))
    return out


def notes(ctx: SourceContext) -> list[Entry]:
    """Return notes staff wrote about the investor."""
    rows = ctx.session.execute(
        select(CrmNote.body, CrmNote.created_at, StaffUser.name, StaffUser.email)
        .outerjoin(StaffUser, StaffUser.id == CrmNote.author_id)
        .where(CrmNote.investor_id == ctx.investor.id)
        .order_by(CrmNote.created_at.desc(), CrmNote.id.desc()).limit(ctx.limit)).all()
    return [Entry(at, "note", _("备注（%(who)s）", who=_staff_name(name, email)), body)
            for body, at, name, email in rows]


def tasks(ctx: SourceContext) -> list[Entry]:
    """Return follow-up tasks opened and closed."""
    iid = ctx.investor.id
    cols = (CrmTask.id, CrmTask.reason, CrmTask.status)
    u = union_all(
        select(*cols, CrmTask.created_at.label("at"), literal("opened", String).label("what"))
        .where(CrmTask.investor_id == iid),
        select(*cols, CrmTask.closed_at.label("at"), literal("closed", String).label("what"))
        .where(CrmTask.investor_id == iid, CrmTask.closed_at.is_not(None)),
    ).subquery()
    rows = ctx.session.execute(select(u).order_by(u.c.at.desc(), u.c.id.desc()).limit(ctx.limit)).all()
    out = []
    for r in rows:
        reason = REASON_LABELS.get(r.reason, r.reason)
        if r.what == "opened":
            title, status, tone = _("新任务：%(reason)s", reason=reason), _("创建"), "info"
        else:
            title = _("任务关闭：%(reason)s", reason=reason)
            status, tone = str(TASK_STATUS_LABELS.get(r.status, r.status)), "secondary"
        out.append(Entry(r.at, "task", title, _("任务 #%(id)d", id=r.id), Link("crm.task", {"task_id": r.id}),
                         status=status, tone=tone))
    return out


_BUILT_IN: dict[str, SourceFn] = {
    "milestone": milestones, "investment": investments, "funds": funds, "reward": rewards, "message": messages,
    "call": calls, "note": notes, "task": tasks,
}
