"""Read queries for the message pages and API: the delivery log with its filters, and channel health.

Everything here only reads. The delivery log pages by offset (people jump between pages); the API
pages by keyset on the id (a cursor), so a page never repeats or skips a message while new ones arrive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from channels.models import (
    MESSAGE_CHANNELS,
    NOT_ERRORS,
    WAITING,
    MessageTemplate,
    OutboxMessage,
    WechatMassJob,
)
from channels.recipients import Directory
from channels.templates import fill_name, has_slot
from growth.timeutil import SHANGHAI, as_utc, local_day_bounds

# --- the delivery log -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """The delivery log's filters (all optional); `start`/`end` are business dates (Asia/Shanghai), inclusive."""

    campaign_id: int | None = None
    channel: str | None = None
    status: str | None = None
    user_id: str | None = None
    start: date | None = None
    end: date | None = None

    @property
    def empty(self) -> bool:
        """Tell whether no filter is set."""
        return self == MessageFilter()

    def as_args(self) -> dict[str, str]:
        """Return the filters as query-string arguments (empty ones left out), as the pages' URLs carry them."""
        args = {"campaign_id": "" if self.campaign_id is None else str(self.campaign_id),
                "channel": self.channel or "", "status": self.status or "", "user_id": self.user_id or "",
                "start": self.start.isoformat() if self.start else "", "end": self.end.isoformat() if self.end else ""}
        return {k: v for k, v in args.items() if v}

    def conditions(self) -> list[ColumnElement[bool]]:
        """Return the SQL conditions of the filters."""
        m = OutboxMessage
        out: list[ColumnElement[bool]] = []
        if self.campaign_id is not None:
            out.append(m.campaign_id == self.campaign_id)
        if self.channel:
            out.append(m.channel == self.channel)
        if self.status:
            out.append(m.status == self.status)
        if self.user_id:
            out.append(m.user_id == self.user_id)
        if self.start:
            out.append(m.created_at >= local_day_bounds(self.start)[0])
        if self.end:
            out.append(m.created_at < local_day_bounds(self.end)[1])
        return out


def list_messages(filters: MessageFilter, *, session: Session, page: int = 1,
                  per_page: int = 50) -> tuple[list[OutboxMessage], int]:
    """Return one page of messages matching the filters, newest first, and how many match."""
    conditions = filters.conditions()
    total = session.scalar(select(func.count()).select_from(OutboxMessage).where(*conditions)) or 0
    if total <= (page - 1) * per_page:
        return [], total
    rows = session.scalars(select(OutboxMessage).where(*conditions).order_by(OutboxMessage.id.desc())
                           .offset((page - 1) * per_page).limit(per_page))
    return list(rows), total


def count_retryable(filters: MessageFilter, retryable: Sequence[str], *, session: Session) -> int:
    """Return how many messages matching the filters staff may queue again."""
    query = select(func.count()).select_from(OutboxMessage).where(*filters.conditions(),
                                                                  OutboxMessage.status.in_(retryable))
    return session.scalar(query) or 0


def iter_messages(filters: MessageFilter, *, chunk: int = 2000) -> Select[Any]:
    """Return the query of every message matching the filters, newest first (for exports, read in chunks)."""
    return (select(OutboxMessage).where(*filters.conditions()).order_by(OutboxMessage.id.desc())
            .execution_options(yield_per=chunk))


def messages_after(*, session: Session, campaign_id: int | None, user_id: str | None, status: str | None,
                   before_id: int | None, limit: int) -> list[OutboxMessage]:
    """Return up to `limit` + 1 messages with an id below `before_id`, newest first (the API's keyset page)."""
    m = OutboxMessage
    query = select(m)
    if campaign_id is not None:
        query = query.where(m.campaign_id == campaign_id)
    if user_id is not None:
        query = query.where(m.user_id == user_id)
    if status is not None:
        query = query.where(m.status == status)
    if before_id is not None:
        query = query.where(m.id < before_id)
    return list(session.scalars(query.order_by(m.id.desc()).limit(limit + 1)))


def related_messages(message: OutboxMessage, *, session: Session) -> list[OutboxMessage]:
    """Return the messages linked to one by fallback (the one it replaced, and those that replaced it)."""
    links: list[ColumnElement[bool]] = [OutboxMessage.fallback_of == message.id]
    if message.fallback_of is not None:
        links.append(OutboxMessage.id == message.fallback_of)
    return list(session.scalars(select(OutboxMessage).where(or_(*links)).order_by(OutboxMessage.id)))


def shown_content(message: OutboxMessage, *, session: Session, directory: Directory) -> dict[str, Any]:
    """Return a message's content with its name slots filled as delivery fills them (for a reader who may see names).

    The investor's name as it is now (one read); "" for a WeChat mass send, which went to everyone with "".
    Content without a slot (older messages, webhooks, redacted bodies) is returned as it is, with no read.
    """
    content = dict(message.content or {})
    if not has_slot(content):
        return content
    name = ""
    mass = message.channel == "wechat" and content.get("wechat_kind") == "mass"
    if message.investor_id is not None and not mass:
        found = directory.recipients([message.investor_id], session=session).get(message.investor_id)
        name = found.name if found is not None else ""
    return fill_name(content, name)


# Anything that looks like a phone number or an email address in free text (a provider's error detail).
_CONTACT = re.compile(r"(?<![0-9])\+?[0-9][0-9 -]{5,}[0-9](?![0-9])|[^\s@<>\"']+@[^\s@<>\"']+\.[A-Za-z]{2,}")


