"""Retention: the scheduler's `data-retention` job strips personal fields from old raw data, in batches.

- **Event payloads** older than `RETENTION_EVENT_PAYLOAD_DAYS` (by `received_at`) lose the profile values
  (`user.phone/name/email/wechat_openid`) that no longer hold: a value the investor's row still has stays in the
  events that carry it, so a replay gives the same profile, and every other field (ids, times, channel codes,
  clicks, referral codes, amounts, products, and the registration's device and address, which attribution and
  the referral checks read) stays, so the replay gives the same milestones, channels, referrals and numbers.
- **Message bodies** older than `RETENTION_MESSAGE_BODY_DAYS` (by `created_at`, on SMS, email and WeChat, in a
  final status) lose their text, subject, html, parameters and data; the row (status, times, template code,
  campaign and cause) stays for the delivery log and the results.

Each walks its table with a cursor row (`processor_cursors`: `retention-events`, `retention-messages`) in
transactions of `RETENTION_BATCH_SIZE` rows, at most `RETENTION_MAX_BATCHES` per run: a stopped run resumes
where it was, and a second run (or worker) finds nothing left to do. Event batches take the processor's
cursor lock, so they never write over a batch's reads, and go no further than the processor has.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.models import FINAL, OutboxMessage
from growth.crypto import keyring
from growth.db import Database, get_db, table_of, update_many
from growth.events.models import PlatformEvent, ProcessorCursor
from growth.events.rules import dump_payload, load_payload
from growth.investors.models import Investor
from growth.privacy import rules

log = logging.getLogger("growth.privacy.retention")
EVENTS_CURSOR = "retention-events"
MESSAGES_CURSOR = "retention-messages"
PROJECTIONS_CURSOR = "projections"
_INVESTORS = table_of(Investor)
_EVENTS = table_of(PlatformEvent)
_PROFILE = tuple(rules.INVESTOR_PERSONAL_COLUMNS)


@dataclass(frozen=True)
class RetentionSettings:
    """How long raw data keeps personal fields (days, 0 = for ever) and how big the steps are."""

    event_payload_days: int = 365
    message_body_days: int = 180
    batch_size: int = 1000
    max_batches: int = 20


def settings_of(config: Any) -> RetentionSettings:
    """Return the retention settings of an app's configuration."""
    return RetentionSettings(int(config["RETENTION_EVENT_PAYLOAD_DAYS"]), int(config["RETENTION_MESSAGE_BODY_DAYS"]),
                             int(config["RETENTION_BATCH_SIZE"]), int(config["RETENTION_MAX_BATCHES"]))


@dataclass
class Step:
    """One batch: rows looked at, rows changed, and whether more may be waiting."""

    examined: int = 0
    changed: int = 0
    more: bool = False


def _cursor(session: Session, name: str, now: datetime) -> ProcessorCursor:
    cursor = session.get(ProcessorCursor, name, with_for_update=True)
    if cursor is None:
        cursor = ProcessorCursor(name=name, position=0, updated_at=now)
        session.add(cursor)
        session.flush()
    return cursor


def _lock(query: Any, session: Session) -> Any:
    return query.with_for_update() if session.get_bind().dialect.name == "postgresql" else query


def events_step(*, session: Session, now: datetime, days: int, limit: int) -> Step:
    """Strip superseded profile values from the next `limit` processed events received more than `days` ago."""
    processed = session.scalar(select(ProcessorCursor.position).where(ProcessorCursor.name == PROJECTIONS_CURSOR)
                               .with_for_update()) or 0
    cursor = _cursor(session, EVENTS_CURSOR, now)
    cutoff = now - timedelta(days=days)
    rows = session.execute(_lock(
        select(PlatformEvent.seq, PlatformEvent.user_id, PlatformEvent.payload, PlatformEvent.received_at)
        .where(PlatformEvent.seq > cursor.position, PlatformEvent.seq <= processed)
        .order_by(PlatformEvent.seq).limit(limit), session)).all()
    old = []
    for row in rows:
        if row.received_at >= cutoff:
            break  # the log is in arrival order: the rest is newer
        old.append(row)
    if not old:
        return Step()
    holders: dict[str, dict[str, Any]] = {}
    user_ids = sorted({r.user_id for r in old})
    for i in range(0, len(user_ids), 500):
        query = select(_INVESTORS.c.platform_user_id, *(_INVESTORS.c[c] for c in _PROFILE), _INVESTORS.c.erased_at)
        for found in session.execute(query.where(_INVESTORS.c.platform_user_id.in_(user_ids[i:i + 500]))).mappings():
            holders[found["platform_user_id"]] = dict(found)
    changed = []
    ring = keyring()
    for row in old:
        investor = holders.get(row.user_id) or {}
        erased = investor.get("erased_at") is not None
        stripped = rules.strip_event(load_payload(row.payload, ring),
                                     keep=None if erased else rules.keep_values(investor), profile_only=not erased)
        if stripped.changed:
            changed.append({"seq": row.seq, "payload": dump_payload(stripped.body, ring)})
    update_many(session.connection(), _EVENTS, changed, key="seq")
    cursor.position, cursor.updated_at = old[-1].seq, now
    session.flush()
    return Step(len(old), len(changed), more=len(old) == limit)


def messages_step(*, session: Session, now: datetime, days: int, limit: int) -> Step:
    """Strip the bodies of the next `limit` messages created more than `days` ago that are done with."""
    cursor = _cursor(session, MESSAGES_CURSOR, now)
    cutoff = now - timedelta(days=days)
    m = OutboxMessage
    found = session.scalars(_lock(select(m).where(m.id > cursor.position).order_by(m.id).limit(limit), session)).all()
    rows = []
    for row in found:
        if row.created_at >= cutoff:
            break  # ids follow creation: the rest is newer (the cursor never passes a message not yet old)
        rows.append(row)
    if not rows:
        return Step()
    changed = 0
    for row in rows:
        # A message still waiting (a rare one queued for months) keeps its body: it may yet be sent.
        if row.channel not in rules.PERSONAL_MESSAGE_CHANNELS or row.status not in FINAL:
            continue
        if "redacted" in (row.content or {}):
            continue
        row.content = rules.message_content(row.content or {}, why="retention")
        changed += 1
    cursor.position, cursor.updated_at = rows[-1].id, now
    session.flush()
    return Step(len(rows), changed, more=len(rows) == limit)


@dataclass
class RetentionRun:
    """What a run did: events and messages changed, and whether either has more to do."""

    events: int = 0
    messages: int = 0
    more: bool = False


def apply_retention(db: Database, *, now: datetime, settings: RetentionSettings) -> RetentionRun:
    """Run retention now: each batch in a write transaction of its own, at most `max_batches` of each kind."""
    run = RetentionRun()
    for days, step, attribute in ((settings.event_payload_days, events_step, "events"),
                                  (settings.message_body_days, messages_step, "messages")):
        if days <= 0:
            continue  # 0 = keep
        for _ in range(settings.max_batches):
            with db.session_scope(write=True) as session:
                done = step(session=session, now=now, days=days, limit=settings.batch_size)
            setattr(run, attribute, getattr(run, attribute) + done.changed)
            if not done.more:
                break
        else:
            run.more = True
    return run


def task_retention(_session: Session, now: datetime) -> None:
    """Scheduled task (`data-retention`): strip personal fields from old payloads and bodies, batch by batch."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    run = apply_retention(get_db(app), now=now, settings=settings_of(app.config))
    if run.events or run.messages:
        log.info("retention: %d event payloads and %d message bodies stripped%s", run.events, run.messages,
                 " (more next run)" if run.more else "")
