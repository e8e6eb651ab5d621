"""Consent and opt-out: record statements, read the current state. Services flush, never commit."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, and_, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from channels.models import (
    CONSENT_SOURCES,
    MESSAGE_CHANNELS,
    RETRYABLE,
    WAITING,
    CapUsage,
    ChannelSetting,
    ConsentState,
    ConsentStatement,
    OutboxMessage,
    Unreachable,
)
from channels.queries import MessageFilter
from channels.rules import Cap, cap_period, statement_wins
from channels.settings import BY_KEY, ChannelConfig, check_value, mask_secret
from channels.settings import load as load_settings
from growth.audit.services import record
from growth.errors import DomainError, NotFound
from growth.timeutil import SHANGHAI


def consent_of(*, session: Session, investor_id: int) -> dict[str, dict[str, Any]]:
    """Return an investor's current consent per channel: granted, at (when stated), source."""
    rows = session.scalars(select(ConsentState).where(ConsentState.investor_id == investor_id))
    return {r.channel: {"granted": r.granted, "at": r.occurred_at, "source": r.source} for r in rows}


def may_message(*, session: Session, investor_id: int, channel: str) -> bool:
    """Tell whether marketing may use a channel: only after a consent that no opt-out has replaced."""
    state = consent_of(session=session, investor_id=investor_id).get(channel)
    return bool(state and state["granted"])


def record_statement(*, session: Session, investor_id: int, channel: str, granted: bool, occurred_at: datetime,
                     source: str, evidence: dict[str, Any] | None = None, event_id: str | None = None) -> bool:
    """Record a statement (once per event id) and return whether it became the current state."""
    if source not in CONSENT_SOURCES:
        raise ValueError(f"unknown consent source {source!r}")
    if event_id is not None and session.scalar(
            select(ConsentStatement.id).where(ConsentStatement.event_id == event_id)) is not None:
        return False
    session.add(ConsentStatement(investor_id=investor_id, channel=channel, granted=granted, occurred_at=occurred_at,
                                 source=source, evidence=evidence or {}, event_id=event_id))
    state = session.scalar(select(ConsentState).where(ConsentState.investor_id == investor_id,
                                                      ConsentState.channel == channel).with_for_update())
    current = None if state is None else (state.occurred_at, state.granted, state.source)
    if not statement_wins(current, occurred_at, granted, source):
        session.flush()
        return False
    if state is None:
        session.add(ConsentState(investor_id=investor_id, channel=channel, granted=granted, occurred_at=occurred_at,
                                 source=source))
    else:
        state.granted, state.occurred_at, state.source = granted, occurred_at, source
    session.flush()
    return True


def rebuild_states(*, session: Session) -> None:
    """Derive every current state again from the ledger (after a replay removed the platform's statements)."""
    session.execute(delete(ConsentState))
    best: dict[tuple[int, str], tuple[datetime, bool, str]] = {}
    query = select(ConsentStatement.investor_id, ConsentStatement.channel, ConsentStatement.occurred_at,
                   ConsentStatement.granted, ConsentStatement.source)
    for investor_id, channel, at, granted, source in session.execute(query):
        key = (investor_id, channel)
        if statement_wins(best.get(key), at, granted, source):
            best[key] = (at, granted, source)
    session.add_all(ConsentState(investor_id=i, channel=c, occurred_at=at, granted=g, source=src)
                    for (i, c), (at, g, src) in sorted(best.items()))
    session.flush()


# --- reachability -----------------------------------------------------------------------------------


def contact_digest(address: str) -> str:
    """Return the digest a refusal is kept under (the address itself is never stored again)."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


def mark_unreachable(*, session: Session, investor_id: int, channel: str, address: str, code: str, reason: str,
                     now: datetime, message_id: int | None = None) -> None:
    """Record that a provider refused an investor's address on a channel for good (replaces an older refusal)."""
    row = session.scalar(select(Unreachable).where(Unreachable.investor_id == investor_id,
                                                   Unreachable.channel == channel).with_for_update())
    if row is None:
        try:
            with session.begin_nested():
                session.add(Unreachable(investor_id=investor_id, channel=channel,
                                        contact_digest=contact_digest(address), code=code[:64], reason=reason[:500],
                                        since=now, message_id=message_id))
            return
        except IntegrityError:  # another worker recorded it at the same moment
            row = session.scalar(select(Unreachable).where(Unreachable.investor_id == investor_id,
                                                           Unreachable.channel == channel).with_for_update())
            if row is None:
                raise
    row.contact_digest, row.code, row.reason = contact_digest(address), code[:64], reason[:500]
    row.since, row.message_id = now, message_id
    session.flush()


