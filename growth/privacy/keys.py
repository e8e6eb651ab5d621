"""Data key rotation: every encrypted value and keyed hash rewritten under the current key (docs/operations.md).

To rotate, an operator puts a new key first in GROWTH_DATA_KEYS and keeps the old one after it, restarts, and runs
`growth keys rotate`: it finds the rows whose tokens or hashes were made with another key and rewrites them in
chunks, each chunk its own transaction (an interrupted rotation resumes where it stopped, and the app keeps reading
and finding both kinds meanwhile). `growth keys status` shows how many values each key still holds; once the old
key holds none it can leave GROWTH_DATA_KEYS.

The encrypted columns are found by their type (growth.crypto.Sealed) in every table, so a new one is rotated
without a change here; a row's keyed hashes are recomputed from its decrypted values (search_index). The event
log's contact fields are sealed inside the payload (growth.events.rules.seal_payload): those events are found by
the key id their token names, a scan of the log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import Column, ColumnElement, Table, and_, func, not_, or_, select, type_coerce
from sqlalchemy.orm import Session

from growth.audit.services import record
from growth.crypto import Sealed, keyring
from growth.db import Base, table_of, update_many
from growth.events.models import PlatformEvent
from growth.events.rules import SEALED, dump_payload, load_payload
from growth.investors.rules import SEARCH_INDEX_COLUMNS, SEARCH_INDEX_OF, search_index

CHUNK = 1000
_SEP = "$"
_EVENTS = table_of(PlatformEvent)


@dataclass(frozen=True, slots=True)
class Target:
    """A table with encrypted columns, and the hash columns computed from them (investors only)."""

    table: Table
    sealed: tuple[Column, ...]
    hashes: tuple[Column, ...]


def targets() -> list[Target]:
    """Return every table with an encrypted column."""
    found = []
    for table in Base.metadata.sorted_tables:
        sealed = tuple(c for c in table.columns if isinstance(c.type, Sealed))
        if sealed:
            hashes = tuple(table.c[n] for n in SEARCH_INDEX_COLUMNS if n in table.c)
            found.append(Target(table, sealed, hashes))
    return found


def _plain(column: Column) -> ColumnElement[str]:
    """`column` as its stored text (an encrypted column's own type would decrypt what a query reads)."""
    return type_coerce(column, column.type.impl if isinstance(column.type, Sealed) else column.type)


def _stale(target: Target, current: str) -> ColumnElement[bool]:
    """Rows with a value or hash made with another key than `current` (compared as stored text: `<id>$…`)."""
    prefix = current + _SEP
    return or_(*(and_(c.is_not(None), func.substr(_plain(c), 1, len(prefix)) != prefix)
                 for c in (*target.sealed, *target.hashes)))


def _sealed_with(key_id: str) -> ColumnElement[bool]:
    """Events whose contact fields were sealed with this key (the stored JSON holds `"$sealed":"<id>$…`)."""
    return _EVENTS.c.payload.contains(f'"{SEALED}":"{key_id}{_SEP}', autoescape=True)


def _stale_events(current: str) -> ColumnElement[bool]:
    return and_(_EVENTS.c.payload.contains(f'"{SEALED}":"', autoescape=True), not_(_sealed_with(current)))


def status(*, session: Session) -> dict[str, Counter[str]]:
    """Return, per `table.column`, how many stored values each key id holds (events: a scan of the log)."""
    out: dict[str, Counter[str]] = {}
    events: Counter[str] = Counter()
    for key_id in keyring().ids:
        events[key_id] = session.scalar(select(func.count()).where(_sealed_with(key_id))) or 0
    out["platform_events.payload"] = +events
    ids = keyring().ids
    for target in targets():
        for column in (*target.sealed, *target.hashes):
            text = _plain(column)
            counts = [func.count().filter(func.substr(text, 1, len(k) + 1) == k + _SEP) for k in ids]
            row = session.execute(select(func.count(column), *counts).select_from(target.table)).one()
            by_key = Counter(dict(zip(ids, (int(n) for n in row[1:]), strict=True)))
            other = int(row[0]) - sum(by_key.values())
            if other:
                by_key["(unknown key)"] = other
            out[f"{target.table.name}.{column.name}"] = +by_key
    return out


def pending(*, session: Session) -> int:
    """Return how many rows hold a value or hash made with a key other than the current one."""
    current = keyring().current.id
    rows = sum(session.scalar(select(func.count()).select_from(t.table).where(_stale(t, current))) or 0
               for t in targets())
    return rows + (session.scalar(select(func.count()).where(_stale_events(current))) or 0)


def rotate(*, session_scope: Callable[[], AbstractContextManager[Session]],
           progress: Callable[[int], None] = lambda n: None, actor: str = "cli") -> int:
    """Rewrite every stale row under the current key, a chunk a transaction; return how many rows were rewritten."""
    current = keyring().current.id
    done = 0
    for target in targets():
        t = target.table
        after = 0
        while True:
            with session_scope() as session:
                query = (select(t.c.id, *target.sealed).where(_stale(target, current), t.c.id > after)
                         .order_by(t.c.id).limit(CHUNK))
                rows = session.execute(query).mappings().all()
                if not rows:
                    break
                # update_many seals the encrypted columns on the way in, under the current key.
                update_many(session.connection(), t, [_rewritten(target, dict(row)) for row in rows])
                after = rows[-1]["id"]
            done += len(rows)
            progress(len(rows))
    done += _rotate_events(session_scope, current, progress)
    with session_scope() as session:
        record("data_keys.rotated", session=session, actor=actor, details={"key": current, "rows": done})
    return done


def _rotate_events(session_scope: Callable[[], AbstractContextManager[Session]], current: str,
                   progress: Callable[[int], None]) -> int:
    """Seal the contact fields of every event sealed with an older key again, in log order, a chunk a transaction."""
    done = after = 0
    ring = keyring()
    while True:
        with session_scope() as session:
            rows = session.execute(select(_EVENTS.c.seq, _EVENTS.c.payload)
                                   .where(_stale_events(current), _EVENTS.c.seq > after)
                                   .order_by(_EVENTS.c.seq).limit(CHUNK)).all()
            if not rows:
                return done
            update_many(session.connection(), _EVENTS,
                        [{"seq": seq, "payload": dump_payload(load_payload(payload, ring), ring)}
                         for seq, payload in rows], key="seq")
            after = rows[-1][0]
        done += len(rows)
        progress(len(rows))


def _rewritten(target: Target, row: dict) -> dict:
    """The row's encrypted values sealed again (the type seals them on the way in) and its hashes recomputed."""
    values = {"id": row["id"], **{c.name: row[c.name] for c in target.sealed}}
    if target.hashes:
        for field in SEARCH_INDEX_OF:
            values.update(search_index(keyring(), field, row.get(field)))
    return values
