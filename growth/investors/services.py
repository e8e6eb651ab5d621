"""Reading investors: search, profile, raw events, CSV export and audited PII reveals.

The investor tables are projections maintained by the event processor; nothing here writes them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, Select, and_, exists, false, func, or_, select
from sqlalchemy.orm import Session

from channels.recipients import Recipient
from growth.acquisition.models import AcquisitionChannel
from growth.audit.rules import MAX_REVEAL_REASON, REVEAL_REASONS
from growth.audit.services import record
from growth.crypto import keyring
from growth.errors import DomainError, NotFound
from growth.events.models import PlatformEvent
from growth.events.rules import DATA_FIELDS, PRODUCT_FIELDS, load_payload
from growth.investors.models import MILESTONES, FundsMovement, Investment, Investor, InvestorTag
from growth.investors.rules import (
    PHONE_TAIL_DIGITS,
    PhoneFormatError,
    SearchTerms,
    email_form,
    format_phone,
    mask_email,
    mask_identifier,
    mask_ip,
    mask_name,
    mask_phone,
    mask_query,
    may_search,
    name_form,
    normalize_phone,
    phone_tail_form,
    prefix_end,
    recent_within,
)
from growth.money import fen_to_api
from growth.timeutil import SHANGHAI, as_utc

MAX_PER_PAGE = 200
NO_TERMS = SearchTerms()
# How the personal fields of a raw event are masked; fields the spec does not define are hidden whole.
HIDDEN = "****"
_USER_MASKS: dict[str, Callable[[str], str]] = {
    "phone": mask_phone, "name": mask_name, "email": mask_email, "wechat_openid": lambda _value: HIDDEN,
}
_DATA_MASKS: dict[str, Callable[[str], str]] = {"ip": mask_ip, "device_id": mask_identifier}
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
        raise DomainError(_("未知的里程碑：%(name)s", name=name), field="milestone")
    return getattr(Investor, f"{name}_at")


def _starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`, as one range on its index (the column compares byte by byte)."""
    end = prefix_end(prefix)
    return and_(column >= prefix, column < end) if end is not None else column >= prefix


# A phone tail longer than 4 digits is checked on the investors its last 4 digits give (about 1 in 10,000 of them);
# past this many candidates the query is too vague to be worth decrypting them all, and matches nothing.
MAX_TAIL_CANDIDATES = 2000


def _tail_matches(terms: SearchTerms, session: Session) -> ColumnElement[bool]:
    """The investors whose phone ends with the query's digits: by the hash of the last 4, then the rest decrypted."""
    assert terms.phone_suffix is not None
    ring = keyring()
    shown = (True,) if terms.tail_shown_only else (True, False)
    hashes = [h for s in shown for h in ring.blinds(phone_tail_form(terms.phone_suffix, shown=s), "phone_tail")]
    by_tail = Investor.phone_tail_index.in_(hashes)
    if len(terms.phone_suffix) <= PHONE_TAIL_DIGITS:
        return by_tail
    found = session.execute(select(Investor.id, Investor.phone).where(by_tail).limit(MAX_TAIL_CANDIDATES + 1)).all()
    if len(found) > MAX_TAIL_CANDIDATES:
        return false()
    return Investor.id.in_([i for i, phone in found if phone and phone.endswith(terms.phone_suffix)] or [0])


def _search_conditions(terms: SearchTerms, channel_id: int | None, milestone: str | None,
                       stalled: bool, tag: str | None = None, *, session: Session) -> list[ColumnElement[bool]]:
    """Return the WHERE conditions of a search: every match is a lookup or a range on an index.

    Phones, names and emails are encrypted (growth.crypto): they are matched by their keyed hashes, under every
    configured data key so that rows not yet rotated are found too. A name or email matches whole (a hash has no
    beginning); the normalisation (name_form, email_form) forgives case, spaces and full-width letters.
    """
    ring = keyring()
    conditions: list[ColumnElement[bool]] = []
    matches: list[ColumnElement[bool]] = []
    if terms.platform_id_prefix:  # exact ids are prefixes too
        matches.append(_starts_with(Investor.platform_user_id, terms.platform_id_prefix))
    if terms.referral_code:
        matches.append(Investor.referral_code == terms.referral_code)
    if terms.phone:
        matches.append(Investor.phone_index.in_(ring.blinds(terms.phone, "phone")))
    if terms.phone_suffix:
        matches.append(_tail_matches(terms, session))
    if terms.name:
        matches.append(Investor.name_index.in_(ring.blinds(name_form(terms.name), "name")))
    if terms.email:
        matches.append(Investor.email_index.in_(ring.blinds(email_form(terms.email), "email")))
    if matches:
        conditions.append(or_(*matches))
    if channel_id is not None:
        conditions.append(Investor.channel_id == channel_id)
    if milestone:
        conditions.append(_milestone_column(milestone).is_not(None))
        index = MILESTONES.index(milestone)
        if stalled and index + 1 < len(MILESTONES):
            conditions.append(_milestone_column(MILESTONES[index + 1]).is_(None))
    if tag:
        conditions.append(exists().where(InvestorTag.investor_id == Investor.id, InvestorTag.tag == tag))
    return conditions


