"""Factories for test data: staff users and tokens (investors come from events, see tests/events.py)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from channels.models import OutboxMessage
from growth.auth.models import StaffUser
from growth.auth.services import create_token, create_user
from growth.investors.models import Investor
from growth.investors.rules import referral_code_for

PASSWORD = "correct horse battery"
_seq = itertools.count(1)


def make_user(
    session: Session, *, role: str = "admin", email: str | None = None, password: str = PASSWORD
) -> StaffUser:
    """Create a staff user with a known password."""
    n = next(_seq)
    return create_user(email or f"{role}{n}@example.com", role=role, password=password, name=f"{role} {n}",
                       session=session, by="test")


def make_token(session: Session, *, role: str = "analyst") -> str:
    """Create a staff user of a role and return a bearer token for it."""
    user = make_user(session, role=role)
    return create_token(user, "test", session=session)[1]


def make_investor(session: Session, **fields: object) -> Investor:
    """Create an investor row directly (as the processor would have projected it) and flush."""
    n = next(_seq)
    platform_user_id = str(fields.pop("platform_user_id", f"u_{n:06d}"))
    values: dict[str, object] = {
        "platform_user_id": platform_user_id,
        "referral_code": referral_code_for(platform_user_id),
        "phone": f"+86139{n:08d}",
        "name": f"测试{n}",
        "registered_at": datetime.now(UTC),
    }
    values.update(fields)
    investor = Investor(**values)
    session.add(investor)
    session.flush()
    return investor


def make_message(session: Session, **fields: object) -> OutboxMessage:
    """Create an outbox message directly (as enqueue and a delivery worker would have left it) and flush."""
    n = next(_seq)
    at = fields.pop("created_at", datetime(2026, 12, 1, 2, 0, tzinfo=UTC))
    values: dict[str, object] = {
        "key": f"test|{n}", "sender": "campaign", "cause": f"evt_{n}", "channel": "sms",
        "message_class": "marketing", "content": {"text": "您好"}, "status": "queued", "attempts": 0,
        "due_at": at, "created_at": at, "updated_at": at,
    }
    values.update(fields)
    message = OutboxMessage(**values)
    session.add(message)
    session.flush()
    return message
