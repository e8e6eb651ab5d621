"""Ingestion: verify, validate and append platform events to the log; nothing else (it must stay fast)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError, WebhookVerificationError
from werkzeug.datastructures import Headers

from growth.crypto import keyring
from growth.db import Database
from growth.events.models import PlatformEvent, ProcessorCursor
from growth.events.rules import ValidEvent, dump_payload, split_envelope, validate_event

logger = logging.getLogger(__name__)

SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
SIGNATURE_TOLERANCE = timedelta(minutes=5)
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")  # ASCII digits only: int() would also take "١٢" or "1_0"

# Serialises appends on PostgreSQL so that seq order is commit order: the processor's cursor can
# then never skip an event committed late with a lower seq.
APPEND_LOCK_KEY = 0x67726F77  # "grow"
_SQLITE_INSERT = (
    "INSERT OR IGNORE INTO platform_events (event_id, type, occurred_at, user_id, payload, received_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
# Taken before the insert, released by the commit. `synchronous_commit` is set in the same statement: off for
# `append_durably`, whose barrier flushes after the lock is let go.
_PG_LOCK = "SELECT set_config('synchronous_commit', %(sync)s, true), pg_advisory_xact_lock(%(k)s)"
# A tiny WAL record in a transaction of its own, committed synchronously: its flush covers every commit before it.
_PG_BARRIER = "SELECT pg_logical_emit_message(true, 'growth.events', '')"
# The batch travels as one JSON parameter serialised by orjson (C): psycopg dumps Python lists as
# arrays in pure Python, which took ~2/3 of a request's time (bench/README.md).
_PG_INSERT = (
    "INSERT INTO platform_events (event_id, type, occurred_at, user_id, payload, received_at) "
    "SELECT e.i, e.t, e.o, e.u, e.p, %(received_at)s FROM ROWS FROM (json_to_recordset(%(rows)s::json) "
    "AS (i varchar, t varchar, o timestamptz, u varchar, p text)) WITH ORDINALITY AS e(i, t, o, u, p, n) "
    "ORDER BY e.n "
    "ON CONFLICT (event_id) DO NOTHING"
)


# The append's round trip (`append_on`): results in order BEGIN, the lock's row, the INSERT, COMMIT, the barrier.
_PG_APPEND_DURABLY = f"BEGIN; {_PG_LOCK}; {_PG_INSERT}; COMMIT; {_PG_BARRIER}"


class SignatureError(Exception):
    """The request is not signed by the platform (bad, missing or stale signature)."""


class EnvelopeError(Exception):
    """The body is not JSON, or neither an event nor {"events": [...]}."""


@dataclass
class IngestResult:
    """What happened to one request's events."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """Return the response body of the events API."""
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


def verifiers(secrets: str) -> list[Webhook]:
    """Return a verifier per configured `whsec_<base64>` secret (space-separated, for rotation)."""
    hooks = []
    for secret in secrets.split():
        try:
            hooks.append(Webhook(secret))
        except (binascii.Error, ValueError, EmptyWebhookSecretError):
            logger.error("GROWTH_WEBHOOK_SECRET: ignoring a secret that is not whsec_<base64>")
    return hooks


def _well_formed_signatures(header: str) -> str:
    """Keep the "v1,<base64>" entries of a signature list.

    The library stops at the first entry it cannot decode; the spec allows a list, so a good
    signature after a malformed or unknown-version one must still count.
    """
    kept = []
    for entry in header.split():
        version, comma, encoded = entry.partition(",")
        if version != "v1" or not comma:
            continue
        try:
            base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        kept.append(entry)
    return " ".join(kept)