def _list_query(conditions: list[ColumnElement[bool]]) -> Select[Investor, AcquisitionChannel]:
    return (
        select(Investor, AcquisitionChannel)
        .outerjoin(AcquisitionChannel, Investor.channel_id == AcquisitionChannel.id)
        .where(*conditions)
        .order_by(Investor.registered_at.desc().nulls_last(), Investor.id.desc())
    )


def search_investors(
    *,
    session: Session,
    terms: SearchTerms = NO_TERMS,
    channel_id: int | None = None,
    milestone: str | None = None,
    stalled: bool = False,
    tag: str | None = None,
    page: int = 1,
    per_page: int = 25,
) -> tuple[list[InvestorRow], int]:
    """Return one page of matching investors, newest registrations first, and the total count.

    `terms` (see rules.search_terms: what the searcher's role may search by) match any of a platform
    user id prefix, a referral code, a whole phone, a phone's last digits, a name or an email.
    `milestone` keeps investors who reached it; with `stalled` only those who have not reached the
    next one; `tag` keeps investors with that tag. Two queries at most.
    """
    page, per_page = _clamp_page(page, per_page)
    conditions = _search_conditions(terms, channel_id, milestone, stalled, tag, session=session)
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
        raise NotFound(_("找不到该投资人。"))
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
    return ContactDetails(investor.name or "", format_phone(investor.phone), investor.email or "")


def reveal_contact_details(investor: Investor, *, reason: str, reason_text: str = "",
                           session: Session) -> ContactDetails:
    """Return the investor's unmasked contact details and write the reveal, with its reason, to the audit log.

    `reason` is one of REVEAL_REASONS; `other` needs `reason_text` (any reason may carry one). A reveal
    without a reason is refused (DomainError on field "reason").
    """
    text = " ".join(reason_text.split())
    if reason not in REVEAL_REASONS:
        raise DomainError(_("请选择查看完整信息的原因"), field="reason")
    if reason == "other" and not text:
        raise DomainError(_("选择“其他”时请填写具体原因"), field="reason_text")
    if len(text) > MAX_REVEAL_REASON:
        raise DomainError(_("原因说明最多 %(n)d 个字", n=MAX_REVEAL_REASON), field="reason_text")
    details = {"platform_user_id": investor.platform_user_id, "reason": reason}
    if text:
        details["reason_text"] = text
    record("investor.pii_revealed", session=session, target_type="investor", target_id=investor.id, details=details)
    return contact_details(investor, masked=False)


def _mask_fields(doc: dict, shown: tuple[str, ...], masks: dict[str, Callable[[str], str]]) -> dict:
    """Keep `shown` fields, mask `masks` fields, and hide any other field whole (a platform's extras)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in masks:
            out[key] = masks[key](value) if isinstance(value, str) else HIDDEN
        elif key in shown:
            out[key] = value
        else:
            out[key] = HIDDEN
    return out


def masked_payload(doc: object) -> object:
    """Return a raw event with its personal data masked and every field the spec does not define hidden.

    Phones, names and emails are masked as everywhere, IPs like click IPs, device ids partially; the
    log may still hold extra fields received before ingestion dropped them, and those could be an ID
    or a bank card number.
    """
    if not isinstance(doc, dict):
        return HIDDEN
    event_type = doc.get("type")
    spec = DATA_FIELDS.get(event_type, ()) if isinstance(event_type, str) else ()
    out = _mask_fields(doc, ("id", "type", "occurred_at"), {})
    if isinstance(doc.get("user"), dict):
        out["user"] = _mask_fields(doc["user"], ("id",), _USER_MASKS)
    data = doc.get("data")
    if isinstance(data, dict):
        out["data"] = _mask_fields(data, spec, {key: _DATA_MASKS[key] for key in spec if key in _DATA_MASKS})
        if "product" in spec and isinstance(data.get("product"), dict):
            out["data"]["product"] = _mask_fields(data["product"], PRODUCT_FIELDS, {})
    elif "data" in doc:
        out["data"] = data if data is None else HIDDEN
    return out


def pretty_payload(payload: str, *, masked: bool = True) -> str:
    """Pretty-print a raw event's JSON, masked (see masked_payload) unless told otherwise."""
    try:
        doc = load_payload(payload, keyring())  # contact fields are stored sealed (growth.events.rules)
    except ValueError:
        # The log keeps what was received; unparsable text is shown only unmasked, never to guess at.
        return HIDDEN if masked else payload
    shown: object = masked_payload(doc) if masked else doc
    return json.dumps(shown, indent=2, ensure_ascii=False, sort_keys=True)


