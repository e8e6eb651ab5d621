"""A grant of packs: one statement per table for many investors, the same limits as one grant at a time."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, literal, select, union_all

from channels.models import OutboxMessage
from growth.db import get_db
from growth.rewards.models import Reward, RewardBudget, RewardBudgetUse, RewardEntry
from growth.rewards.rules import Terms
from growth.rewards.services import Pack, budget_for, grant, grant_packs, refresh, take_packs, write_packs
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


def _written(app, campaign_id: int) -> dict[str, list[Any]]:  # type: ignore[no-untyped-def]
    """The rewards, entries and webhooks of a campaign, with what differs between two campaigns taken out."""
    with get_db(app).session_scope() as s:
        rewards = s.scalars(select(Reward).where(Reward.campaign_id == campaign_id).order_by(Reward.key)).all()
        ids = {r.id: n for n, r in enumerate(rewards)}
        plain = [{c.key: getattr(r, c.key) for c in Reward.__table__.c if c.key not in ("id", "key", "campaign_id",
                                                                                        "budget_id")}
                 for r in rewards]
        entries = sorted((ids[e.reward_id], e.kind, e.source, e.at, e.recorded_at, e.actor, e.amount_fen, e.note)
                         for e in s.scalars(select(RewardEntry).where(RewardEntry.reward_id.in_(ids))))
        hooks = []
        for m in s.scalars(select(OutboxMessage).where(OutboxMessage.campaign_id == campaign_id)):
            body = dict(m.content["data"]["data"])
            n = ids[int(body.pop("id").removeprefix("rw_"))]
            body.pop("campaign_id")
            assert m.key == f"c{campaign_id}|-|webhook|rw_{[k for k, v in ids.items() if v == n][0]}|reward.granted"
            hooks.append((n, m.sender, m.user_id, m.channel, m.message_class, m.status, m.due_at, body))
    return {"rewards": plain, "entries": entries, "webhooks": sorted(hooks, key=lambda h: h[0])}


def test_packs_written_by_the_database_are_exactly_the_packs_granted_row_by_row(app, client):
    ids = register(app, client, "p1", "p2", "p3")
    packs = _packs(ids)
    with get_db(app).session_scope(write=True) as s:
        first = budget_for("campaign", "1", session=s, now=T0, per_investor=1)
        grant_packs(session=s, packs=packs, items=ITEMS, budget=first, actor="campaign", now=T0, campaign_id=1)
        second = budget_for("campaign", "2", session=s, now=T0, per_investor=1, max_grants=2)
        taken = take_packs(session=s, investor_ids=[p.investor_id for p in packs], items=ITEMS, budget=second)
        assert taken.refused == {2: "max_grants"}
        source = [literal_select(p) for n, p in enumerate(_packs(ids, "run2")) if n not in taken.refused]
        assert write_packs(session=s, source=union_all(*source), items=ITEMS, budget=second, actor="campaign",
                           now=T0, campaign_id=2) == 4
    by_row, by_sql = _written(app, 1), _written(app, 2)
    assert by_sql["rewards"] == [r for r in by_row["rewards"] if r["investor_id"] != ids["p3"]]
    kept = {n for n, r in enumerate(by_row["rewards"]) if r["investor_id"] != ids["p3"]}
    assert by_sql["entries"] == [e for e in by_row["entries"] if e[0] in kept]
    assert by_sql["webhooks"] == [h for h in by_row["webhooks"] if h[0] in kept]
    with get_db(app).session_scope() as s:
        assert refresh(session=s) == 0


def literal_select(pack: Pack):  # type: ignore[no-untyped-def]
    return select(literal(pack.keys[0].rsplit(":", 1)[0]).label("key"), literal(pack.investor_id).label("investor_id"),
                  literal(pack.cause).label("cause"))