def verify_signature(
    body: bytes, headers: Mapping[str, str] | Headers, hooks: Sequence[Webhook], *, now: datetime
) -> None:
    """Accept the body if its Standard Webhooks signature matches any secret; raise SignatureError otherwise.

    The official library checks the HMAC of "{webhook-id}.{webhook-timestamp}.{body}" and the
    timestamp; we check the headers first so that every refusal says precisely what was wrong.
    """
    values = {name: headers.get(name, "") for name in SIGNATURE_HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise SignatureError("missing header " + ", ".join(missing))
    timestamp = values["webhook-timestamp"]
    if _UNIX_SECONDS.fullmatch(timestamp) is None:
        raise SignatureError("webhook-timestamp must be unix seconds")
    skew = int(timestamp) - now.timestamp()
    if abs(skew) > SIGNATURE_TOLERANCE.total_seconds():
        raise SignatureError(f"webhook-timestamp is more than 5 minutes {'old' if skew < 0 else 'in the future'}")
    if not hooks:
        raise SignatureError("no webhook secret is configured")
    values["webhook-signature"] = _well_formed_signatures(values["webhook-signature"])
    if not values["webhook-signature"]:
        raise SignatureError("no well-formed v1 signature")
    for hook in hooks:
        try:
            hook.verify(body, values, json_parse=False)
            return
        except WebhookVerificationError:
            continue
    raise SignatureError("no matching v1 signature")


def check_utf8(body: bytes) -> None:
    """Refuse a body that is not UTF-8: it cannot be JSON, and cannot be checked as signed text."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise EnvelopeError("body is not UTF-8 encoded JSON") from None


def parse_body(body: bytes) -> list[object]:
    """Return the event objects of a request body, or raise EnvelopeError."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise EnvelopeError("body is not valid JSON") from None
    events = split_envelope(doc)
    if events is None:
        raise EnvelopeError('body must be one event object or {"events": [...]}')
    return events


def validate_all(events: Sequence[object], *, now: datetime) -> tuple[list[ValidEvent], list[dict[str, Any]]]:
    """Split a batch into valid events and per-index rejections."""
    valid: list[ValidEvent] = []
    rejected: list[dict[str, Any]] = []
    for index, obj in enumerate(events):
        outcome = validate_event(obj, now)
        if isinstance(outcome, ValidEvent):
            valid.append(outcome)
        else:
            event_id = obj.get("id") if isinstance(obj, dict) else None
            rejected.append({"index": index, "id": event_id if isinstance(event_id, str) else None,
                             "errors": outcome})
    return valid, rejected


def _sqlite_time(value: datetime) -> str:
    # The exact text SQLAlchemy's SQLite DateTime writes, so comparisons in SQL stay consistent.
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _pg_rows(valid: Sequence[ValidEvent]) -> str:
    ring = keyring()
    return orjson.dumps([
        {"i": e.event_id, "t": e.type, "o": e.occurred_at, "u": e.user_id, "p": dump_payload(e.payload, ring)}
        for e in valid
    ]).decode()


def append_events(valid: Sequence[ValidEvent], *, session: Session, now: datetime) -> int:
    """Append events to the log in the session's transaction, ignoring ids already stored; return how many were new."""
    if not valid:
        return 0
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_PG_LOCK, {"k": APPEND_LOCK_KEY, "sync": "on"})
        return conn.exec_driver_sql(_PG_INSERT, {"received_at": now, "rows": _pg_rows(valid)}).rowcount
    ring = keyring()
    received = _sqlite_time(now)
    rows = [
        (e.event_id, e.type, _sqlite_time(e.occurred_at), e.user_id, dump_payload(e.payload, ring), received)
        for e in valid
    ]
    return conn.exec_driver_sql(_SQLITE_INSERT, rows).rowcount


def append_durably(valid: Sequence[ValidEvent], *, db: Database, now: datetime) -> int:
    """Append events in a transaction of their own; return once the database has them on disk (what a 200 promises).

    On PostgreSQL the append commits without waiting for its WAL flush, so the append lock (held until the
    commit) is never held through a disk flush; a second, tiny transaction — a transactional logical message
    — then commits synchronously, and its flush covers the append's commit before it (and a duplicate's
    earlier commit by another request). Concurrent requests share such flushes (group commit). All of it
    goes in ONE round trip (`append_on`) on a pooled connection, no ORM session: no client round trip is made
    while the lock is held, so a busy web process cannot hold up every other append (bench/README.md, issue 13).
    """
    if not valid:
        return 0
    if db.dialect != "postgresql":
        with db.session_scope(write=True) as session:  # SQLite: synchronous FULL, the commit is on disk
            return append_events(valid, session=session, now=now)
    pooled = db.engine.raw_connection()  # the pool's checkout: a connection idle for long is pinged first
    try:
        raw = pooled.dbapi_connection
        assert isinstance(raw, psycopg.Connection)
        return append_on(raw, valid, now=now)
    finally:
        pooled.close()  # back to the pool


