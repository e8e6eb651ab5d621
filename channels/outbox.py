"""The outbox: messages written in their cause's transaction, once per idempotency key.

Callers (campaign triggers and runs, the rewards ledger, the CRM) render a message and enqueue it in
the same transaction as the change that caused it; the delivery workers (`channels.delivery`) send it
after that transaction commits. Enqueueing the same (campaign or sender, investor, channel, cause)
twice — a replay, a retried job, a second worker — adds nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ColumnElement, Select, String, Text, cast, func, literal, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.sqltypes import NullType

from channels.adapters.port import Channel, MessageClass
from channels.models import OutboxMessage
from growth.db import insert_many, table_of

_OUTBOX = table_of(OutboxMessage)
CONTENT_FIELDS = frozenset({"text", "subject", "html", "template_code", "params", "wechat_kind", "template_id",
                            "data", "url"})


def message_key(*, sender: str, campaign_id: int | None, investor_ref: str, channel: str, cause: str) -> str:
    """Return the idempotency key: one message per (campaign or sender, investor, channel, cause)."""
    source = f"c{campaign_id}" if campaign_id is not None else sender
    return f"{source}|{investor_ref}|{channel}|{cause}"[:255]


@dataclass(frozen=True, slots=True)
class Fallback:
    """A channel to try when the one before cannot reach the investor, with its rendered content."""

    channel: Channel
    content: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A rendered message to enqueue.

    `content` holds the rendered parts the channel needs (`text`; `subject`/`html` for email;
    `template_code`/`params` for SMS template providers; `wechat_kind` ("template" or "mass"),
    `template_id`, `data`, `url` for WeChat; `data` is the JSON body of a platform webhook).
    `investor_id` is None only for the platform webhook, which goes to the platform, not a person.
    """

    sender: str
    cause: str
    channel: Channel
    message_class: MessageClass
    content: Mapping[str, Any]
    investor_id: int | None = None
    user_id: str | None = None  # the platform's user id, for the messages API
    campaign_id: int | None = None
    # Tried in order when this channel cannot reach the investor (spec §2 `fallback: true`): each a
    # channel and its rendered content; the first channel the investor can be reached on wins.
    fallbacks: tuple[Fallback, ...] = ()
    fallback_of: int | None = None
    extra_key: str = ""  # makes the key differ when one cause sends two messages on one channel

    def key(self) -> str:
        """The message's idempotency key."""
        investor_ref = str(self.investor_id) if self.investor_id is not None else "-"
        cause = f"{self.cause}|{self.extra_key}" if self.extra_key else self.cause
        return message_key(sender=self.sender, campaign_id=self.campaign_id, investor_ref=investor_ref,
                           channel=str(self.channel), cause=cause)

    def check(self) -> None:
        """Raise ValueError for a message no worker could send (a programming error of the caller)."""
        unknown = set(self.content) - CONTENT_FIELDS
        if unknown:
            raise ValueError(f"unknown message content fields: {sorted(unknown)}")
        if self.channel != Channel.WEBHOOK and self.investor_id is None:
            raise ValueError("a message to a person needs an investor")
        if self.channel == Channel.WECHAT and self.content.get("wechat_kind") not in ("template", "mass"):
            raise ValueError("a WeChat message is a template message or part of a mass send")
        if self.channel == Channel.WECHAT and (self.content["wechat_kind"] == "mass") != (
                self.message_class == MessageClass.MARKETING):
            raise ValueError("WeChat template messages are service notices; marketing goes by mass send")
        chain = [self.channel, *(f.channel for f in self.fallbacks)]
        if len(set(chain)) != len(chain) or Channel.WEBHOOK in chain[1:]:
            raise ValueError("a fallback names another channel to a person, each once")
        for f in self.fallbacks:
            NewMessage(sender=self.sender, cause=self.cause, channel=f.channel, message_class=self.message_class,
                       content=f.content, investor_id=self.investor_id).check()

    def stored_content(self) -> dict[str, Any]:
        """The content as stored: the rendered parts, and the fallbacks still to try under `fallbacks`."""
        stored = dict(self.content)
        if self.fallbacks:
            stored["fallbacks"] = [{"channel": str(f.channel), "content": dict(f.content)} for f in self.fallbacks]
        return stored

    def row(self, now: datetime) -> dict[str, Any]:
        """The outbox row for the message, queued and due now."""
        return {
            "key": self.key(), "campaign_id": self.campaign_id, "sender": self.sender, "cause": self.cause,
            "investor_id": self.investor_id, "user_id": self.user_id, "channel": str(self.channel),
            "message_class": str(self.message_class), "content": self.stored_content(),
            "fallback": str(self.fallbacks[0].channel) if self.fallbacks else None, "fallback_of": self.fallback_of,
            "status": "queued", "hold_reason": None, "attempts": 0, "due_at": now, "lease_until": None,
            "claimed_by": None, "provider": None, "provider_id": None, "recipient_masked": None,
            "error_code": None, "error": None, "created_at": now, "updated_at": now, "sent_at": None,
            "delivered_at": None,
        }


