"""Consent and opt-out: record statements, read the current state. Services flush, never commit."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from channels.models import CONSENT_SOURCES, ConsentState, ConsentStatement, Unreachable
from channels.rules import statement_wins


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
