"""Redemption, invalid uses and clawback are a projection of the log: order-free, replayable, once."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from channels.models import OutboxMessage
from growth.db import get_db
from growth.events.processor import drain, reset_projections
from growth.projections import projections_of
from growth.rewards import jobs
from growth.rewards.models import Reward, RewardEntry
from growth.rewards.rules import Terms
from growth.rewards.services import expiring, liability, revoke
from tests.events import event, investment, post_events
from tests.integration.rewards.helpers import T0, D, give, ledger, register


def _invest(client, uid, iid, at, reward_ids, amount="6000.00", term=30):  # type: ignore[no-untyped-def]
    return investment(uid, at, iid, amount=amount, term_days=term, reward_ids=reward_ids)


def _post(app, client, events):  # type: ignore[no-untyped-def]
    assert post_events(client, events).json["rejected"] == []
    drain(app)


def test_a_valid_use_redeems_the_voucher_at_its_cost_and_every_other_use_is_invalid_with_its_reason(app, client):
    ids = register(app, client, "u1", "u2")
    v = give(app, ids["u1"], key="v")
    cash = give(app, ids["u1"], "cash", Terms(amount_fen=100), key="cash")
    _post(app, client, [
        _invest(client, "u1", "i-ok", T0 + D, [f"rw_{v}"]),
        _invest(client, "u1", "i-small", T0 + D, [f"rw_{v}"], amount="100.00"),
        _invest(client, "u2", "i-other", T0 + D, [f"rw_{v}", "rw_999999", "bogus"]),
        _invest(client, "u1", "i-cash", T0 + D, [f"rw_{cash}"]),
    ])
    state = ledger(app)
    assert state["rewards"]["v"] == ("redeemed", 5000, "i-ok")
    assert state["uses"] == sorted([
        ("i-ok", f"rw_{v}", True, None), ("i-small", f"rw_{v}", False, "conditions_unmet"),
        ("i-other", f"rw_{v}", False, "wrong_owner"), ("i-other", "rw_999999", False, "not_found"),
        ("i-other", "bogus", False, "not_found"), ("i-cash", f"rw_{cash}", False, "not_usable"),
    ])


def test_the_earliest_investment_wins_a_voucher_even_when_it_arrives_last(app, client):
    ids = register(app, client, "u1")
    v = give(app, ids["u1"], key="v")
    _post(app, client, [_invest(client, "u1", "i-late", T0 + 2 * D, [f"rw_{v}"])])
    assert ledger(app)["rewards"]["v"][2] == "i-late"
    _post(app, client, [_invest(client, "u1", "i-early", T0 + D, [f"rw_{v}"])])
    state = ledger(app)
    assert state["rewards"]["v"] == ("redeemed", 5000, "i-early")
    assert [e[1] for e in state["entries"] if e[0] == "v"].count("redeemed") == 1
    assert ("i-late", f"rw_{v}", False, "not_usable") in state["uses"]


def test_a_rate_boost_costs_what_its_investment_makes_it_cost(app, client):
    ids = register(app, client, "u1")
    rb = give(app, ids["u1"], "rate_boost", Terms(annual_rate_bp=100, max_days=30, valid_days=30), key="rb")
    _post(app, client, [_invest(client, "u1", "i1", T0 + D, [f"rw_{rb}"], amount="10000.00", term=90)])
    assert ledger(app)["rewards"]["rb"] == ("redeemed", 822, "i1")


def test_a_use_after_expiry_is_invalid_and_the_expiry_job_announces_it_once(app, client):
    ids = register(app, client, "u1")
    v = give(app, ids["u1"], key="v")
    with get_db(app).session_scope() as s:
        assert [r.id for r in expiring(session=s, within=3 * D, now=T0 + 28 * D)] == [v]
        assert expiring(session=s, within=D, now=T0 + 28 * D) == []
    for _ in range(2):  # safe to run twice
        with get_db(app).session_scope(write=True) as s:
            jobs.task_expire(s, T0 + 31 * D)
    _post(app, client, [_invest(client, "u1", "i1", T0 + 31 * D, [f"rw_{v}"])])
    state = ledger(app)
    assert state["rewards"]["v"][0] == "expired"
    assert state["uses"] == [("i1", f"rw_{v}", False, "expired")]
    with get_db(app).session_scope() as s:
        types = sorted(m.content["data"]["type"] for m in s.scalars(select(OutboxMessage)))
    assert types == ["reward.expired", "reward.granted"]


def test_a_use_that_happened_before_the_expiry_but_arrived_after_it_still_redeems(app, client):
    ids = register(app, client, "u1")
    v = give(app, ids["u1"], key="v")
    with get_db(app).session_scope(write=True) as s:
        jobs.task_expire(s, T0 + 40 * D)
    _post(app, client, [_invest(client, "u1", "i1", T0 + 5 * D, [f"rw_{v}"])])
    assert ledger(app)["rewards"]["v"][0] == "redeemed"


CASHBACK = Terms(rate_bp=100, hold_days=30, principal_fen=1_000_000, investment_id="i1")


def test_cashback_is_paid_after_its_hold_and_clawed_back_by_an_early_exit_inside_it(app, client):
    ids = register(app, client, "u1", "u2")
    _post(app, client, [_invest(client, "u1", "i1", T0, []), _invest(client, "u2", "i2", T0, [])])
    kept = give(app, ids["u1"], "cashback", CASHBACK, key="kept")
    early = give(app, ids["u2"], "cashback", Terms(rate_bp=100, hold_days=30, principal_fen=1_000_000,
                                                   investment_id="i2"), key="early")
    with get_db(app).session_scope(write=True) as s:
        assert jobs.run_due(session=s, now=T0 + 29 * D).paid == 0  # still held
    _post(app, client, [event("investment.redeemed", "u2", T0 + 10 * D, {"investment_id": "i2", "amount": "10000.00"})])
    with get_db(app).session_scope(write=True) as s:
        assert jobs.run_due(session=s, now=T0 + 31 * D).paid == 1
    state = ledger(app)
    assert state["rewards"]["kept"] == ("paid", 10_000, "i1")
    assert state["rewards"]["early"] == ("clawed_back", 0, "i2")
    assert kept != early


def test_a_clawback_of_cashback_already_paid_books_a_debt_once_however_often_it_is_replayed(app, client):
    ids = register(app, client, "u1")
    _post(app, client, [_invest(client, "u1", "i1", T0, [])])
    give(app, ids["u1"], "cashback", CASHBACK, key="cb")
    with get_db(app).session_scope(write=True) as s:
        jobs.run_due(session=s, now=T0 + 31 * D)
    redeemed = event("investment.redeemed", "u1", T0 + 5 * D, {"investment_id": "i1", "amount": "10000.00"})
    _post(app, client, [redeemed, {**redeemed}])  # the same event twice: a duplicate
    _post(app, client, [{**redeemed, "id": "evt_other_delivery"}])  # the same exit delivered again
    for _ in range(10):
        with get_db(app).session_scope(write=True) as s:
            reset_projections(session=s, projections=projections_of(app))
        drain(app)
    state = ledger(app)
    assert state["rewards"]["cb"][0] == "clawed_back"
    assert sorted(e[1] for e in state["entries"]) == ["clawed_back", "debt", "granted", "paid"]


def test_replays_rebuild_the_same_ledger_and_keep_what_is_not_in_the_log(app, client):
    ids = register(app, client, "u1", "u2")
    v = give(app, ids["u1"], key="v")
    r = give(app, ids["u2"], key="r")
    with get_db(app).session_scope(write=True) as s:
        revoke(r, session=s, reason="test", actor="admin", now=T0 + D)
    _post(app, client, [_invest(client, "u1", "i1", T0 + D, [f"rw_{v}"]),
                        _invest(client, "u2", "i2", T0 + 2 * D, [f"rw_{r}"])])
    before = ledger(app)
    for _ in range(10):
        with get_db(app).session_scope(write=True) as s:
            reset_projections(session=s, projections=projections_of(app))
            assert s.get(Reward, v).status == "granted"  # its redemption was the log's; the revoke was not
            assert s.get(Reward, r).status == "revoked"
        drain(app)
    assert ledger(app) == before
    assert before["rewards"]["v"][0] == "redeemed"
    with get_db(app).session_scope() as s:
        assert s.scalars(select(RewardEntry).where(RewardEntry.kind == "redeemed")).one().investment_id == "i1"


def test_liability_values_outstanding_rewards_at_face_and_at_the_historical_use_rate(app, client):
    ids = register(app, client, "u1")
    used = give(app, ids["u1"], key="used")
    for n in range(3):
        give(app, ids["u1"], key=f"out{n}", at=T0 + 40 * D)
    give(app, ids["u1"], key="lapsed")
    _post(app, client, [_invest(client, "u1", "i1", T0 + D, [f"rw_{used}"])])
    with get_db(app).session_scope(write=True) as s:
        jobs.run_due(session=s, now=T0 + 35 * D)  # "lapsed" expires: 1 used, 1 lapsed -> 50 %
    with get_db(app).session_scope() as s:
        rows, total = liability(session=s)
    assert [(r.kind, r.count, r.face_fen, r.rate, r.expected_fen) for r in rows] == [("voucher", 3, 15000, 0.5, 7500)]
    assert (total.count, total.face_fen, total.expected_fen) == (3, 15000, 7500)


# --- order-free: any arrival order, one final ledger -------------------------------------------------


def _scenario(seed: int) -> tuple[list[tuple[str, str, dict]], list[dict]]:
    """Return grants (key, user, terms) and events for one random history."""
    rng = random.Random(seed)
    users = ["u1", "u2", "u3"]
    grants = []
    for n in range(rng.randint(2, 5)):
        kind = rng.choice(["voucher", "rate_boost"])
        grants.append((f"g{n}", rng.choice(users), kind))
    events = []
    for n in range(rng.randint(2, 8)):
        uid = rng.choice(users)
        named = rng.sample([f"g{i}" for i in range(len(grants))] + ["missing"], k=rng.randint(0, 2))
        events.append({"uid": uid, "iid": f"i{n}", "at": T0 + rng.randint(1, 40) * D, "named": named,
                       "amount": rng.choice(["1000.00", "6000.00"]), "term": rng.choice([10, 30, 60])})
    return grants, events


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), order=st.randoms(use_true_random=False))
def test_for_random_grants_and_uses_the_final_ledger_is_the_same_in_any_arrival_order(app, client, seed, order):
    from tests.projection_state import wipe

    grants, spec = _scenario(seed)
    ids = register(app, client, "u1", "u2", "u3")
    terms = {"voucher": Terms(amount_fen=5000, valid_days=20, min_investment_fen=500_000),
             "rate_boost": Terms(annual_rate_bp=150, max_days=30, valid_days=20)}
    refs = {key: f"rw_{give(app, ids[uid], kind, terms[kind], key=f'{seed}-{key}')}" for key, uid, kind in grants}
    refs["missing"] = "rw_999999"
    events = [investment(e["uid"], e["at"], e["iid"], amount=e["amount"], term_days=e["term"],
                         reward_ids=[refs[n] for n in e["named"]]) for e in spec]
    runs = []
    for shuffled in (list(events), order.sample(events, len(events)), list(reversed(events))):
        wipe(app)  # forget the log and everything derived from it; the grants stay
        for chunk in range(0, len(shuffled), 2):  # several batches, in this order
            assert post_events(client, shuffled[chunk:chunk + 2]).json["rejected"] == []
            drain(app)
        runs.append(ledger(app))
    assert runs[0] == runs[1] == runs[2]
    wipe(app)
    with get_db(app).session_scope(write=True) as s:  # the next example starts from no rewards
        s.execute(RewardEntry.__table__.delete())
        s.execute(Reward.__table__.delete())


def test_a_use_named_before_its_reward_existed_is_decided_again_once_the_reward_is_used(app, client):
    ids = register(app, client, "u1")
    first = give(app, ids["u1"], key="first")
    _post(app, client, [_invest(client, "u1", "i-before", T0 + D, [f"rw_{first + 1}"])])
    assert ledger(app)["uses"] == [("i-before", f"rw_{first + 1}", False, "not_found")]
    later = give(app, ids["u1"], key="later", at=T0 + 2 * D)
    assert later == first + 1
    _post(app, client, [_invest(client, "u1", "i-after", T0 + 3 * D, [f"rw_{later}"])])
    state = ledger(app)
    assert state["uses"] == [("i-after", f"rw_{later}", True, None),
                             ("i-before", f"rw_{later}", False, "not_usable")]  # named before it was granted
    with get_db(app).session_scope(write=True) as s:
        reset_projections(session=s, projections=projections_of(app))
    drain(app)
    assert ledger(app) == state
