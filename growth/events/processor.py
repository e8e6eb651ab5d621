"""The event processor: reads the log in arrival order, one transaction per batch with its cursor.

Each batch runs every projection the composition root registered (`growth.projections`), in order.

Exactly one processor is active per database (a lease row elects it, renewed inside every batch
so a node that lost it cannot commit); the others stand by and take over when the lease expires.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from growth.crypto import keyring
from growth.db import Database, get_db, table_of, update_many
from growth.events.models import PlatformEvent, ProcessorCursor
from growth.events.rules import dump_payload, load_payload
from growth.investors.models import Investor
from growth.locks import claim, new_holder_id, release
from growth.privacy.rules import strip_event
from growth.projections import Batch, Emission, LoggedEvent, Projections, projections_of
from growth.timeutil import utcnow

log = logging.getLogger("growth.events.processor")
CURSOR = "projections"
LEASE = "events-processor"
_INVESTORS = table_of(Investor)
_EVENTS = table_of(PlatformEvent)


@dataclass
class BatchOutcome:
    """What one batch did."""

    processed: int = 0
    position: int = 0
    emissions: list[Emission] = field(default_factory=list)


def _cursor(session: Session, now: datetime) -> ProcessorCursor:
    cursor = session.get(ProcessorCursor, CURSOR, with_for_update=True)
    if cursor is None:
        cursor = ProcessorCursor(name=CURSOR, position=0, updated_at=now)
        session.add(cursor)
        session.flush()
    return cursor


def process_batch(*, session: Session, projections: Projections, limit: int, now: datetime) -> BatchOutcome:
    """Run the projections over the next `limit` events and move the cursor, in the caller's transaction."""
    cursor = _cursor(session, now)
    rows = session.execute(
        select(PlatformEvent.seq, PlatformEvent.event_id, PlatformEvent.type, PlatformEvent.occurred_at,
               PlatformEvent.user_id, PlatformEvent.payload)
        .where(PlatformEvent.seq > cursor.position)
        .order_by(PlatformEvent.seq)
        .limit(limit)
    ).all()
    if not rows:
        return BatchOutcome(0, cursor.position)
    ring = keyring()
    events = [LoggedEvent(seq, eid, typ, at, uid, load_payload(payload, ring))
              for seq, eid, typ, at, uid, payload in rows]
    batch = Batch(session, projections)
    events = _without_erased_data(batch, events)
    batch.run(events)
    cursor.position = rows[-1][0]
    cursor.updated_at = now
    session.flush()
    return BatchOutcome(len(rows), cursor.position, batch.emissions)


def _without_erased_data(batch: Batch, events: list[LoggedEvent]) -> list[LoggedEvent]:
    """Take erased investors' personal fields out of their events, in the log too, before any projection reads them.

    An erased investor stays erased: a new or replayed event with their phone or name (the platform's copy of an
    old registration, a backfill) neither restores it on the investors row nor keeps it in the log.
    """
    user_ids = sorted({e.user_id for e in events})
    erased: set[str] = set()
    for clause in batch.where_in(_INVESTORS.c.platform_user_id, user_ids):
        erased.update(batch.session.scalars(
            select(_INVESTORS.c.platform_user_id).where(_INVESTORS.c.erased_at.is_not(None), clause)))
    if not erased:
        return events
    out: list[LoggedEvent] = []
    changed: list[dict[str, Any]] = []
    for event in events:
        if event.user_id in erased:
            stripped = strip_event(event.body)
            if stripped.changed:
                event = replace(event, body=stripped.body)
                changed.append({"seq": event.seq, "payload": dump_payload(stripped.body, keyring())})
        out.append(event)
    update_many(batch.connection, _EVENTS, changed, key="seq")
    return out


def send(emissions: list[Emission], sender: object) -> None:
    """Send the batch's signals (after its commit); a failing receiver never stops the processor."""
    for emission in emissions:
        try:
            emission.signal.send(sender, **emission.kwargs)
        except Exception:
            log.exception("signal receiver failed for %s %s", emission.signal.name, emission.kwargs)


def drain(app: Flask, *, limit: int | None = None, emit: bool = True,
          progress: Callable[[int], None] | None = None) -> int:
    """Process every pending event now (CLI, demo, tests); return how many were processed."""
    db = get_db(app)
    projections = projections_of(app)
    limit = limit or app.config["PROCESSOR_BATCH_SIZE"]
    total = 0
    while True:
        with db.session_scope(write=True) as session:
            outcome = process_batch(session=session, projections=projections, limit=limit, now=utcnow())
        if emit:
            send(outcome.emissions, app)
        total += outcome.processed
        if progress and outcome.processed:
            progress(outcome.processed)
        if outcome.processed < limit:
            return total


def reset_projections(*, session: Session, projections: Projections) -> None:
    """Forget everything derived from the log (investors keep their ids) and rewind the cursor."""
    projections.reset(session)
    session.execute(update(ProcessorCursor).where(ProcessorCursor.name == CURSOR).values(position=0))


def wake_event(app: Flask) -> threading.Event:
    """Return the event that wakes the in-process processor when new events were appended."""
    return app.extensions.setdefault("growth.events.wake", threading.Event())


_LAST_SEQ = select(func.max(PlatformEvent.seq))


def wait_for_events(db: Database, *, after: int, stop: threading.Event, wake: threading.Event, poll: float,
                    longest: float) -> None:
    """Return once the log has an event after seq `after`, on stop, or after `longest` seconds.

    An in-process ingest sets `wake`; a processor in another process (`growth worker`, the child of
    `growth serve`) sees new events by a cheap read of the log's last seq every `poll` seconds, which
    takes no write lock (bench/README.md has its cost).
    """
    deadline = time.monotonic() + longest
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if wake.wait(min(poll, left)):
            wake.clear()
            return
        with db.engine.connect() as conn:  # no ORM session: this runs ten times a second on an idle node
            if (conn.scalar(_LAST_SEQ) or 0) > after:
                return


def run_processor(app: Flask, stop: threading.Event) -> None:
    """Background worker: stand by for the lease, then process batches until stopped."""
    db = get_db(app)
    projections = projections_of(app)
    holder = new_holder_id()
    ttl = timedelta(seconds=app.config["LEADER_LEASE_SECONDS"])
    limit = app.config["PROCESSOR_BATCH_SIZE"]
    idle = app.config["PROCESSOR_IDLE_SECONDS"]
    poll = app.config["PROCESSOR_POLL_SECONDS"]
    wake = wake_event(app)
    leading = False
    try:
        while not stop.is_set():
            started = time.monotonic()
            with db.session_scope(write=True) as session:
                now = utcnow()
                if not claim(LEASE, holder, session=session, now=now, ttl=ttl):
                    outcome = None
                else:
                    outcome = process_batch(session=session, projections=projections, limit=limit, now=now)
            if outcome is None:
                if leading:
                    log.warning("processor %s lost the lease; standing by", holder)
                leading = False
                stop.wait(ttl.total_seconds() / 3)
                continue
            if not leading:
                log.info("processor %s is now the active processor", holder)
                leading = True
            send(outcome.emissions, app)
            if outcome.processed:
                log.debug("processed %d events in %.3f s", outcome.processed, time.monotonic() - started)
            if outcome.processed < limit:
                wait_for_events(db, after=outcome.position, stop=stop, wake=wake, poll=poll,
                                longest=min(idle, ttl.total_seconds() / 3))
    finally:
        if leading:
            with db.session_scope(write=True) as session:
                release(LEASE, holder, session=session)