def clear_unreachable(*, session: Session, investor_id: int, channel: str) -> bool:
    """Forget a refusal (e.g. the investor followed the official account again); return whether there was one."""
    result = session.execute(delete(Unreachable).where(Unreachable.investor_id == investor_id,
                                                       Unreachable.channel == channel))
    return bool(getattr(result, "rowcount", 0))


def unreachable_on(*, session: Session, investor_id: int, addresses: dict[str, str]) -> dict[str, Unreachable]:
    """Return the refusals that still hold for an investor: those for the address they have now, per channel."""
    rows = session.scalars(select(Unreachable).where(Unreachable.investor_id == investor_id))
    return {r.channel: r for r in rows
            if r.channel in addresses and r.contact_digest == contact_digest(addresses[r.channel])}


def cap_usage(*, session: Session, investor_id: int, channel: str, caps: Sequence[Cap],
              now: datetime) -> list[tuple[Cap, int]]:
    """Return each cap a marketing message on `channel` counts against, with what the investor used of it now."""
    mine = [c for c in caps if c.applies_to(channel)]
    if not mine:
        return []
    periods = {(c.scope, cap_period(c, now, SHANGHAI)) for c in mine}
    used = {(scope, period): n for scope, period, n in session.execute(
        select(CapUsage.scope, CapUsage.period, CapUsage.used).where(
            CapUsage.investor_id == investor_id, CapUsage.scope.in_(sorted({s for s, _p in periods}))))}
    return [(c, int(used.get((c.scope, cap_period(c, now, SHANGHAI)), 0))) for c in mine]


# --- staff actions: re-queue messages, channel settings (the message pages) --------------------------


def retry_messages(*, session: Session, now: datetime, ids: Sequence[int] | None = None,
                   filters: MessageFilter | None = None) -> int:
    """Queue failed, dead, capped, unreachable or skipped messages again (chosen by id or by filter); return how many.

    A re-queued message starts afresh (attempts 0, due now, no hold); its last error stays until the next
    try. Messages in any other status are left alone, so a message the delivery worker is sending right
    now is never touched. The change is audited with the count and how the messages were chosen.
    """
    if (ids is None) == (filters is None):
        raise ValueError("choose the messages either by id or by filter")
    m = OutboxMessage
    # A body erased or past its retention (growth.privacy) has nothing left to send.
    conditions: list[ColumnElement[bool]] = [m.status.in_(RETRYABLE), m.content["redacted"].as_string().is_(None)]
    if ids is not None:
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return 0
        conditions.append(m.id.in_(wanted))
    elif filters is not None:
        conditions.extend(filters.conditions())
    result = session.execute(
        update(m).where(*conditions)
        .values(status="queued", attempts=0, due_at=now, hold_reason=None, lease_until=None, claimed_by=None,
                updated_at=now)
        .execution_options(synchronize_session=False))
    count = int(getattr(result, "rowcount", 0) or 0)
    details: dict[str, Any] = {"count": count}
    if ids is not None:
        details["ids"] = wanted[:200]  # enough to find them again; a page holds fewer
    else:
        details["filters"] = filters.as_args() if filters is not None else {}
    record("messages.retried", session=session, target_type="outbox_messages", details=details)
    session.flush()
    return count


class SettingsInvalid(DomainError):
    """Some submitted settings were refused; `errors` maps each setting's key to its reason."""

    status = 422

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__(_l("有设置未保存，请改正标出的项。"))
        self.errors = dict(errors)


def _shown(key: str, value: str) -> str:
    """Return a setting's value as the audit log may keep it (never a secret)."""
    return mask_secret(value) if BY_KEY[key].secret else value


def store_override(key: str, value: str, *, session: Session, now: datetime, by: int | None) -> None:
    """Store a setting's override (a race with another writer of the same key ends with this value)."""
    row = session.get(ChannelSetting, key)
    if row is None:
        try:
            with session.begin_nested():
                session.add(ChannelSetting(key=key, value=value, updated_by=by, updated_at=now))
            return
        except IntegrityError:  # another administrator saved the same setting at the same moment: ours wins
            row = session.get(ChannelSetting, key)
            if row is None:
                raise
    row.value, row.updated_by, row.updated_at = value, by, now


