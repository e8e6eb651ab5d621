"""The platform event log and the processor's cursor."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from growth.db import Base
from growth.timeutil import utcnow

# BIGINT on PostgreSQL; INTEGER on SQLite so the key is the rowid (autoincrementing, fast).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class PlatformEvent(Base):
    """One accepted platform event, appended in arrival order (seq)."""

    __tablename__ = "platform_events"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime]
    user_id: Mapped[str] = mapped_column(String(200), index=True)
    payload: Mapped[str] = mapped_column(Text)  # the event object exactly as received (JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProcessorCursor(Base):
    """How far a consumer of the log has got; moved in the same transaction as its effects."""

    __tablename__ = "processor_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
