"""Acquisition channels, tracking links, clicks, QR codes and daily costs.

Services take `session=` and flush; the caller commits. Every change by a person is audited.

Decisions worth knowing:
- A channel's code and a link's short code never change once created: they are printed on posters and
  sent back by the platform on user.registered, so renaming them would silently break attribution.
- A visit through an inactive link, or a link of an inactive channel, is still redirected (an old
  poster must never strand a visitor) and still carries channel_code and the utm_* parameters, so the
  registration is attributed to the channel it truly came from. But no click is stored and no click_id
  is sent: a stopped link stops collecting data (stats of a stopped link stay frozen, and bots
  hammering a dead URL do not grow the table).
- Costs are set, not added: one row per (channel, business day), written with an upsert on that unique
  key, so entering or importing the same figure twice changes nothing.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import segno
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from growth.acquisition import rules
from growth.acquisition.models import AcquisitionChannel, ChannelCost, Click, TrackingLink
from growth.acquisition.projection import ORGANIC_CHANNEL, REFERRAL_CHANNEL
from growth.audit.services import record
from growth.errors import Conflict, DomainError, NotFound
from growth.investors.models import Investment, Investor
from growth.money import MONEY_OR_ZERO_PATTERN
from growth.timeutil import local_day_bounds

_CODE_ATTEMPTS = 8


def _refuse(err: rules.RuleError, field_name: str) -> DomainError:
    return DomainError(err.message, field=field_name)


# ---------------------------------------------------------------- channels


def get_channel(channel_id: int, *, session: Session) -> AcquisitionChannel:
    """Return a channel or raise NotFound."""
    channel = session.get(AcquisitionChannel, channel_id)
    if channel is None:
        raise NotFound(_("渠道不存在"))
    return channel


def find_channel(code: str, *, session: Session) -> AcquisitionChannel | None:
    """Return the channel with this code, or None."""
    return session.scalar(select(AcquisitionChannel).where(AcquisitionChannel.code == code))


def _clean_text(value: str | None, limit: int, label: object, field_name: str, *, required: bool = False) -> str:
    """Return a trimmed text or refuse it; `label` names the field to people (a translated string)."""
    value = (value or "").strip()
    if required and not value:
        raise DomainError(_("请填写%(label)s", label=label), field=field_name)
    if len(value) > limit:
        raise DomainError(_("%(label)s最多 %(n)d 个字符", label=label, n=limit), field=field_name)
    return value


def _check_kind(kind: str) -> str:
    try:
        return rules.validate_kind(kind)
    except rules.RuleError as err:
        raise _refuse(err, "kind") from None


def create_channel(
    *, code: str, name: str, kind: str = "other", owner: str = "", notes: str = "", session: Session,
    by: str | None = None,
) -> AcquisitionChannel:
    """Create a channel; its code must be new (Conflict otherwise)."""
    try:
        code = rules.validate_channel_code(code)
    except rules.RuleError as err:
        raise _refuse(err, "code") from None
    name = _clean_text(name, 100, _("渠道名称"), "name", required=True)
    owner = _clean_text(owner, 100, _("负责人"), "owner")
    notes = _clean_text(notes, 2000, _("备注"), "notes")
    kind = _check_kind(kind)
    taken = Conflict(_("渠道代码已存在：%(code)s", code=code), field="code")
    if session.scalar(select(AcquisitionChannel.id).where(AcquisitionChannel.code == code)) is not None:
        raise taken
    channel = AcquisitionChannel(code=code, name=name, kind=kind, owner=owner, notes=notes, active=True)
    try:
        with session.begin_nested():  # the unique code decides when two people create it at once
            session.add(channel)
    except IntegrityError:
        raise taken from None
    record("channel.created", session=session, target_type="channel", target_id=channel.id, actor=by,
           details={"code": code, "name": name, "kind": kind})
    return channel


def update_channel(
    channel: AcquisitionChannel, *, name: str, kind: str, owner: str = "", notes: str = "", session: Session,
    by: str | None = None,
) -> AcquisitionChannel:
    """Change a channel's name, kind, owner and notes (never its code)."""
    values = {
        "name": _clean_text(name, 100, _("渠道名称"), "name", required=True),
        "kind": _check_kind(kind),
        "owner": _clean_text(owner, 100, _("负责人"), "owner"),
        "notes": _clean_text(notes, 2000, _("备注"), "notes"),
        "auto_created": False,  # a person has now reviewed a channel the processor created from a code
    }
    _change_audited(channel, values, action="channel.updated", target_type="channel", session=session, by=by)
    return channel


