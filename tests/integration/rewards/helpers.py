"""Arranging rewards in tests: investors from events, grants through the one grant service, the ledger read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from growth.db import get_db
from growth.events.processor import drain
from growth.investors.models import Investor
from growth.rewards.models import Reward, RewardEntry, RewardUse
from growth.rewards.rules import Terms
from growth.rewards.services import budget_for, grant
from tests.events import event, post_events

T0 = datetime(2026, 9, 1, 2, 0, tzinfo=UTC)  # in the past: events may not come from the future
D = timedelta(days=1)
VOUCHER = Terms(amount_fen=5000, valid_days=30, min_investment_fen=500_000, min_term_days=30)


def register(app: Flask, client: Any, *user_ids: str) -> dict[str, int]:
    """Register investors through the events API; return their database ids."""
    response = post_events(client, [event("user.registered", uid, T0 - D) for uid in user_ids])
    assert response.json["rejected"] == []
    drain(app)
    with get_db(app).session_scope() as s:
        return dict(s.execute(select(Investor.platform_user_id, Investor.id)
                              .where(Investor.platform_user_id.in_(user_ids))).all())


def give(app: Flask, investor_id: int, kind: str = "voucher", terms: Terms = VOUCHER, *, key: str,
         at: datetime = T0, owner: tuple[str, str] = ("manual", "manual"), **limits: Any) -> int:
    """Grant a reward in a transaction of its own; return its id."""
    with get_db(app).session_scope(write=True) as s:
        budget = budget_for(*owner, session=s, now=at, **limits)
        return grant(session=s, key=key, investor_id=investor_id, kind=kind, terms=terms, budget=budget,
                     actor="test", now=at).id


def ledger(app: Flask) -> dict[str, Any]:
    """Return the ledger as plain data: statuses, costs, entries and uses (no ids of processing, no times of it)."""
    with get_db(app).session_scope() as s:
        rewards = {r.key: (r.status, r.cost_fen, r.investment_id) for r in s.scalars(select(Reward))}
        keys = dict(s.execute(select(Reward.id, Reward.key)).all())
        entries = sorted((keys[e.reward_id], e.kind, e.source, e.at, e.amount_fen, e.investment_id)
                         for e in s.scalars(select(RewardEntry)))
        uses = sorted((u.investment_id, u.reward_ref, u.valid, u.reason) for u in s.scalars(select(RewardUse)))
    return {"rewards": rewards, "entries": entries, "uses": uses}
