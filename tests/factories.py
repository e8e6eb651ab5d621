"""Factories for test data: staff users and tokens (investors come from events, see tests/events.py)."""

from __future__ import annotations

import itertools

from sqlalchemy.orm import Session

from growth.auth.models import StaffUser
from growth.auth.services import create_token, create_user

PASSWORD = "correct horse battery"
_seq = itertools.count(1)


def make_user(session: Session, *, role: str = "admin", email: str | None = None, password: str = PASSWORD) -> StaffUser:
    """Create a staff user with a known password."""
    n = next(_seq)
    return create_user(email or f"{role}{n}@example.com", role=role, password=password, name=f"{role} {n}",
                       session=session, by="test")


def make_token(session: Session, *, role: str = "analyst") -> str:
    """Create a staff user of a role and return a bearer token for it."""
    user = make_user(session, role=role)
    return create_token(user, "test", session=session)[1]