def _change_audited(
    obj: AcquisitionChannel | TrackingLink, values: Mapping[str, object], *, action: str, target_type: str,
    session: Session, by: str | None,
) -> None:
    """Apply the values that differ and audit them as [old, new] pairs (nothing changed: no entry)."""
    changes = {k: [getattr(obj, k), v] for k, v in values.items() if getattr(obj, k) != v}
    for key, (_old, new) in changes.items():
        setattr(obj, key, new)
    session.flush()
    if changes:
        record(action, session=session, target_type=target_type, target_id=obj.id, actor=by,
               details={"code": obj.code, "changes": changes})


def _set_active_audited(
    obj: AcquisitionChannel | TrackingLink, active: bool, *, kind: str, target_type: str, session: Session,
    by: str | None,
) -> None:
    if obj.active == active:
        return
    obj.active = active
    session.flush()
    record(f"{kind}.reactivated" if active else f"{kind}.deactivated", session=session, target_type=target_type,
           target_id=obj.id, actor=by, details={"code": obj.code})


def set_channel_active(channel: AcquisitionChannel, active: bool, *, session: Session, by: str | None = None) -> None:
    """Deactivate or reactivate a channel (its links keep redirecting but stop logging clicks)."""
    _set_active_audited(channel, active, kind="channel", target_type="channel", session=session, by=by)


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """A channel and its figures for one period (links: as they are now)."""

    channel: AcquisitionChannel
    links: int
    active_links: int
    clicks: int
    registrations: int
    first_investors: int
    first_investment_fen: int
    cost_fen: int

    @property
    def cost_per_registration_fen(self) -> int | None:
        """Return the cost per registration, or None when nobody registered."""
        return rules.cost_per(self.cost_fen, self.registrations)

    @property
    def cost_per_first_investor_fen(self) -> int | None:
        """Return the cost per first investor, or None when nobody invested."""
        return rules.cost_per(self.cost_fen, self.first_investors)


def period_bounds(period: rules.Period) -> tuple[datetime, datetime]:
    """Return the UTC [start, end) instants of a period's business days (Asia/Shanghai)."""
    return local_day_bounds(period.start)[0], local_day_bounds(period.end)[1]


def _first_investment_amount() -> Any:
    """The amount of an investor's first investment (the earliest start; the lowest id on a tie)."""
    return (
        select(Investment.amount_fen)
        .where(Investment.investor_id == Investor.id, Investment.started_at == Investor.first_investment_at)
        .order_by(Investment.id).limit(1)
        .correlate(Investor).scalar_subquery()
    )


def _stats_query(period: rules.Period) -> Select:
    lo, hi = period_bounds(period)
    links = (
        select(TrackingLink.channel_id.label("cid"), func.count().label("n"),
               func.sum(case((TrackingLink.active.is_(True), 1), else_=0)).label("active_n"))
        .group_by(TrackingLink.channel_id).subquery()
    )
    clicks = (
        select(Click.channel_id.label("cid"), func.count().label("n"))
        .where(Click.at >= lo, Click.at < hi).group_by(Click.channel_id).subquery()
    )
    # The funnel's cohort: investors whose registration (Asia/Shanghai date) lies in the period; a first
    # investor is a member of that cohort who has invested (whenever), with their first investment's amount.
    cohort = (
        select(Investor.channel_id.label("cid"), Investor.first_investment_at.label("first_at"),
               _first_investment_amount().label("first_fen"))
        .where(Investor.channel_id.is_not(None), Investor.registered_at >= lo, Investor.registered_at < hi)
        .subquery()
    )
    regs = (
        select(cohort.c.cid, func.count().label("n"),
               func.sum(case((cohort.c.first_at.is_not(None), 1), else_=0)).label("first_n"),
               func.sum(case((cohort.c.first_at.is_not(None), func.coalesce(cohort.c.first_fen, 0)), else_=0))
               .label("first_fen"))
        .group_by(cohort.c.cid).subquery()
    )
    costs = (
        select(ChannelCost.channel_id.label("cid"), func.sum(ChannelCost.amount_fen).label("fen"))
        .where(ChannelCost.day >= period.start, ChannelCost.day <= period.end)
        .group_by(ChannelCost.channel_id).subquery()
    )
    return (
        select(
            AcquisitionChannel,
            func.coalesce(links.c.n, 0), func.coalesce(links.c.active_n, 0), func.coalesce(clicks.c.n, 0),
            func.coalesce(regs.c.n, 0), func.coalesce(regs.c.first_n, 0), func.coalesce(regs.c.first_fen, 0),
            func.coalesce(costs.c.fen, 0),
        )
        .outerjoin(links, links.c.cid == AcquisitionChannel.id)
        .outerjoin(clicks, clicks.c.cid == AcquisitionChannel.id)
        .outerjoin(regs, regs.c.cid == AcquisitionChannel.id)
        .outerjoin(costs, costs.c.cid == AcquisitionChannel.id)
    )


