"""Consent to marketing messages: a ledger of statements and the current state per investor and channel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from growth.db import Base

BigId = BigInteger().with_variant(Integer(), "sqlite")

# Where a statement came from. Only platform-event statements are projections of the log (a replay
# rebuilds them); the others were told to us directly and are kept.
PLATFORM_EVENT = "platform_event"
CONSENT_SOURCES = (PLATFORM_EVENT, "unsubscribe_link", "sms_reply", "wechat")


class ConsentStatement(Base):
    """One statement of consent (granted) or opt-out for one channel, with its evidence; never changed."""

    __tablename__ = "consent_statements"
    __table_args__ = (Index("ix_consent_statements_investor_channel", "investor_id", "channel"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    investor_id: Mapped[int] = mapped_column(ForeignKey("investors.id"))
    channel: Mapped[str] = mapped_column(String(16))  # sms / email / wechat
    granted: Mapped[bool]
    occurred_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(32))  # one of CONSENT_SOURCES
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The platform event (or reply, callback …) it came from: each is recorded once.
    event_id: Mapped[str | None] = mapped_column(String(200), unique=True)


class ConsentState(Base):
    """The statement that currently holds for an investor and channel: the latest; on a tie the opt-out."""

    __tablename__ = "consent_states"
    __table_args__ = (UniqueConstraint("investor_id", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    investor_id: Mapped[int] = mapped_column(ForeignKey("investors.id"))
    channel: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool]
    occurred_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(32))
