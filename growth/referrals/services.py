"""The referral program's services: settings, reviews, confirmations and their feed, share links, tree, stats.

Services take `session=`, flush and never commit: the request, job or processor batch commits.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import segno
from flask_babel import gettext as _
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from growth import overrides, signals
from growth.audit.services import record
from growth.db import insert_many, table_of
from growth.errors import Conflict, DomainError, NotFound
from growth.investors.models import Investor
from growth.referrals import rules
from growth.referrals.models import (
    DECISION_LABELS,
    REWARD_CAUSE_PREFIX,
    Referral,
    ReferralConfirmation,
    ReferralReview,
    ReferralSetting,
    ReferralVisit,
)
from growth.referrals.records import derive, lock_records
from growth.rewards.models import Reward
from growth.timeutil import as_utc, local_day_bounds

log = logging.getLogger("growth.referrals")
_FEED = table_of(ReferralConfirmation)
MAX_NOTE = 1000
VISIT_REPEAT = timedelta(minutes=30)  # one visitor counts once per referral code in this long
TREE_LIMIT = 200  # referees shown per level of an investor's tree
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # stands in for a missing registration time (sorted last)


# --- settings ---------------------------------------------------------------------------------------


def default_settings(config: Mapping[str, Any]) -> rules.ProgramSettings:
    """Return the program settings the configuration gives (the spec's defaults when it gives none)."""
    return overrides.configured(config, prefix="REFERRAL", keys=rules.SETTING_KEYS, parse=rules.parse_settings)


def current_settings(*, session: Session, defaults: rules.ProgramSettings) -> rules.ProgramSettings:
    """Return the settings in effect: each one changed on the settings page, else its default."""
    return overrides.current(ReferralSetting, session=session, defaults=defaults, parse=rules.parse_settings)


def save_settings(values: Mapping[str, str], *, session: Session, defaults: rules.ProgramSettings, by: str,
                  now: datetime) -> rules.ProgramSettings:
    """Validate and store the settings, audit the change and re-derive every referral under them."""
    before = current_settings(session=session, defaults=defaults)
    after, changes = overrides.changes(values, keys=rules.SETTING_KEYS, parse=rules.parse_settings, before=before)
    if not changes:
        return after
    lock_records(session)
    overrides.write(ReferralSetting, changes, session=session, by=by, now=now)
    record("referral_settings.changed", session=session, target_type="referral_settings", details={"changes": changes})
    # The records follow the settings, as a replay would derive them (a qualified referral may become rejected).
    rederive_all(session=session, settings=after)
    return after


def rederive_all(*, session: Session, settings: rules.ProgramSettings) -> int:
    """Re-derive every referral (after a settings change); return how many records changed."""
    ids = session.scalars(select(Investor.id).where(Investor.referrer_id.is_not(None))).all()
    old = session.scalars(select(Referral.referee_id)).all()
    result = derive(session, {*ids, *old}, settings)
    return len(result.written) + len(result.removed)


# --- confirmations and the feed ------------------------------------------------------------------------


def confirm_due(*, session: Session, now: datetime, settings: rules.ProgramSettings,
                only: list[int] | None = None) -> list[int]:
    """Confirm the qualified referrals whose hold has ended; return the new feed ids (safe to run twice)."""
    query = select(Referral.referee_id, Referral.referrer_id, Referral.decision).where(
        Referral.status == "qualified", Referral.hold_ends_at <= now)
    if only is not None:
        query = query.where(Referral.referee_id.in_(only))
    due = session.execute(query.order_by(Referral.referee_id)).all()
    if not due:
        return []
    rows: list[dict[str, Any]] = [{"referee_id": referee_id, "referrer_id": referrer_id, "confirmed_at": now,
                                   "how": rules.confirmation_how(rules.Decision(decision, "", "", now) if decision
                                                                 else None)}
                                  for referee_id, referrer_id, decision in due]
    inserted = insert_many(session.connection(), _FEED, rows, returning=("id", "referee_id", "referrer_id"),
                           skip_conflicts=True)
    derive(session, [r["referee_id"] for r in rows], settings)
    found: list[tuple[int, int, int]] = sorted((int(a), int(b), int(c)) for a, b, c in inserted)
    if found:
        _signal_after_commit(session, found)
    return [row[0] for row in found]


_PENDING_SIGNALS = "growth.referrals.confirmed"  # session.info key: confirmations to announce after commit


def _signal_after_commit(session: Session, confirmations: list[tuple[int, int, int]]) -> None:
    """Send `referral_confirmed` (ids only: a wake-up for the feed's consumers) once this session commits."""
    session.info.setdefault(_PENDING_SIGNALS, []).extend(confirmations)


@event.listens_for(Session, "after_commit")
def _send_confirmed(session: Session) -> None:
    for confirmation_id, referee_id, referrer_id in session.info.pop(_PENDING_SIGNALS, ()):
        try:
            signals.referral_confirmed.send(None, confirmation_id=confirmation_id, referee_id=referee_id,
                                            referrer_id=referrer_id)
        except Exception:  # a failing receiver must not fail the caller: the feed has the row anyway
            log.exception("referral_confirmed receiver failed for %s", confirmation_id)


@event.listens_for(Session, "after_soft_rollback")
def _forget_confirmed(session: Session, previous: Any) -> None:
    if not previous.nested:  # the whole transaction is gone, and its confirmations with it
        session.info.pop(_PENDING_SIGNALS, None)


def confirmations_after(session: Session, after_id: int, limit: int = 500) -> list[ReferralConfirmation]:
    """Return the feed's confirmations after a consumer's cursor, oldest first (the campaigns' trigger feed).

    Feed rows are only written while holding the processor's cursor lock (`lock_records`), so ids
    commit in order and a consumer moving its cursor to the last id it read skips none.
    """
    return list(session.scalars(select(ReferralConfirmation).where(ReferralConfirmation.id > after_id)
                                .order_by(ReferralConfirmation.id).limit(max(1, min(limit, 5000)))))


# --- staff reviews ---------------------------------------------------------------------------------------


def get_referral(referee_id: int, *, session: Session) -> Referral:
    """Return one referral by its referee, or NotFound."""
    referral = session.get(Referral, referee_id)
    if referral is None:
        raise NotFound(_("邀请记录不存在"))
    return referral


def referral_of(referee_id: int, *, session: Session) -> Referral | None:
    """Return the referral in which an investor is the referee, if any."""
    return session.get(Referral, referee_id)


def decide(referee_id: int, *, decision: str, note: str, session: Session, by: str, now: datetime,
           settings: rules.ProgramSettings) -> Referral:
    """Approve or reject a referral waiting for review, with a note (audited).

    An approval lets the referral continue as if it had no flags: confirmed at once when it is
    qualified and its hold has ended, else by the confirmation job when the hold ends.
    """
    note = (note or "").strip()
    if decision not in DECISION_LABELS:
        raise DomainError(_("未知的审核结果"), field="decision")
    if not note:
        raise DomainError(_("请填写审核备注"), field="note")
    if len(note) > MAX_NOTE:
        raise DomainError(_("备注最多 %(n)d 个字", n=MAX_NOTE), field="note")
    lock_records(session)
    referral = get_referral(referee_id, session=session)
    if referral.status != "in_review":
        raise Conflict(_("该邀请已不在待审核状态，请刷新页面"))
    referrer_id = referral.referrer_id
    try:
        with session.begin_nested():
            session.add(ReferralReview(referee_id=referee_id, referrer_id=referrer_id, decision=decision, note=note,
                                       decided_by=by, decided_at=now))
    except IntegrityError:
        raise Conflict(_("该邀请已由其他人审核，请刷新页面")) from None
    derive(session, [referee_id], settings)
    confirmed: list[int] = []
    if decision == "approved":
        confirmed = confirm_due(session=session, now=now, settings=settings, only=[referee_id])
    users = dict(session.execute(select(Investor.id, Investor.platform_user_id)
                                 .where(Investor.id.in_([referee_id, referrer_id]))).all())
    record(f"referral.{decision}", session=session, target_type="referral", target_id=referee_id,
           details={"referee": users.get(referee_id), "referrer": users.get(referrer_id), "note": note,
                    "confirmed": bool(confirmed)})
    session.expire_all()  # the record was rewritten underneath the ORM
    return get_referral(referee_id, session=session)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One referral on a page: the record and both people."""

    referral: Referral
    referrer: Investor
    referee: Investor


def list_referrals(*, session: Session, status: str | None = None, page: int = 1,
                   per_page: int = 25) -> tuple[list[QueueRow], int]:
    """Return one page of referrals (of a status), oldest registration first, and the total."""
    referrer, referee = aliased(Investor), aliased(Investor)
    where = [] if status is None else [Referral.status == status]
    total = session.scalar(select(func.count()).select_from(Referral).where(*where)) or 0
    rows = session.execute(
        select(Referral, referrer, referee)
        .join(referrer, referrer.id == Referral.referrer_id).join(referee, referee.id == Referral.referee_id)
        .where(*where).order_by(Referral.registered_at, Referral.referee_id)
        .offset((max(page, 1) - 1) * per_page).limit(per_page)).all()
    return [QueueRow(*row) for row in rows], total


# --- codes, share links, visits --------------------------------------------------------------------------


def normalize_code(code: str) -> str:
    """Return a referral code as stored (codes are case-insensitive)."""
    return (code or "").strip().upper()[:16]


def referrer_by_code(code: str, *, session: Session) -> Investor | None:
    """Return the investor who owns a referral code (any case), or None."""
    normal = normalize_code(code)
    if not normal:
        return None
    return session.scalars(select(Investor).where(Investor.referral_code == normal)).first()


def share_url(code: str, base_url: str) -> str:
    """Return a code's public share link, {GROWTH_PUBLIC_BASE_URL}/r/<code>."""
    return f"{base_url.rstrip('/')}/r/{code}"


def landing_url(landing: str, code: str | None) -> str:
    """Return the platform's registration URL carrying the referral code (its own query kept)."""
    if not code:
        return landing
    parts = urlsplit(landing)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "referral_code"]
    query.append(("referral_code", code))
    return urlunsplit(parts._replace(query=urlencode(query)))


