"""The consent projection: `user.consent_changed` events into the consent ledger and the current state.

Only statements from platform events are the log's: a replay deletes and rebuilds those, keeps the
statements of other sources (unsubscribe links, SMS replies, WeChat) and derives the state again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, Table, select
from sqlalchemy.orm import Session

from channels.models import PLATFORM_EVENT, ConsentState, ConsentStatement
from channels.rules import statement_wins
from channels.services import rebuild_states
from growth.db import insert_many, table_of, update_many
from growth.projections import Batch, Emission, LoggedEvent, Projection

_STATEMENTS = table_of(ConsentStatement)
_STATES = table_of(ConsentState)


class ConsentProjection(Projection):
    """Records each consent statement once and keeps the latest per investor and channel (opt-out wins a tie).

    `changed` is the signal sent for each statement that became the current state; the composition
    root gives it (`ConsentProjection.configured(changed=signals.consent_changed)`).
    """

    name = "consent"
    after = ("investors",)  # reads the investor ids it loads
    tables = (_STATEMENTS, _STATES)
    handles = frozenset({"user.consent_changed"})
    changed: ClassVar[Any] = None

    @classmethod
    def derived_rows(cls, table: Table) -> ColumnElement[bool] | None:
        return _STATEMENTS.c.source == PLATFORM_EVENT if table is _STATEMENTS else None

    @classmethod
    def after_reset(cls, session: Session) -> None:
        rebuild_states(session=session)

    def __init__(self, batch: Batch) -> None:
        super().__init__(batch)
        self.states: dict[tuple[int, str], dict[str, Any]] = {}
        self.statements: list[dict[str, Any]] = []
        self.recorded: set[str] = set()
        self.changes: list[tuple[int, str, bool]] = []

    def load(self, events: Sequence[LoggedEvent]) -> None:
        ours = [e for e in events if e.type in self.handles]
        if not ours:
            return
        batch, s = self.batch, self.batch.session
        investor_ids = sorted({batch.investors[e.user_id]["id"] for e in ours})
        for clause in batch.where_in(_STATES.c.investor_id, investor_ids):
            for row in s.execute(select(_STATES).where(clause)).mappings():
                self.states[(row["investor_id"], row["channel"])] = dict(row)
        for clause in batch.where_in(_STATEMENTS.c.event_id, sorted({e.event_id for e in ours})):
            self.recorded.update(s.scalars(select(_STATEMENTS.c.event_id).where(clause)))

    def apply(self, event: LoggedEvent) -> None:
        if event.event_id in self.recorded:
            return
        self.recorded.add(event.event_id)
        investor_id = self.batch.investors[event.user_id]["id"]
        data = event.body["data"]
        channel, granted, at = data["channel"], bool(data["granted"]), event.occurred_at
        self.statements.append({"investor_id": investor_id, "channel": channel, "granted": granted, "occurred_at": at,
                                "source": PLATFORM_EVENT, "evidence": {"seq": event.seq}, "event_id": event.event_id})
        state = self.states.get((investor_id, channel))
        current = None if state is None else (state["occurred_at"], state["granted"], state["source"])
        if not statement_wins(current, at, granted, PLATFORM_EVENT):
            return
        if state is None:
            state = self.states[(investor_id, channel)] = {"id": None, "investor_id": investor_id, "channel": channel}
        state.update(granted=granted, occurred_at=at, source=PLATFORM_EVENT, changed=True)
        self.changes.append((investor_id, channel, granted))

    def write(self) -> None:
        conn = self.batch.connection
        insert_many(conn, _STATEMENTS, self.statements)
        changed = [s for s in self.states.values() if s.get("changed")]
        fields = ("investor_id", "channel", "granted", "occurred_at", "source")
        insert_many(conn, _STATES, [{f: s[f] for f in fields} for s in changed if s["id"] is None])
        update_many(conn, _STATES, [{"id": s["id"], **{f: s[f] for f in fields}}
                                    for s in changed if s["id"] is not None])

    def emissions(self) -> Iterable[Emission]:
        if self.changed is None:
            return ()
        return [Emission(self.changed, {"investor_id": i, "channel": c, "granted": g}) for i, c, g in self.changes]
