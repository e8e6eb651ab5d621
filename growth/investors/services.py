"""Reading investors: search, profile, raw events, CSV export and audited PII reveals.

The investor tables are projections maintained by the event processor; nothing here writes them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from growth.acquisition.models import AcquisitionChannel
from growth.audit.services import record
from growth.errors import DomainError, NotFound
from growth.events.models import PlatformEvent
from growth.investors.models import MILESTONES, FundsMovement, Investment, Investor
from growth.investors.rules import PhoneFormatError, mask_email, mask_name, mask_phone, normalize_phone
from growth.money import fen_to_api
from growth.timeutil import SHANGHAI, as_utc

MAX_PER_PAGE = 200
# A query that is only digits and phone punctuation is treated as (part of) a phone number.
_PHONE_LIKE = re.compile(r"\+?[0-9\s\-()]+")
_MIN_PHONE_SUFFIX = 4
# The personal fields a platform event may carry in its "user" object.
_PII_MASKS = {"phone": mask_phone, "name": mask_name, "email": mask_email}
MOVEMENTS_SHOWN = 50

EXPORT_COLUMNS = (
    "platform_user_id", "name", "phone", "email", "channel", "registered_at", "milestones",
    "investment_count", "investment_total", "holdings", "deposit_total", "withdrawal_total", "last_activity_at",
)


@dataclass(frozen=True, slots=True)
class InvestorRow:
    """One line of the investor list: the investor and their acquisition channel."""

    investor: Investor
    channel: AcquisitionChannel | None


@dataclass(frozen=True, slots=True)
class InvestorProfile:
    """Everything the investor page shows besides the raw events."""

    investor: Investor
    channel: AcquisitionChannel | None
    referrer: Investor | None
    investments: list[Investment]
    movements: list[FundsMovement]
    movement_count: int


@dataclass(frozen=True, slots=True)
class ContactDetails:
    """An investor's personal contact fields, masked or in full."""

    name: str
    phone: str
    email: str


def _clamp_page(page: int, per_page: int) -> tuple[int, int]:
    return max(page, 1), min(max(per_page, 1), MAX_PER_PAGE)


def _milestone_column(name: str) -> Any:
    if name not in MILESTONES:
        raise DomainError(f"未知的里程碑：{name} / unknown milestone: {name}", field="milestone")
    return getattr(Investor, f"{name}_at")


def _search_conditions(q: str | None, channel_id: int | None, milestone: str | None,
                       stalled: bool) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    q = (q or "").strip()
    if q:
        matches: list[ColumnElement[bool]] = [
            Investor.platform_user_id.startswith(q, autoescape=True),  # exact ids are prefixes too
            Investor.name.icontains(q, autoescape=True),
        ]
        if _PHONE_LIKE.fullmatch(q):
            try:
                matches.append(Investor.phone == normalize_phone(q))
            except PhoneFormatError:
                digits = re.sub(r"[^0-9]", "", q)
                if len(digits) >= _MIN_PHONE_SUFFIX:
                    matches.append(Investor.phone.endswith(digits, autoescape=True))
        conditions.append(or_(*matches))
    if channel_id is not None:
        conditions.append(Investor.channel_id == channel_id)
    if milestone:
        conditions.append(_milestone_column(milestone).is_not(None))
        index = MILESTONES.index(milestone)
        if stalled and index + 1 < len(MILESTONES):
            conditions.append(_milestone_column(MILESTONES[index + 1]).is_(None))
    return conditions


def _list_query(conditions: list[ColumnElement[bool]]) -> Select[tuple[Investor, AcquisitionChannel]]:
    return (
        select(Investor, AcquisitionChannel)
        .outerjoin(AcquisitionChannel, Investor.channel_id == AcquisitionChannel.id)
        .where(*conditions)
        .order_by(Investor.registered_at.desc().nulls_last(), Investor.id.desc())
    )


def search_investors(
    *,
    session: Session,
    q: str | None = None,
    channel_id: int | None = None,
    milestone: str | None = None,
    stalled: bool = False,
    page: int = 1,
    per_page: int = 25,
) -> tuple[list[InvestorRow], int]:
    """Return one page of matching investors, newest registrations first, and the total count.

    `q` matches a platform user id (exact or prefix), a phone (exact after normalisation, or the
    last digits when at least 4 are given) or a name (contains). `milestone` keeps investors who
    reached it; with `stalled` only those who have not reached the next one. Two queries at most.
    """
    page, per_page = _clamp_page(page, per_page)
    conditions = _search_conditions(q, channel_id, milestone, stalled)
    total = session.scalar(select(func.count()).select_from(Investor).where(*conditions)) or 0
    if total <= (page - 1) * per_page:
        return [], total
    result = session.execute(_list_query(conditions).offset((page - 1) * per_page).limit(per_page))
    return [InvestorRow(investor, channel) for investor, channel in result], total


def channel_choices(*, session: Session) -> list[tuple[int, str]]:
    """Return (id, name) of every acquisition channel, by name, for filter menus."""
    rows = session.execute(
        select(AcquisitionChannel.id, AcquisitionChannel.name).order_by(AcquisitionChannel.name)
    )
    return [(channel_id, name) for channel_id, name in rows]


