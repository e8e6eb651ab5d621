"""Consent rules: plain functions over plain data."""

from __future__ import annotations

from datetime import datetime


def statement_order(occurred_at: datetime, granted: bool, source: str) -> tuple[datetime, bool, str]:
    """Return a statement's rank: the latest wins; on a tie the opt-out; then the source name (order-free)."""
    return (occurred_at, not granted, source)


def statement_wins(current: tuple[datetime, bool, str] | None, occurred_at: datetime, granted: bool,
                   source: str) -> bool:
    """Tell whether a new statement replaces the current one (given as occurred_at, granted, source)."""
    if current is None:
        return True
    return statement_order(occurred_at, granted, source) > statement_order(*current)