def _stats(row: Any) -> ChannelStats:
    return ChannelStats(row[0], *(int(v) for v in row[1:]))


def list_channels(
    *, session: Session, period: rules.Period, active: bool | None = None, kind: str | None = None,
    q: str | None = None,
) -> list[ChannelStats]:
    """Return channels with their links and, for the period, clicks, cohort registrations, first investors,
    first-investment amount and cost.

    One query whatever the number of channels.
    """
    query = _stats_query(period)
    if active is not None:
        query = query.where(AcquisitionChannel.active.is_(active))
    if kind:
        query = query.where(AcquisitionChannel.kind == kind)
    if q and q.strip():
        pattern = f"%{q.strip().lower()}%"
        query = query.where(or_(func.lower(AcquisitionChannel.code).like(pattern),
                                func.lower(AcquisitionChannel.name).like(pattern)))
    query = query.order_by(AcquisitionChannel.active.desc(), AcquisitionChannel.code)
    return [_stats(row) for row in session.execute(query)]


def channel_stats(channel: AcquisitionChannel, *, session: Session, period: rules.Period) -> ChannelStats:
    """Return the list-page figures of one channel for a period."""
    return _stats(session.execute(_stats_query(period).where(AcquisitionChannel.id == channel.id)).one())


def total_stats(rows: list[ChannelStats]) -> dict[str, int | None]:
    """Return the totals of a channel list, with the cost per registration and per first investor."""
    totals: dict[str, int | None] = {
        name: sum(getattr(r, name) for r in rows)
        for name in ("links", "active_links", "clicks", "registrations", "first_investors", "first_investment_fen",
                     "cost_fen")
    }
    cost, regs, firsts = (int(totals[k] or 0) for k in ("cost_fen", "registrations", "first_investors"))
    totals["cost_per_registration_fen"] = rules.cost_per(cost, regs)
    totals["cost_per_first_investor_fen"] = rules.cost_per(cost, firsts)
    return totals


# ---------------------------------------------------------------- tracking links


def get_link(link_id: int, *, session: Session) -> TrackingLink:
    """Return a tracking link or raise NotFound."""
    link = session.get(TrackingLink, link_id)
    if link is None:
        raise NotFound(_("推广链接不存在"))
    return link


def _link_values(name: str, landing_url: str, utm: Mapping[str, str] | None) -> dict[str, str]:
    values = {"name": _clean_text(name, 100, _("链接名称"), "name", required=True)}
    try:
        values["landing_url"] = rules.validate_landing_url(landing_url)
    except rules.RuleError as err:
        raise _refuse(err, "landing_url") from None
    for key in rules.UTM_FIELDS:
        values[key] = _clean_text((utm or {}).get(key), 100, key, key)
    return values


def _new_code(session: Session, code: str | None) -> str:
    if code and code.strip():
        try:
            code = rules.validate_link_code(code)
        except rules.RuleError as err:
            raise _refuse(err, "code") from None
        if session.scalar(select(TrackingLink.id).where(TrackingLink.code == code)) is not None:
            raise Conflict(_("短链代码已被使用：%(code)s", code=code), field="code")
        return code
    for _attempt in range(_CODE_ATTEMPTS):
        candidate = rules.new_link_code()
        if session.scalar(select(TrackingLink.id).where(TrackingLink.code == candidate)) is None:
            return candidate
    raise Conflict(_("无法生成短链代码，请重试"))


