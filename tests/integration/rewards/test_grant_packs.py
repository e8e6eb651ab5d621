"""A grant of packs: one statement per table for many investors, the same limits as one grant at a time."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from channels.models import OutboxMessage
from growth.db import get_db
from growth.rewards.models import Reward, RewardBudget, RewardBudgetUse, RewardEntry
from growth.rewards.rules import Terms
from growth.rewards.services import Pack, budget_for, grant, grant_packs, refresh
from tests.integration.rewards.helpers import T0, VOUCHER, register

CASH = Terms(amount_fen=1000)
ITEMS = [("voucher", VOUCHER), ("cash", CASH)]  # a pack of two: 60.00 of face value


def _packs(ids: dict[str, int], tag: str = "run1") -> list[Pack]:
    return [Pack(investor_id, uid, (f"{tag}:{uid}:0", f"{tag}:{uid}:1"), f"cause:{uid}")
            for uid, investor_id in sorted(ids.items())]


def _grant(app, packs, **limits):  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        budget = budget_for("campaign", "9", session=s, now=T0, **limits)
        return grant_packs(session=s, packs=packs, items=ITEMS, budget=budget, actor="campaign", now=T0,
                           campaign_id=9)


def _used(app):  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        budget = s.scalars(select(RewardBudget)).one()
        return budget.used_grants, budget.used_amount_fen


def test_every_pack_gets_its_rewards_entries_and_webhooks_with_the_status_refresh_would_derive(app, client):
    ids = register(app, client, "p1", "p2", "p3")
    outcome = _grant(app, _packs(ids), max_grants=10)
    assert outcome.refused == {}
    assert [[r["kind"] for r in outcome.granted[i]] for i in range(3)] == [["voucher", "cash"]] * 3
    with get_db(app).session_scope(write=True) as s:
        assert s.scalar(select(func.count()).select_from(Reward)) == 6
        # granted for each reward, and paid for the cash: it is paid at grant
        assert sorted(s.scalars(select(RewardEntry.kind))) == ["granted"] * 6 + ["paid"] * 3
        webhooks = s.scalars(select(OutboxMessage).where(OutboxMessage.channel == "webhook")).all()
        assert sorted(w.user_id for w in webhooks) == ["p1", "p1", "p2", "p2", "p3", "p3"]
        assert {w.content["data"]["data"]["status"] for w in webhooks} == {"granted", "paid"}
        assert refresh(session=s) == 0  # what the bulk wrote is what the entries derive
    assert _used(app) == (3, 3 * 6000)


@pytest.mark.parametrize(("limits", "limit", "fits"), [
    ({"max_grants": 2}, "max_grants", 2), ({"max_amount_fen": 2 * 6000 + 5999}, "max_amount", 2),
])
def test_packs_are_granted_in_order_while_the_budget_lasts_and_the_rest_are_refused_by_name(
        app, client, limits, limit, fits):
    ids = register(app, client, "p1", "p2", "p3", "p4")
    outcome = _grant(app, _packs(ids), **limits)
    assert sorted(outcome.granted) == list(range(fits))
    assert outcome.refused == dict.fromkeys(range(fits, 4), limit)
    assert _used(app) == (fits, fits * 6000)


def test_an_investor_over_the_per_investor_limit_is_refused_and_gives_the_share_back(app, client):
    ids = register(app, client, "p1", "p2")
    with get_db(app).session_scope(write=True) as s:
        budget = budget_for("campaign", "9", session=s, now=T0, per_investor=1)
        grant(session=s, key="earlier", investor_id=ids["p2"], kind="cash", terms=CASH, budget=budget,
              actor="campaign", now=T0)
    outcome = _grant(app, _packs(ids))
    assert sorted(outcome.granted) == [0] and outcome.refused == {1: "per_investor"}
    assert _used(app) == (2, 1000 + 6000)  # the earlier grant and p1's pack; p2's share went back
    with get_db(app).session_scope() as s:
        assert sorted(s.scalars(select(RewardBudgetUse.used))) == [1, 1]


def test_packs_granted_before_come_back_as_they_were_and_use_nothing_twice(app, client):
    ids = register(app, client, "p1", "p2")
    first = _grant(app, _packs(ids), max_grants=10)
    again = _grant(app, _packs(ids), max_grants=10)
    assert {i: [r["id"] for r in rows] for i, rows in again.granted.items()} == {
        i: [r["id"] for r in rows] for i, rows in first.granted.items()}
    assert _used(app) == (2, 2 * 6000)
    with get_db(app).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 4


def test_one_investor_twice_in_one_grant_of_packs_is_refused_as_a_programming_error(app, client):
    ids = register(app, client, "p1")
    pack = _packs(ids)[0]
    with pytest.raises(ValueError, match="distinct investors"):
        _grant(app, [pack, Pack(pack.investor_id, "p1", ("x:0", "x:1"))])
