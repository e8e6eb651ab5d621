"""Leader election through a lease row: one active processor or scheduler per database.

A holder renews its lease inside each unit of work (fencing), so a node that lost the lease can
never commit a batch; a standby takes over once the lease expires, e.g. when its holder died.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import String, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from growth.db import Base


class LeaderLease(Base):
    """Who currently holds a named role, and until when."""

    __tablename__ = "leader_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]


def new_holder_id() -> str:
    """Return an id naming this process (host, pid and a random part)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim(name: str, holder: str, *, session: Session, now: datetime, ttl: timedelta) -> bool:
    """Take or renew the lease; return whether `holder` holds it. Call inside the unit of work it guards."""
    result = cast(CursorResult[Any], session.execute(
        update(LeaderLease)
        .where(LeaderLease.name == name, (LeaderLease.holder == holder) | (LeaderLease.expires_at < now))
        .values(holder=holder, expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    ))
    if result.rowcount:
        return True
    if session.scalar(select(LeaderLease.name).where(LeaderLease.name == name)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(LeaderLease(name=name, holder=holder, expires_at=now + ttl))
    except IntegrityError:
        return False
    return True


def release(name: str, holder: str, *, session: Session) -> None:
    """Give the lease up so a standby can take over at once."""
    session.execute(
        update(LeaderLease)
        .where(LeaderLease.name == name, LeaderLease.holder == holder)
        .values(expires_at=datetime(1970, 1, 1).astimezone())
        .execution_options(synchronize_session=False)
    )


def holder_prefix(pid: int) -> str:
    """Return the start of the holder ids a process `pid` on this host would use (see `new_holder_id`)."""
    return f"{socket.gethostname()}:{pid}:"


def release_dead_holder(pid: int, *, session: Session) -> int:
    """Release every lease held by process `pid` of this host, known dead (its parent reaped it); return how many.

    `growth serve` tells the worker it restarts which child died, so the new one takes over at once
    instead of waiting for the dead one's leases to expire.
    """
    result = cast(CursorResult[Any], session.execute(
        update(LeaderLease)
        .where(LeaderLease.holder.startswith(holder_prefix(pid), autoescape=True))
        .values(expires_at=datetime(1970, 1, 1).astimezone())
        .execution_options(synchronize_session=False)
    ))
    return result.rowcount or 0