def visitor_key(ip: str | None, secret: str) -> str:
    """Return a keyed hash of a visitor's address (never the address itself)."""
    return hmac.new(secret.encode(), (ip or "").encode(), hashlib.sha256).hexdigest()[:32]


def record_visit(code: str, *, ip: str | None, secret: str, session: Session, now: datetime) -> Investor | None:
    """Count a visit through a share link (once per visitor and code in VISIT_REPEAT); return the code's owner."""
    owner = referrer_by_code(code, session=session)
    if owner is None:
        return None
    visitor = visitor_key(ip, secret)
    seen = session.scalar(select(ReferralVisit.id).where(
        ReferralVisit.referrer_id == owner.id, ReferralVisit.visitor == visitor,
        ReferralVisit.at > now - VISIT_REPEAT).limit(1))
    if seen is None:
        session.add(ReferralVisit(referrer_id=owner.id, at=now, visitor=visitor))
        session.flush()
    return owner


def qr_image(url: str, *, kind: str, scale: int = 8) -> bytes:
    """Return a QR code of a share link as PNG or SVG bytes (drawn here; nothing loaded from outside)."""
    buf = io.BytesIO()
    segno.make(url, error="m", micro=False).save(buf, kind=kind, scale=scale, border=4)
    return buf.getvalue()