def append_on(raw: psycopg.Connection, valid: Sequence[ValidEvent], *, now: datetime) -> int:
    """`append_durably` on a psycopg connection with no transaction open: one statement string, one round trip.

    The statements are bound client-side and sent as ONE simple query (psycopg's pipeline mode spun on the
    socket while it waited for the answer: a third of the web process's CPU under load, bench/README.md).
    """
    params = {"k": APPEND_LOCK_KEY, "sync": "off", "received_at": now, "rows": _pg_rows(valid)}
    raw.autocommit = True  # the explicit BEGIN … COMMIT below, then the barrier in its own transaction
    try:
        with psycopg.ClientCursor(raw) as cursor:
            cursor.execute(_PG_APPEND_DURABLY, params)
            cursor.nextset()  # the lock's row
            cursor.nextset()  # the INSERT
            return cursor.rowcount
    except BaseException:
        if not raw.closed and raw.info.transaction_status != TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                raw.execute("ROLLBACK")
        raise
    finally:
        if not raw.closed and raw.info.transaction_status == TransactionStatus.IDLE:
            raw.autocommit = False


def ingest(events: Sequence[object], *, session: Session, now: datetime) -> IngestResult:
    """Validate a batch and append its valid events in the session's transaction, for the caller to commit."""
    return _appended(events, now, lambda valid: append_events(valid, session=session, now=now))


def ingest_durably(events: Sequence[object], *, db: Database, now: datetime) -> IngestResult:
    """Validate a batch and append its valid events durably in a transaction of their own (the events API)."""
    return _appended(events, now, lambda valid: append_durably(valid, db=db, now=now))


def _appended(events: Sequence[object], now: datetime,
              append: Callable[[list[ValidEvent]], int]) -> IngestResult:
    """Validate, append the valid events; duplicates are counted, not stored."""
    valid, rejected = validate_all(events, now=now)
    inserted = append(valid)
    return IngestResult(accepted=inserted, duplicates=len(valid) - inserted, rejected=rejected)


@dataclass(frozen=True)
class LogStatus:
    """How far the processor has got through the log."""

    total: int
    processed_up_to: int
    last_seq: int

    @property
    def pending(self) -> int:
        """Return roughly how many events wait for processing."""
        return max(self.last_seq - self.processed_up_to, 0)


def log_status(*, session: Session, cursor_name: str = "projections") -> LogStatus:
    """Return the event log's size and the processor's position."""
    total, last = session.execute(select(func.count(), func.coalesce(func.max(PlatformEvent.seq), 0))).one()
    position = session.scalar(select(ProcessorCursor.position).where(ProcessorCursor.name == cursor_name)) or 0
    return LogStatus(total=total, processed_up_to=position, last_seq=last)


def list_events(
    *, session: Session, type_: str | None = None, user_id: str | None = None, page: int = 1, per_page: int = 50
) -> tuple[list[PlatformEvent], int]:
    """Return one page of the event log, newest first, with the total count."""
    query = select(PlatformEvent)
    count = select(func.count()).select_from(PlatformEvent)
    if type_:
        query, count = query.where(PlatformEvent.type == type_), count.where(PlatformEvent.type == type_)
    if user_id:
        query, count = query.where(PlatformEvent.user_id == user_id), count.where(PlatformEvent.user_id == user_id)
    total = session.scalar(count) or 0
    rows = session.scalars(query.order_by(PlatformEvent.seq.desc()).offset((page - 1) * per_page).limit(per_page))
    return list(rows), total