def create_link(
    channel: AcquisitionChannel, *, name: str, landing_url: str, utm: Mapping[str, str] | None = None,
    code: str | None = None, session: Session, by: str | None = None,
) -> TrackingLink:
    """Create a tracking link of an active channel; the short code is generated unless one is chosen."""
    if not channel.active:
        raise DomainError(_("渠道已停用，不能新建链接"))
    values = _link_values(name, landing_url, utm)
    link = TrackingLink(channel_id=channel.id, code=_new_code(session, code), created_by=by or "", active=True,
                        **values)
    session.add(link)
    session.flush()
    record("link.created", session=session, target_type="tracking_link", target_id=link.id, actor=by,
           details={"channel": channel.code, "code": link.code, "name": link.name, "landing_url": link.landing_url})
    return link


def update_link(
    link: TrackingLink, *, name: str, landing_url: str, utm: Mapping[str, str] | None = None, session: Session,
    by: str | None = None,
) -> TrackingLink:
    """Change a link's name, landing URL and UTM parameters (never its short code)."""
    _change_audited(link, _link_values(name, landing_url, utm), action="link.updated", target_type="tracking_link",
                    session=session, by=by)
    return link


def set_link_active(link: TrackingLink, active: bool, *, session: Session, by: str | None = None) -> None:
    """Deactivate or reactivate a link."""
    _set_active_audited(link, active, kind="link", target_type="tracking_link", session=session, by=by)


@dataclass(frozen=True, slots=True)
class LinkStats:
    """A line of a channel's links table: the link and its clicks in the period (all time without one)."""

    link: TrackingLink
    clicks: int


def list_links(channel: AcquisitionChannel, *, session: Session, period: rules.Period | None = None) -> list[LinkStats]:
    """Return a channel's links with their click counts, newest first (one query)."""
    counted = select(Click.link_id.label("lid"), func.count().label("n")).where(Click.channel_id == channel.id)
    if period is not None:
        lo, hi = period_bounds(period)
        counted = counted.where(Click.at >= lo, Click.at < hi)
    counts = counted.group_by(Click.link_id).subquery()
    rows = session.execute(
        select(TrackingLink, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.lid == TrackingLink.id)
        .where(TrackingLink.channel_id == channel.id)
        .order_by(TrackingLink.active.desc(), TrackingLink.id.desc())
    )
    return [LinkStats(link, int(n)) for link, n in rows]


def landing_url_for(link: TrackingLink, channel: AcquisitionChannel, click_id: str | None) -> str:
    """Return where a visit through the link goes, carrying click_id, channel_code and utm_*."""
    utm = {key: getattr(link, key) for key in rules.UTM_FIELDS}
    return rules.build_landing_url(link.landing_url,
                                   rules.tracking_params(click_id=click_id, channel_code=channel.code, utm=utm))


def record_click(
    link_code: str, *, ip: str | None, user_agent: str | None, referrer: str | None, session: Session, now: datetime,
) -> tuple[Click | None, str]:
    """Log a visit through /t/<code> and return (click, where to redirect).

    Unknown code: NotFound. Inactive link or channel: no click (None) but still a redirect URL.
    """
    found = session.execute(
        select(TrackingLink, AcquisitionChannel)
        .join(AcquisitionChannel, AcquisitionChannel.id == TrackingLink.channel_id)
        .where(TrackingLink.code == link_code)
    ).first()
    if found is None:
        raise NotFound(_("链接不存在或已失效"))
    link, channel = found
    if not (link.active and channel.active):
        return None, landing_url_for(link, channel, None)
    click = Click(
        click_id=rules.new_click_id(), link_id=link.id, channel_id=channel.id, at=now,
        ip=(ip or "")[:64], user_agent=(user_agent or "")[:500], referrer=(referrer or "")[:1000],
    )
    session.add(click)
    session.flush()
    return click, landing_url_for(link, channel, click.click_id)