# --- an investor's referrals -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreeNode:
    """A referee in an investor's referral tree, with their own referees (one more level)."""

    investor: Investor
    referral: Referral | None
    children: list[TreeNode]
    more: int = 0  # referees not shown (beyond TREE_LIMIT)


def referral_tree(investor_id: int, *, session: Session) -> tuple[list[TreeNode], int]:
    """Return an investor's referees and theirs (depth 2) with their referral records, and the direct total."""
    def level(parents: list[int]) -> dict[int, list[tuple[Investor, Referral | None]]]:
        out: dict[int, list[tuple[Investor, Referral | None]]] = {p: [] for p in parents}
        if not parents:
            return out
        found = session.execute(
            select(Investor, Referral).outerjoin(Referral, Referral.referee_id == Investor.id)
            .where(Investor.referrer_id.in_(parents))).all()
        # Sorted here, not by the query: an ORDER BY registered_at tempts SQLite, when few investors were
        # referred, to walk the whole registered_at index instead of the referrer index (0.5 s on 200k).
        rows = sorted(found, key=lambda r: (r[0].registered_at is None, r[0].registered_at or _EPOCH, r[0].id))
        for inv, ref in rows:
            out[inv.referrer_id].append((inv, ref))  # type: ignore[index]
        return out

    first = level([investor_id])[investor_id]
    total = len(first)
    first = first[:TREE_LIMIT]
    second = level([inv.id for inv, _ref in first])
    nodes = [TreeNode(inv, ref, [TreeNode(c, cr, []) for c, cr in second[inv.id][:TREE_LIMIT]],
                      max(0, len(second[inv.id]) - TREE_LIMIT)) for inv, ref in first]
    return nodes, total


