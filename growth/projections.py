"""Projections of the event log: the registry, the batch they share, and how each is reset for a replay.

A projection owns tables (every row of which it derives from the log) and, where several projections
share one row (the investors row), a declared set of columns of it. The processor runs every registered
projection over each batch, in registration order and inside the batch's one transaction:

    load (every projection) -> apply each event (every projection, in order) -> derive -> write -> emissions

so a later projection sees what the earlier ones loaded and derived. `growth events replay` calls each
projection's `reset`, which is derived from its models: it deletes its tables' rows and sets its owned
columns back to the model's column defaults (no hand-written column list that a new column could escape).

The composition root builds the registry (`growth.app`); nothing is registered at import time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from flask import Flask
from sqlalchemy import Column, ColumnDefault, ColumnElement, Table, delete, update
from sqlalchemy.orm import Session

from growth.db import among

CHUNK = 500  # keeps IN (...) lists well under every database's parameter limit
EXTENSION = "growth.projections"


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One event read back from the log."""

    seq: int
    event_id: str
    type: str
    occurred_at: datetime
    user_id: str
    body: dict[str, Any]


@dataclass
class Emission:
    """A signal to send once the batch has committed."""

    signal: Any
    kwargs: dict[str, Any]


class Projection:
    """One concern projected from the log; subclass it, declare what it owns, override the steps it needs.

    A new instance serves one batch. The steps get the shared `Batch`; write with `batch.connection`
    (plain rows, one executemany per table and batch: the ORM's unit of work is far too slow here).
    """

    name: ClassVar[str]
    # Tables every row of which is derived from the log (their rows are deleted on reset).
    tables: ClassVar[tuple[Table, ...]] = ()
    # Columns this projection owns on a row it shares with others (reset to their model defaults).
    columns: ClassVar[Mapping[Table, tuple[str, ...]]] = {}
    # Columns of a shared row that identify it and survive a replay (declared by the row's owner).
    keeps: ClassVar[Mapping[Table, tuple[str, ...]]] = {}
    # Event types `apply` is called for (None: every event).
    handles: ClassVar[frozenset[str] | None] = None
    # Projections that must be registered before this one (it reads what they load or derive).
    after: ClassVar[tuple[str, ...]] = ()

    def __init__(self, batch: Batch) -> None:
        self.batch = batch

    @classmethod
    def configured(cls, **attributes: Any) -> type[Projection]:
        """Return this projection with class attributes set (what the composition root wires in, e.g. a signal)."""
        return type(cls.__name__, (cls,), attributes)

    def load(self, events: Sequence[LoggedEvent]) -> None:
        """Read the rows this batch needs."""

    def apply(self, event: LoggedEvent) -> None:
        """Apply one event (arrival order) to the loaded rows."""

    def derive(self) -> None:
        """Compute what depends on the whole batch (totals, attribution)."""

    def write(self) -> None:
        """Write the changed rows."""

    def emissions(self) -> Iterable[Emission]:
        """Return the signals to send once the batch has committed."""
        return ()

    # --- replay -------------------------------------------------------------------------------
    @classmethod
    def derived_rows(cls, table: Table) -> ColumnElement[bool] | None:
        """Return which rows of an owned table came from the log (None: all of them)."""
        return None

    @classmethod
    def reset(cls, session: Session) -> None:
        """Forget what this projection derived: its tables' derived rows, its columns back to their defaults."""
        for table in _dependants_first(cls.tables):
            where = cls.derived_rows(table)
            session.execute(delete(table) if where is None else delete(table).where(where))
        for table, names in cls.columns.items():
            session.execute(update(table).values({name: column_default(table.c[name]) for name in names}))
        cls.after_reset(session)

    @classmethod
    def after_reset(cls, session: Session) -> None:
        """Rebuild what depends on rows the reset kept (e.g. state from statements of other sources)."""