def list_clicks(
    channel: AcquisitionChannel, *, session: Session, period: rules.Period | None = None, page: int = 1,
    per_page: int = 25,
) -> tuple[list[tuple[Click, TrackingLink]], int]:
    """Return one page of a channel's clicks (in the period, if one is given), newest first, and the total."""
    where = [Click.channel_id == channel.id]
    if period is not None:
        lo, hi = period_bounds(period)
        where += [Click.at >= lo, Click.at < hi]
    total = session.scalar(select(func.count()).select_from(Click).where(*where)) or 0
    rows = session.execute(
        select(Click, TrackingLink).join(TrackingLink, TrackingLink.id == Click.link_id)
        .where(*where)
        .order_by(Click.at.desc(), Click.id.desc())
        .offset((max(page, 1) - 1) * per_page).limit(per_page)
    )
    return list(rows), total


def link_short_url(link: TrackingLink, base_url: str) -> str:
    """Return the absolute short URL of a link (base: PUBLIC_BASE_URL)."""
    return rules.short_url(base_url, link.code)


def _qr(link: TrackingLink, base_url: str) -> segno.QRCode:
    # Level M survives a scuffed poster; a short URL keeps the code small enough to scan from afar.
    return segno.make(link_short_url(link, base_url), error="m", micro=False)


def qr_png(link: TrackingLink, *, base_url: str, scale: int = 10) -> bytes:
    """Return the PNG of the QR code of a link's short URL."""
    buf = io.BytesIO()
    _qr(link, base_url).save(buf, kind="png", scale=scale, border=4)
    return buf.getvalue()


def qr_svg(link: TrackingLink, *, base_url: str, scale: int = 10) -> bytes:
    """Return the SVG of the QR code of a link's short URL (for print)."""
    buf = io.BytesIO()
    _qr(link, base_url).save(buf, kind="svg", scale=scale, border=4, title=link.name)
    return buf.getvalue()


# ---------------------------------------------------------------- costs