# --- program statistics --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WeekStats:
    """One week of the program: invites, referred registrations, qualified, confirmed, rewarded, K-factor."""

    week_start: date
    invites: int
    registrations: int
    qualified: int
    confirmed: int
    rewarded: int | None  # referrals a referral campaign granted rewards for (the rewards ledger)
    cohort: int
    referred_by_cohort: int

    @property
    def k_factor(self) -> float | None:
        """Return the cohort's K-factor (None for an empty cohort)."""
        return None if not self.cohort else self.referred_by_cohort / self.cohort


def _weeks(start: date, end: date) -> list[date]:
    first = start - timedelta(days=start.weekday())
    return [first + timedelta(weeks=n) for n in range((end - first).days // 7 + 1)]


def program_stats(*, session: Session, start: date, end: date, window_days: int = 30) -> list[WeekStats]:
    """Return the program's numbers per ISO week (Asia/Shanghai) from the week of `start` to that of `end`.

    invites = share-link visits; registrations = referred registrations; qualified = first investments
    that met the conditions; confirmed = confirmations (each counted in the week it happened);
    K-factor = for the week's registration cohort, the registrations its members referred within
    `window_days` of their own registration ÷ the cohort's size.
    """
    weeks = _weeks(start, end)
    lo = local_day_bounds(weeks[0])[0]
    hi = local_day_bounds(weeks[-1] + timedelta(days=6))[1]

    def by_week(times: list[datetime]) -> dict[date, int]:
        out: dict[date, int] = {}
        for at in times:
            out[rules.week_start(at)] = out.get(rules.week_start(at), 0) + 1
        return out

    visits = by_week(list(session.scalars(select(ReferralVisit.at).where(ReferralVisit.at >= lo,
                                                                         ReferralVisit.at < hi))))
    registrations = by_week(list(session.scalars(select(Investor.registered_at).where(
        Investor.referrer_id.is_not(None), Investor.registered_at >= lo, Investor.registered_at < hi))))
    qualified = by_week(list(session.scalars(select(Referral.qualified_at).where(
        Referral.qualified_at >= lo, Referral.qualified_at < hi))))
    confirmed = by_week(list(session.scalars(select(ReferralConfirmation.confirmed_at).where(
        ReferralConfirmation.confirmed_at >= lo, ReferralConfirmation.confirmed_at < hi))))
    # Rewarded: referrals a referral campaign granted rewards for (their cause is "referral:<referee id>"),
    # each counted once, in the week of its first grant.
    first_grants = select(func.min(Reward.granted_at)).where(Reward.cause.like(f"{REWARD_CAUSE_PREFIX}%")) \
        .group_by(Reward.cause).subquery()
    rewarded = by_week([at for at in session.scalars(select(first_grants.c[0]))
                        if at is not None and lo <= as_utc(at) < hi])
    members = session.execute(select(Investor.id, Investor.registered_at).where(
        Investor.registered_at >= lo, Investor.registered_at < hi)).all()
    referred = session.execute(select(Investor.referrer_id, Investor.registered_at).where(
        Investor.referrer_id.is_not(None), Investor.registered_at >= lo,
        Investor.registered_at < hi + timedelta(days=window_days))).all()
    factors = {f.week_start: f for f in rules.k_factors(
        [(i, at) for i, at in members if at is not None],
        [(r, at) for r, at in referred if r is not None and at is not None], window_days=window_days)}
    return [WeekStats(week, visits.get(week, 0), registrations.get(week, 0), qualified.get(week, 0),
                      confirmed.get(week, 0), rewarded.get(week, 0), factors[week].cohort if week in factors else 0,
                      factors[week].referred if week in factors else 0) for week in weeks]