def column_default(column: Column[Any]) -> Any:
    """Return the value a fresh row gets for a column: its model default, else NULL."""
    default = column.default
    if default is None:
        if not column.nullable:
            raise ValueError(f"{column} has no default to reset to")
        return None
    if isinstance(default, ColumnDefault) and default.is_scalar:
        return default.arg
    if isinstance(default, ColumnDefault) and default.is_callable:
        return default.arg(None)  # SQLAlchemy wraps it to take a context
    raise ValueError(f"{column} has a default that is not a plain value")


def _dependants_first(tables: Sequence[Table]) -> list[Table]:
    """Order tables so rows that point at others are deleted before the rows they point at."""
    if not tables:
        return []
    order = {t: i for i, t in enumerate(tables[0].metadata.sorted_tables)}
    return sorted(tables, key=lambda t: order.get(t, 0), reverse=True)


class Projections:
    """The registered projections, in the order the processor runs them."""

    def __init__(self) -> None:
        self._items: list[type[Projection]] = []

    def register(self, projection: type[Projection]) -> type[Projection]:
        """Add a projection after those registered so far; what it needs must already be there."""
        names = [p.name for p in self._items]
        if projection.name in names:
            raise ValueError(f"projection {projection.name!r} is registered already")
        missing = [n for n in projection.after if n not in names]
        if missing:
            raise ValueError(f"projection {projection.name!r} needs {missing} registered before it")
        self._items.append(projection)
        return projection

    def __iter__(self) -> Iterator[type[Projection]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def reset(self, session: Session) -> None:
        """Reset every projection, the last registered first (it may point at what earlier ones own)."""
        for projection in reversed(self._items):
            projection.reset(session)


def projections_of(app: Flask) -> Projections:
    """Return the app's registry (built by the composition root)."""
    registry: Projections = app.extensions[EXTENSION]
    return registry


@dataclass
class Batch:
    """One batch of events and what its projections share; call `run`, then read `emissions`.

    `investors` holds the batch's investor rows as plain dicts by platform user id: the investors
    projection loads (and creates) them, the others read them and set the columns they own, and the
    investors projection writes the row once with every registered projection's columns.
    """

    session: Session
    projections: Projections
    emissions: list[Emission] = field(default_factory=list)
    investors: dict[str, dict[str, Any]] = field(default_factory=dict)
    new_investors: list[dict[str, Any]] = field(default_factory=list)  # rows created by this batch
    # Investors whose registration was (re)decided in this batch, or who waited for a referrer who just appeared.
    reattribute: set[str] = field(default_factory=set)
    _instances: list[Projection] = field(default_factory=list)

    @property
    def connection(self) -> Any:
        """Return the transaction's connection, for bulk writes."""
        return self.session.connection()

    def owned_columns(self, table: Table) -> tuple[str, ...]:
        """Return every registered projection's columns on a shared table, in registration order."""
        return tuple(name for p in self.projections for name in p.columns.get(table, ()))

    def run(self, events: Sequence[LoggedEvent]) -> None:
        """Run every projection over the events, write their rows, and collect the signals to send."""
        steps = self._instances = [p(self) for p in self.projections]
        for step in steps:
            step.load(events)
        appliers = [(step.apply, type(step).handles) for step in steps]
        for event in events:
            for apply, handles in appliers:
                if handles is None or event.type in handles:
                    apply(event)
        for step in steps:
            step.derive()
        for step in steps:
            step.write()
        for step in steps:
            self.emissions.extend(step.emissions())

    def where_in(self, column: Any, values: Sequence[Any]) -> Iterator[Any]:
        """Yield WHERE clauses that together match rows whose column is one of the values.

        PostgreSQL gets one `= ANY(array)` with a single parameter: long IN lists are re-parsed on
        every call and were the processor's main cost there. SQLite gets IN lists in chunks.
        """
        if not values:
            return
        if self.session.get_bind().dialect.name == "postgresql":
            yield among(column, values, dialect="postgresql")
            return
        for i in range(0, len(values), CHUNK):
            yield column.in_(values[i:i + CHUNK])