def _cost_insert(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert or replace daily costs on their (channel_id, day) key, race-free on both databases."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(ChannelCost)
    stmt = stmt.on_conflict_do_update(
        index_elements=["channel_id", "day"],
        set_={"amount_fen": stmt.excluded.amount_fen, "note": stmt.excluded.note,
              "entered_by": stmt.excluded.entered_by, "updated_at": stmt.excluded.updated_at},
    )
    session.execute(stmt, rows)
    # Core wrote past the ORM: loaded ChannelCost objects must be read again.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, ChannelCost):
            session.expire(obj)


def set_cost(
    channel: AcquisitionChannel, *, day: date, amount_fen: int, note: str = "", session: Session, now: datetime,
    by: str | None = None,
) -> ChannelCost:
    """Set what a channel cost on a business day (replacing any earlier figure for that day)."""
    refused = cost_channel_error(channel.code, channel)
    if refused is not None:
        raise DomainError(refused)
    problems = rules.cost_errors(day, amount_fen, now)
    if problems:
        field_name, message = problems[0]
        raise DomainError(message, field=field_name)
    try:
        note = rules.validate_note(note)
    except rules.RuleError as err:
        raise _refuse(err, "note") from None
    old = session.execute(
        select(ChannelCost.amount_fen, ChannelCost.note)
        .where(ChannelCost.channel_id == channel.id, ChannelCost.day == day)
    ).first()
    if old is None or (old.amount_fen, old.note) != (amount_fen, note):
        _cost_insert(session, [{"channel_id": channel.id, "day": day, "amount_fen": amount_fen, "note": note,
                                "entered_by": by or "", "updated_at": now}])
        record("cost.set", session=session, target_type="channel", target_id=channel.id, actor=by,
               details={"code": channel.code, "day": day.isoformat(), "amount_fen": amount_fen, "note": note,
                        "previous_fen": None if old is None else old.amount_fen})
    cost = session.scalar(select(ChannelCost).where(ChannelCost.channel_id == channel.id, ChannelCost.day == day)
                          .execution_options(populate_existing=True))
    assert cost is not None
    return cost


def delete_cost(cost_id: int, *, session: Session, by: str | None = None) -> AcquisitionChannel:
    """Delete a daily cost entry; return its channel."""
    cost = session.get(ChannelCost, cost_id)
    if cost is None:
        raise NotFound(_("成本记录不存在"))
    channel = get_channel(cost.channel_id, session=session)
    details = {"code": channel.code, "day": cost.day.isoformat(), "amount_fen": cost.amount_fen}
    session.delete(cost)
    session.flush()
    record("cost.deleted", session=session, target_type="channel", target_id=channel.id, actor=by, details=details)
    return channel


def list_costs(
    channel: AcquisitionChannel, *, session: Session, period: rules.Period | None = None, page: int = 1,
    per_page: int = 31,
) -> tuple[list[ChannelCost], int]:
    """Return one page of a channel's daily costs (in the period, if one is given), latest day first, and the
    total count."""
    where = [ChannelCost.channel_id == channel.id]
    if period is not None:
        where += [ChannelCost.day >= period.start, ChannelCost.day <= period.end]
    total = session.scalar(select(func.count()).select_from(ChannelCost).where(*where)) or 0
    rows = session.scalars(
        select(ChannelCost).where(*where).order_by(ChannelCost.day.desc())
        .offset((max(page, 1) - 1) * per_page).limit(per_page)
    )
    return list(rows), total


def export_costs(
    *, session: Session, channel: AcquisitionChannel | None = None, start: date | None = None,
    end: date | None = None, by: str | None = None, audit_session: Session | None = None,
) -> list[list[str]]:
    """Return daily costs as CSV rows in the import format (header first); the export is audited.

    The audit row goes to `audit_session` when given (a short write after the read), else to `session`.
    """
    query = (select(ChannelCost.day, AcquisitionChannel.code, ChannelCost.amount_fen, ChannelCost.note)
             .join(AcquisitionChannel, AcquisitionChannel.id == ChannelCost.channel_id))
    if channel is not None:
        query = query.where(ChannelCost.channel_id == channel.id)
    if start is not None:
        query = query.where(ChannelCost.day >= start)
    if end is not None:
        query = query.where(ChannelCost.day <= end)
    rows = rules.cost_csv_rows(session.execute(query.order_by(ChannelCost.day, AcquisitionChannel.code)))
    record("costs.exported", session=audit_session or session, target_type="channel",
           target_id=channel.id if channel else None, actor=by,
           details={"rows": len(rows) - 1, "code": channel.code if channel else None})
    return rows


@dataclass(slots=True)
class ImportResult:
    """What a cost-sheet import did: rows stored (new, changed, already equal) and rows refused."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[rules.RowError] = field(default_factory=list)

    @property
    def stored(self) -> int:
        """Return how many rows of the file are now in the database as given."""
        return self.created + self.updated + self.unchanged


# Channels the attribution makes for investors who came by no paid channel: a cost there is a mistake.
PSEUDO_CHANNEL_CODES = (ORGANIC_CHANNEL[0], REFERRAL_CHANNEL[0])


def _channels_by_code(codes: set[str], *, session: Session) -> Callable[[str], AcquisitionChannel | None]:
    """Return a lookup of channels by code: exact first, else ignoring case (Excel users type BAIDU_SEM)."""
    channels: dict[str, AcquisitionChannel] = {}
    by_lower: dict[str, AcquisitionChannel] = {}
    if codes:
        lowered = {c.lower() for c in codes}
        for channel in session.scalars(select(AcquisitionChannel).where(
                or_(AcquisitionChannel.code.in_(codes), func.lower(AcquisitionChannel.code).in_(lowered)))):
            channels[channel.code] = channel
            by_lower.setdefault(channel.code.lower(), channel)
    return lambda code: channels.get(code) or by_lower.get(code.lower())


def cost_channel_error(code: str, channel: AcquisitionChannel | None) -> rules.Message | None:
    """Return why costs cannot be booked on a code's channel (unknown, or organic/referral), or None."""
    if channel is None:
        return _l("未知的渠道代码：%(code)s（请先创建渠道）", code=code)
    if channel.code in PSEUDO_CHANNEL_CODES:
        return _l("%(code)s 是自然流量/邀请好友的归因渠道，不能录入成本", code=channel.code)
    return None


@dataclass(frozen=True, slots=True)
class CostWrite:
    """A daily cost to store: the channel, the business day, the amount in fen and a note."""

    channel: AcquisitionChannel
    day: date
    amount_fen: int
    note: str


def _store_costs(costs: list[CostWrite], *, session: Session, now: datetime, by: str | None,
                 result: ImportResult) -> list[tuple[CostWrite, int | None]]:
    """Upsert costs, one per (channel, day) (callers make them unique); count them into `result`.

    Return the costs that changed, each with the amount it replaced (None: new). Rows already equal are left alone.
    """
    existing: dict[tuple[int, date], tuple[int, str]] = {}
    if costs:
        days = [c.day for c in costs]
        ids = {c.channel.id for c in costs}
        for cid, day, fen, note in session.execute(
            select(ChannelCost.channel_id, ChannelCost.day, ChannelCost.amount_fen, ChannelCost.note)
            .where(ChannelCost.channel_id.in_(ids), ChannelCost.day >= min(days), ChannelCost.day <= max(days))
        ):
            existing[(cid, day)] = (fen, note)
    writes: list[dict[str, Any]] = []
    changed: list[tuple[CostWrite, int | None]] = []
    for cost in costs:
        before = existing.get((cost.channel.id, cost.day))
        if before == (cost.amount_fen, cost.note):
            result.unchanged += 1
            continue
        if before is None:
            result.created += 1
        else:
            result.updated += 1
        changed.append((cost, None if before is None else before[0]))
        writes.append({"channel_id": cost.channel.id, "day": cost.day, "amount_fen": cost.amount_fen,
                       "note": cost.note, "entered_by": by or "", "updated_at": now})
    for start in range(0, len(writes), 500):
        _cost_insert(session, writes[start:start + 500])
    session.flush()
    return changed


def import_costs(
    data: bytes | str, *, filename: str = "", session: Session, now: datetime, by: str | None = None,
) -> ImportResult:
    """Import a cost sheet: valid rows are upserted, invalid ones reported by row number.

    Importing the same file again changes nothing (rows already equal are left alone).
    """
    sheet = rules.parse_cost_csv(data, now=now)
    result = ImportResult(errors=list(sheet.errors))
    lookup = _channels_by_code({row.channel_code for row in sheet.rows}, session=session)
    accepted: list[tuple[rules.CostRow, AcquisitionChannel]] = []
    for row in sheet.rows:
        known = lookup(row.channel_code)
        problem = cost_channel_error(row.channel_code, known)
        if problem is not None or known is None:
            result.errors.append(rules.RowError(row.row, "channel_code", problem or ""))
            continue
        accepted.append((row, known))

    # The same channel and day may still appear twice when two spellings map to one channel.
    unique: dict[tuple[int, date], tuple[rules.CostRow, AcquisitionChannel]] = {}
    for row, channel in accepted:
        key = (channel.id, row.day)
        if key in unique:
            result.errors.append(rules.RowError(row.row, None, rules.same_row_message(unique[key][0].row)))
            continue
        unique[key] = (row, channel)

    _store_costs([CostWrite(channel, row.day, row.amount_fen, row.note) for row, channel in unique.values()],
                 session=session, now=now, by=by, result=result)
    result.errors.sort(key=lambda e: (e.row, e.field or ""))
    record("costs.imported", session=session, target_type="channel_costs", actor=by, details={
        "filename": filename[:200], "created": result.created, "updated": result.updated,
        "unchanged": result.unchanged, "errors": len(result.errors),
        "channels": sorted({channel.code for _row, channel in accepted}),
    })
    return result


# ---------------------------------------------------------------- costs pushed by the API (campaigns-api.md §7)

MAX_API_COSTS = 1000


@dataclass(frozen=True, slots=True)
class CostProblem:
    """Why a pushed cost was refused: where (`date`, `channel_code`, `amount`, `note`), a code, a message."""

    path: str
    code: str
    message: rules.Message


@dataclass(slots=True)
class SaveResult:
    """What a pushed list of costs did: how many are stored as given, and the refused ones by index."""

    saved: int = 0
    rejected: list[tuple[int, list[CostProblem]]] = field(default_factory=list)


_API_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_API_MONEY_RE = re.compile(MONEY_OR_ZERO_PATTERN)


def _api_cost(item: object, now: datetime) -> tuple[rules.CostRow | None, list[CostProblem]]:
    """Check one pushed cost ({"date", "channel_code", "amount", "note"}) by the contract's strict formats."""
    if not isinstance(item, dict):
        return None, [CostProblem("", "invalid_type", _l("每项成本须是 JSON 对象"))]
    problems: list[CostProblem] = []
    day = amount = None
    raw_day = item.get("date")
    if not isinstance(raw_day, str) or not _API_DATE_RE.fullmatch(raw_day):
        problems.append(CostProblem("date", "invalid_date", _l("日期须为 YYYY-MM-DD 格式的字符串，例如 2026-12-01")))
    else:
        try:
            day = date.fromisoformat(raw_day)
        except ValueError:
            problems.append(CostProblem("date", "invalid_date", _l("日期不存在：%(text)s", text=raw_day)))
    code = item.get("channel_code")
    if not isinstance(code, str) or not code.strip():
        problems.append(CostProblem("channel_code", "required", _l("请填写渠道代码")))
        code = ""
    elif len(code.strip()) > 64:
        problems.append(CostProblem("channel_code", "too_long", _l("渠道代码最多 64 个字符")))
    raw_amount = item.get("amount")
    if not isinstance(raw_amount, str) or not _API_MONEY_RE.fullmatch(raw_amount):
        problems.append(CostProblem("amount", "invalid_amount",
                                    _l('金额须为以元为单位、最多两位小数的字符串，例如 "6872.52"')))
    else:
        try:
            amount = rules.parse_cost_amount(raw_amount)
        except rules.RuleError as err:
            problems.append(CostProblem("amount", "invalid_amount", err.message))
    raw_note = item.get("note")
    note = ""
    if raw_note is not None and not isinstance(raw_note, str):
        problems.append(CostProblem("note", "invalid_type", _l("备注须是字符串")))
        raw_note = ""
    try:
        note = rules.validate_note(raw_note or "")
    except rules.RuleError as err:
        problems.append(CostProblem("note", "too_long", err.message))
    if day is not None and amount is not None:
        for field_name, message in rules.cost_errors(day, amount, now):
            path = "date" if field_name == "day" else field_name
            problems.append(CostProblem(path, "future_date" if path == "date" else "invalid_amount", message))
    if problems or day is None or amount is None:
        return None, problems
    return rules.CostRow(0, day, rules.normalize_channel_code(code), amount, note), []


def save_costs(items: list[object], *, session: Session, now: datetime, by: str | None = None) -> SaveResult:
    """Store pushed daily costs (the API): each valid one is set, the others are refused by their index.

    The rule of the cost sheet and the page: one cost per (channel, business day), a later one replacing an
    earlier (also within one list: the last one wins, and each counts as saved). Unknown channels and the
    organic/referral channels are refused. Every change is audited as the page's cost entry is (`cost.set`).
    """
    result = SaveResult()
    checked: list[tuple[int, rules.CostRow]] = []
    for index, item in enumerate(items):
        row, problems = _api_cost(item, now)
        if row is None:
            result.rejected.append((index, problems))
        else:
            checked.append((index, row))
    lookup = _channels_by_code({row.channel_code for _i, row in checked}, session=session)
    unique: dict[tuple[int, date], CostWrite] = {}
    for index, row in checked:
        channel = lookup(row.channel_code)
        problem = cost_channel_error(row.channel_code, channel)
        if problem is not None or channel is None:
            code = "unknown_channel" if channel is None else "pseudo_channel"
            result.rejected.append((index, [CostProblem("channel_code", code, problem or "")]))
            continue
        unique[(channel.id, row.day)] = CostWrite(channel, row.day, row.amount_fen, row.note)  # the last one wins
        result.saved += 1
    result.rejected.sort(key=lambda r: r[0])
    changed = _store_costs(list(unique.values()), session=session, now=now, by=by, result=ImportResult())
    for cost, previous in changed:
        record("cost.set", session=session, target_type="channel", target_id=cost.channel.id, actor=by,
               details={"code": cost.channel.code, "day": cost.day.isoformat(), "amount_fen": cost.amount_fen,
                        "note": cost.note, "previous_fen": previous, "via": "api"})
    return result
