"""The demo leaves rewards of every kind with redemptions, an invalid use, expiries and a clawback."""

from __future__ import annotations

from sqlalchemy import select

from growth.db import get_db
from growth.demo import load_demo
from growth.rewards.models import KINDS, Reward, RewardEntry, RewardUse


def test_the_demo_ledger_has_every_kind_redemptions_expiries_and_a_clawback(app):
    load_demo(app, investors=300, seed=7)
    with get_db(app).session_scope() as s:
        rewards = list(s.scalars(select(Reward)))
        entries = {e.kind for e in s.scalars(select(RewardEntry))}
        uses = list(s.scalars(select(RewardUse)))
    assert {r.kind for r in rewards} == set(KINDS)
    assert {"redeemed", "expired", "paid", "clawed_back"} <= {r.status for r in rewards}
    assert {"granted", "redeemed", "expired", "paid", "clawed_back"} <= entries
    assert any(not u.valid and u.reason == "conditions_unmet" for u in uses)