def set_marketing_hold(on: bool, *, session: Session, now: datetime, by: int | None, reason: str | None = None) -> int:
    """Turn the marketing kill switch on (hold every queued or deferred marketing message) or off (release them).

    On: the held messages become `deferred` with the hold reason `kill_switch`, and delivery defers every
    other marketing message it finds while the switch stays on (a send already in flight may finish).
    Off: the held messages are due at once and checked again against everything else (quiet hours, caps …).
    Returns how many messages were held or released; audited either way (with the reason given, if any).
    """
    m = OutboxMessage
    store_override("marketing_hold", "true" if on else "false", session=session, now=now, by=by)
    if on:
        result = session.execute(update(m).where(m.message_class == "marketing", m.status.in_(WAITING))
                                 .values(status="deferred", hold_reason="kill_switch", updated_at=now)
                                 .execution_options(synchronize_session=False))
    else:
        result = session.execute(update(m).where(m.status == "deferred", m.hold_reason == "kill_switch")
                                 .values(due_at=now, updated_at=now).execution_options(synchronize_session=False))
    count = int(getattr(result, "rowcount", 0) or 0)
    details: dict[str, Any] = {"messages": count}
    if reason:
        details["reason"] = reason
    record("kill_switch.on" if on else "kill_switch.off", session=session, target_type="channel_settings",
           target_id="marketing_hold", details=details, actor_id=by)
    return count


def marketing_hold_counts(*, session: Session) -> tuple[int, int]:
    """Return the marketing messages the kill switch holds now, and those waiting to be sent (queued or deferred)."""
    m = OutboxMessage
    held = session.scalar(select(func.count()).where(m.status == "deferred", m.hold_reason == "kill_switch")) or 0
    waiting = session.scalar(select(func.count()).where(m.message_class == "marketing", m.status.in_(WAITING))) or 0
    return held, waiting


def marketing_held(*, session: Session, environment: Mapping[str, str]) -> bool:
    """Tell whether the marketing kill switch is on now."""
    return load_settings(session=session, environment=environment).marketing_held()


def release_deferred(before: ChannelConfig, after: ChannelConfig, *, session: Session, now: datetime) -> int:
    """Make deferred messages due now when a change may free them (quiet hours changed, a channel unpaused)."""
    m = OutboxMessage
    if before["quiet_hours"] != after["quiet_hours"]:
        condition = m.status == "deferred"
    else:
        unpaused = [ch for ch in MESSAGE_CHANNELS if before.paused(ch) and not after.paused(ch)]
        if not unpaused:
            return 0
        condition = and_(m.status == "deferred", m.channel.in_(unpaused))
    result = session.execute(update(m).where(condition).values(due_at=now)
                             .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def save_settings(values: Mapping[str, str], *, session: Session, environment: Mapping[str, str], now: datetime,
                  by: int | None = None) -> dict[str, tuple[str, str]]:
    """Store the submitted settings that differ from those in effect as overrides; return {key: (old, new)}.

    Every value is checked first; if any is refused nothing is stored (`SettingsInvalid` lists them all).
    Each change is audited as old → new (secrets masked). Delivery reads the settings afresh every few
    seconds, so a change applies without a restart; deferred messages are made due at once when the
    change may free them.
    """
    before = load_settings(session=session, environment=environment)
    errors: dict[str, str] = {}
    changes: dict[str, tuple[str, str]] = {}
    for key, raw in values.items():
        if key in BY_KEY and raw.strip() == before[key]:
            continue  # unchanged (even a bad value from the environment is the administrator's to fix there)
        try:
            value = check_value(key, raw)
        except ValueError as exc:
            errors[key] = str(exc)
            continue
        if value != before[key]:
            changes[key] = (before[key], value)
    if errors:
        raise SettingsInvalid(errors)
    for key, (_old, new) in changes.items():
        store_override(key, new, session=session, now=now, by=by)
    if changes:
        session.flush()
        record("channel_settings.changed", session=session, target_type="channel_settings",
               details={"changes": {k: [_shown(k, old), _shown(k, new)] for k, (old, new) in changes.items()}})
        release_deferred(before, load_settings(session=session, environment=environment), session=session, now=now)
    return changes


def clear_setting(key: str, *, session: Session, environment: Mapping[str, str], now: datetime) -> bool:
    """Remove a setting's override so the environment (or the default) applies again; return whether there was one."""
    if key not in BY_KEY:
        raise NotFound(_l("没有这项设置：%(key)s", key=key))
    before = load_settings(session=session, environment=environment)
    row = session.get(ChannelSetting, key)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    after = load_settings(session=session, environment=environment)
    record("channel_settings.cleared", session=session, target_type="channel_settings",
           details={"changes": {key: [_shown(key, before[key]), _shown(key, after[key])]}})
    release_deferred(before, after, session=session, now=now)
    return True