def redact_contacts(text: str | None) -> str | None:
    """Hide phone numbers and email addresses a provider may have put into an error text (keep the last 4)."""
    if not text:
        return text

    def hide(match: re.Match[str]) -> str:
        value = match.group(0)
        if "@" in value:
            return "****@" + value.rsplit("@", 1)[1]
        digits = re.sub(r"[^0-9]", "", value)
        return value if len(digits) < 7 else "****" + digits[-4:]

    return _CONTACT.sub(hide, text)


# --- channel health ---------------------------------------------------------------------------------


@dataclass(slots=True)
class LastError:
    """The most recent error a channel's messages met."""

    code: str | None
    detail: str | None
    at: datetime
    message_id: int


@dataclass(slots=True)
class ChannelHealth:
    """One channel's numbers for the health page."""

    channel: str
    day: dict[str, int] = field(default_factory=dict)  # status -> messages created in the last 24 h
    week: dict[str, int] = field(default_factory=dict)  # status -> messages created in the last 7 days
    sent_last_hour: int = 0
    oldest_waiting_at: datetime | None = None
    waiting: int = 0
    last_error: LastError | None = None

    def total(self, period: str) -> int:
        """Return every message of the period (`day` or `week`)."""
        return sum(getattr(self, period).values())

    def delivery_rate(self, period: str) -> float | None:
        """Return delivered / (sent + delivered + failed), None when no receipt came back in the period."""
        counts: Mapping[str, int] = getattr(self, period)
        delivered = counts.get("delivered", 0)
        base = counts.get("sent", 0) + delivered + counts.get("failed", 0)
        if not delivered or not base:  # without receipts every send would read as 0 %: say "no receipts" instead
            return None
        return delivered / base

    def oldest_waiting_age(self, now: datetime) -> timedelta | None:
        """Return how long the oldest waiting message has waited."""
        return None if self.oldest_waiting_at is None else now - as_utc(self.oldest_waiting_at)


def channel_health(*, session: Session, now: datetime) -> dict[str, ChannelHealth]:
    """Return every channel's health: counts by status (24 h, 7 days), sends in the last hour, waiting, last error.

    Three grouped queries whatever the number of messages or channels.
    """
    m = OutboxMessage
    day_ago, week_ago, hour_ago = now - timedelta(days=1), now - timedelta(days=7), now - timedelta(hours=1)
    health = {channel: ChannelHealth(channel) for channel in MESSAGE_CHANNELS}
    in_day = func.sum(case((m.created_at >= day_ago, 1), else_=0))
    counts = session.execute(select(m.channel, m.status, in_day, func.count()).where(m.created_at >= week_ago)
                             .group_by(m.channel, m.status))
    for channel, status, day, week in counts:
        h = health.setdefault(channel, ChannelHealth(channel))
        h.week[status] = int(week)
        if day:
            h.day[status] = int(day)
    # Sent in the last hour, and the waiting queue, whenever the messages were created.
    sent = func.sum(case((m.sent_at >= hour_ago, 1), else_=0))
    waiting = func.sum(case((m.status.in_(WAITING), 1), else_=0))
    oldest = func.min(case((m.status.in_(WAITING), m.created_at), else_=None))
    activity = select(m.channel, sent, waiting, oldest).where(
        or_(m.sent_at >= hour_ago, m.status.in_(WAITING))).group_by(m.channel)
    for channel, sent_count, waiting_count, oldest_at in session.execute(activity):
        h = health.setdefault(channel, ChannelHealth(channel))
        h.sent_last_hour, h.waiting, h.oldest_waiting_at = int(sent_count or 0), int(waiting_count or 0), oldest_at
    # The latest error per channel: the newest errored message of each channel, joined back.
    errored = and_(m.error_code.is_not(None) | m.error.is_not(None), m.status.not_in(NOT_ERRORS),
                   m.updated_at >= week_ago)
    latest = (select(m.channel.label("channel"), func.max(m.updated_at).label("at")).where(errored)
              .group_by(m.channel).subquery())
    rows = session.execute(select(m.channel, m.error_code, m.error, m.updated_at, m.id)
                           .join(latest, and_(m.channel == latest.c.channel, m.updated_at == latest.c.at))
                           .where(errored).order_by(m.id))
    for channel, code, detail, at, message_id in rows:
        health.setdefault(channel, ChannelHealth(channel)).last_error = LastError(code, detail, at, message_id)
    return health


def month_start(now: datetime) -> datetime:
    """Return the start (aware UTC) of `now`'s calendar month in business time (Asia/Shanghai)."""
    local = as_utc(now).astimezone(SHANGHAI)
    return local_day_bounds(local.date().replace(day=1))[0]


def mass_jobs_this_month(*, session: Session, now: datetime) -> list[WechatMassJob]:
    """Return the WeChat mass sends of `now`'s month (Asia/Shanghai), newest first."""
    return list(session.scalars(select(WechatMassJob).where(WechatMassJob.sent_at >= month_start(now))
                                .order_by(WechatMassJob.sent_at.desc(), WechatMassJob.id.desc())))


# --- templates and investors ------------------------------------------------------------------------


def list_templates(*, session: Session, archived: bool = False, channel: str | None = None) -> list[MessageTemplate]:
    """Return the template library (active or archived), by channel then name."""
    query = select(MessageTemplate).where(MessageTemplate.archived.is_(archived))
    if channel:
        query = query.where(MessageTemplate.channel == channel)
    return list(session.scalars(query.order_by(MessageTemplate.channel, MessageTemplate.name)))