def _local(value: Any) -> str:
    return "" if value is None else as_utc(value).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def export_investors_csv(
    *,
    session: Session,
    terms: SearchTerms = NO_TERMS,
    q: str = "",
    channel_id: int | None = None,
    milestone: str | None = None,
    stalled: bool = False,
    tag: str | None = None,
    unmasked: bool = False,
    audit_session: Session | None = None,
) -> list[list[str]]:
    """Return the CSV data rows (see EXPORT_COLUMNS) of every matching investor and audit the export.

    The audit row goes to `audit_session` when given (a short write after the read), else to `session`.

    Times are Asia/Shanghai, money is yuan ("1000.00"); contact details are masked unless `unmasked`,
    which the caller allows only to roles that may see personal data. `q` is the query as typed,
    recorded with the export.
    """
    conditions = _search_conditions(terms, channel_id, milestone, stalled, tag, session=session)
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
    # A query that is personal data is kept masked: the log records that it was used, not the data.
    shown_q = mask_query(q) if terms.audited else q
    filters = {"q": shown_q, "channel_id": channel_id, "milestone": milestone or "", "stalled": stalled}
    if tag:
        filters["tag"] = tag
    record("investor.exported", session=audit_session or session, target_type="investor",
           details={"filters": filters, "rows": len(rows), "unmasked": unmasked})
    return rows


class SearchLimited(DomainError):
    """Too many searches in a short time."""

    status = 429


class SearchThrottle:
    """Each staff member's recent searches, kept in this process.

    Several web processes each keep their own count; a shared limit would need Redis (see ARCHITECTURE).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[int, list[datetime]] = {}

    def check(self, user_id: int, *, now: datetime, limit: int, window: timedelta) -> None:
        """Count one search by a staff member, or raise SearchLimited when they made too many."""
        with self._lock:
            times = recent_within(self._times.get(user_id, []), now=now, window=window)
            allowed = may_search(times, now=now, limit=limit, window=window)
            if allowed:
                times.append(now)
            self._times[user_id] = times
        if not allowed:
            minutes = max(int(window.total_seconds() // 60), 1)
            raise SearchLimited(_("搜索过于频繁：每 %(minutes)d 分钟最多 %(n)d 次，请稍后再试。",
                                  minutes=minutes, n=limit))


def audit_search(terms: SearchTerms, q: str, *, results: int, session: Session) -> None:
    """Write a search made with personal data to the audit log, the query itself masked."""
    kinds = [kind for kind in ("phone", "phone_suffix", "name", "email") if getattr(terms, kind)]
    record("investor.searched", session=session, target_type="investor",
           details={"q": mask_query(q), "matched_by": kinds, "withheld": terms.withheld, "results": results})


class InvestorDirectory:
    """The message channels' view of investors (`channels.recipients.Directory`): addresses, masked forms."""

    _COLUMNS = {"sms": Investor.phone, "email": Investor.email, "wechat": Investor.wechat_openid}
    _MASKS: dict[str, Callable[[str], str]] = {"sms": mask_phone, "email": mask_email,
                                              "wechat": lambda value: f"openid …{value[-4:]}"}

    def recipients(self, ids: Sequence[int], *, session: Session) -> dict[int, Recipient]:
        """Return the recipients with these investor ids (with their names: delivery fills the name slot)."""
        found: dict[int, Recipient] = {}
        query = select(Investor.id, Investor.platform_user_id, Investor.phone, Investor.email, Investor.wechat_openid,
                       Investor.registered_at, Investor.name)
        for start in range(0, len(ids), 1000):
            chunk = list(ids[start:start + 1000])
            for investor_id, user_id, phone, email, openid, registered_at, name in session.execute(
                    query.where(Investor.id.in_(chunk))):
                addresses = {k: v for k, v in (("sms", phone), ("email", email), ("wechat", openid)) if v}
                masked = {k: self._MASKS[k](v) for k, v in addresses.items()}
                found[investor_id] = Recipient(investor_id, user_id, addresses, masked,
                                               registered=registered_at is not None, name=name or "")
        return found

    def by_address(self, channel: str, address: str, *, session: Session) -> list[int]:
        """Return the ids of the investors with this address on a channel (phones compared as normalised).

        Phones and emails are encrypted: they are found by their keyed hashes (search_index).
        """
        if channel not in self._COLUMNS or not address:
            return []
        ring = keyring()
        condition: ColumnElement[bool]
        if channel == "sms":
            try:
                condition = Investor.phone_index.in_(ring.blinds(normalize_phone(address), "phone"))
            except PhoneFormatError:
                return []
        elif channel == "email":
            condition = Investor.email_index.in_(ring.blinds(email_form(address), "email"))
        else:
            condition = Investor.wechat_openid == address
        return list(session.scalars(select(Investor.id).where(condition).order_by(Investor.id)))