@dataclass(slots=True)
class Enqueued:
    """What an enqueue did: the ids of the new messages, and how many were already there."""

    ids: list[int] = field(default_factory=list)
    existing: int = 0


def enqueue(message: NewMessage, *, session: Session, now: datetime) -> int | None:
    """Queue one message in the caller's transaction; return its id, or None when its key was already queued."""
    result = enqueue_many([message], session=session, now=now)
    return result.ids[0] if result.ids else None


def enqueue_many(messages: Iterable[NewMessage], *, session: Session, now: datetime,
                 chunk: int = 5000) -> Enqueued:
    """Queue many messages in the caller's transaction (bulk inserts; keys already queued are skipped)."""
    result = Enqueued()
    conn = session.connection()
    batch: list[dict[str, Any]] = []

    def flush(rows: Sequence[dict[str, Any]]) -> None:
        ids = [r[0] for r in insert_many(conn, _OUTBOX, rows, returning=("id",), skip_conflicts=True)]
        result.ids.extend(sorted(ids))
        result.existing += len(rows) - len(ids)

    for message in messages:  # a generator is read chunk by chunk: memory stays flat
        message.check()
        batch.append(message.row(now))
        if len(batch) >= chunk:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    return result


# What a message computed by the database must give (the rest of a new row is the same for every message).
FROM_COLUMNS = ("key", "campaign_id", "sender", "cause", "investor_id", "user_id", "channel", "message_class",
                "content")


def enqueue_from(query: Select[Any], *, session: Session, now: datetime) -> int:
    """Queue the messages a query yields in ONE INSERT … SELECT; keys already queued are skipped; return how many.

    The query's columns are FROM_COLUMNS, in that order (`content` as JSON: a parameter when every message
    says the same, or built per row by `json_template`): for fan-outs whose every message the database can
    build, so no row passes through Python. A queued message is exactly what `enqueue_many` would write for it.
    """
    constant = {name: value for name, value in NewMessage(
        sender="-", cause="-", channel=Channel.WEBHOOK, message_class=MessageClass.SERVICE, content={},
    ).row(now).items() if name not in FROM_COLUMNS}
    columns = [_OUTBOX.c[name] for name in (*FROM_COLUMNS, *constant)]
    source = query.subquery("messages")
    # A bare NULL (no investor, no campaign) gets its column's type: PostgreSQL will not guess it.
    given = [cast(c, _OUTBOX.c[name].type) if isinstance(c.type, NullType) else c
             for name, c in zip(FROM_COLUMNS, source.c, strict=True)]
    selected = [*given, *(literal(value, _OUTBOX.c[name].type) for name, value in constant.items())]
    conn = session.connection()
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    # The WHERE settles SQLite's parse of `INSERT … SELECT … ON CONFLICT` (its documented ambiguity).
    query_all = select(*selected).where(true())
    return conn.execute(insert(_OUTBOX).from_select(columns, query_all).on_conflict_do_nothing()).rowcount


def json_template(dialect: str, template: Mapping[str, Any], fill: Mapping[tuple[str, ...], Any]) -> ColumnElement[Any]:
    """Return a JSON document built by the database: `template` with text values set at paths (`fill`).

    On PostgreSQL the document is the template's text with each value spliced in as a JSON string
    (`to_json`), cast once: per row the database checks text, where jsonb_set parsed and re-wrote the
    whole document for each value (bench/README.md, the fan-out).
    """
    if dialect != "postgresql":
        args: list[Any] = [literal(json.dumps(template, ensure_ascii=False), Text)]
        for path, value in fill.items():
            args += ["$." + ".".join(path), cast(value, String)]
        return func.json_set(*args, type_=JSON)
    marked = json.loads(json.dumps(template))
    values = list(fill.values())
    for n, path in enumerate(fill):
        node = marked
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = f"\x00{n}\x00"  # a JSON string no template holds (json.dumps escapes NUL)
    pieces = re.split(r'"\\u0000(\d+)\\u0000"', json.dumps(marked, ensure_ascii=False))
    document: ColumnElement[Any] = literal(pieces[0], Text)
    for index, text in zip(pieces[1::2], pieces[2::2], strict=True):
        document = document + cast(func.to_json(cast(values[int(index)], Text)), Text) + literal(text, Text)
    return cast(document, JSON)


def find(key: str, *, session: Session) -> OutboxMessage | None:
    """Return the message with an idempotency key."""
    return session.scalar(select(OutboxMessage).where(OutboxMessage.key == key))


def fallback_of(row: OutboxMessage) -> NewMessage | None:
    """Return the message to try next when `row` cannot reach its investor, or None at the end of the chain."""
    chain = row.content.get("fallbacks") or []
    if not chain or row.investor_id is None:
        return None
    first, rest = chain[0], chain[1:]
    return NewMessage(
        sender=row.sender, cause=row.cause, channel=Channel(first["channel"]),
        message_class=MessageClass(row.message_class), content=first["content"], investor_id=row.investor_id,
        user_id=row.user_id, campaign_id=row.campaign_id,
        fallbacks=tuple(Fallback(Channel(f["channel"]), f["content"]) for f in rest), fallback_of=row.id,
    )