def get_investor(investor_id: int, *, session: Session) -> Investor:
    """Return an investor by id or raise NotFound."""
    investor = session.get(Investor, investor_id)
    if investor is None:
        raise NotFound("找不到该投资人 / investor not found")
    return investor


def investor_profile(investor_id: int, *, session: Session) -> InvestorProfile:
    """Return an investor with channel, referrer, investments and latest fund movements."""
    investor = get_investor(investor_id, session=session)
    channel = session.get(AcquisitionChannel, investor.channel_id) if investor.channel_id else None
    referrer = session.get(Investor, investor.referrer_id) if investor.referrer_id else None
    investments = session.scalars(
        select(Investment).where(Investment.investor_id == investor.id)
        .order_by(Investment.started_at.desc().nulls_last(), Investment.id.desc())
    ).all()
    movement_filter = FundsMovement.investor_id == investor.id
    movements = session.scalars(
        select(FundsMovement).where(movement_filter)
        .order_by(FundsMovement.occurred_at.desc(), FundsMovement.id.desc()).limit(MOVEMENTS_SHOWN)
    ).all()
    movement_count = len(movements)
    if movement_count == MOVEMENTS_SHOWN:
        movement_count = session.scalar(select(func.count()).where(movement_filter)) or 0
    return InvestorProfile(investor, channel, referrer, list(investments), list(movements), movement_count)


def investor_events(
    investor: Investor, *, session: Session, page: int = 1, per_page: int = 20
) -> tuple[list[PlatformEvent], int]:
    """Return one page of the investor's raw platform events, newest first, and the total count."""
    page, per_page = _clamp_page(page, per_page)
    where = PlatformEvent.user_id == investor.platform_user_id
    total = session.scalar(select(func.count()).select_from(PlatformEvent).where(where)) or 0
    if total <= (page - 1) * per_page:
        return [], total
    events = session.scalars(
        select(PlatformEvent).where(where)
        .order_by(PlatformEvent.occurred_at.desc(), PlatformEvent.seq.desc())
        .offset((page - 1) * per_page).limit(per_page)
    ).all()
    return list(events), total


def contact_details(investor: Investor, *, masked: bool = True) -> ContactDetails:
    """Return the investor's name, phone and email, masked unless told otherwise."""
    if masked:
        return ContactDetails(mask_name(investor.name), mask_phone(investor.phone), mask_email(investor.email))
    return ContactDetails(investor.name or "", investor.phone or "", investor.email or "")


def reveal_contact_details(investor: Investor, *, session: Session) -> ContactDetails:
    """Return the investor's unmasked contact details and write the reveal to the audit log."""
    record("investor.pii_revealed", session=session, target_type="investor", target_id=investor.id,
           details={"platform_user_id": investor.platform_user_id})
    return contact_details(investor, masked=False)


def pretty_payload(payload: str, *, masked: bool = True) -> str:
    """Pretty-print a raw event's JSON, masking the personal fields of its user object."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return payload  # the log keeps what was received; show it as is rather than fail the page
    if masked and isinstance(doc, dict) and isinstance(doc.get("user"), dict):
        user = dict(doc["user"])
        for key, mask in _PII_MASKS.items():
            if isinstance(user.get(key), str):
                user[key] = mask(user[key])
        if isinstance(user.get("wechat_openid"), str):
            user["wechat_openid"] = "****"
        doc = dict(doc, user=user)
    return json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True)


def _local(value: Any) -> str:
    return "" if value is None else as_utc(value).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def export_investors_csv(
    *,
    session: Session,
    q: str | None = None,
    channel_id: int | None = None,
    milestone: str | None = None,
    stalled: bool = False,
    unmasked: bool = False,
    audit_session: Session | None = None,
) -> list[list[str]]:
    """Return the CSV data rows (see EXPORT_COLUMNS) of every matching investor and audit the export.

    The audit row goes to `audit_session` when given (a short write after the read), else to `session`.

    Times are Asia/Shanghai, money is yuan ("1000.00"); contact details are masked unless `unmasked`,
    which the caller allows only to roles that may see personal data.
    """
    conditions = _search_conditions(q, channel_id, milestone, stalled)
    rows: list[list[str]] = []
    for investor, channel in session.execute(_list_query(conditions)):
        contact = contact_details(investor, masked=not unmasked)
        reached = [m for m in MILESTONES if investor.milestone(m) is not None]
        rows.append([
            investor.platform_user_id, contact.name, contact.phone, contact.email,
            channel.name if channel else "", _local(investor.registered_at), " ".join(reached),
            str(investor.investment_count), fen_to_api(investor.investment_total_fen),
            fen_to_api(investor.holdings_fen), fen_to_api(investor.deposit_total_fen),
            fen_to_api(investor.withdrawal_total_fen), _local(investor.last_activity_at),
        ])
    filters = {"q": q or "", "channel_id": channel_id, "milestone": milestone or "", "stalled": stalled}
    record("investor.exported", session=audit_session or session, target_type="investor",
           details={"filters": filters, "rows": len(rows), "unmasked": unmasked})
    return rows
