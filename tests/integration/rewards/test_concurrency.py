"""Concurrent grants never overspend: separate processes, each with its own engine, against one PostgreSQL budget."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from growth.db import get_db
from growth.rewards.models import Reward, RewardBudget, RewardBudgetUse
from growth.rewards.rules import BudgetExhausted, Terms
from growth.rewards.services import budget_for
from tests.factories import make_investor
from tests.integration.rewards.helpers import T0

PROCESSES = 8


def _grant_all(url: str, budget_id: int, work: list[tuple[str, int]], start: Any, out: Any) -> None:
    """Run in a child process: grant each (key, investor) in its own transaction; report what happened."""
    from growth.models import import_all_models
    from growth.rewards.services import grant

    import_all_models()
    engine = create_engine(url, pool_size=1)
    granted = exhausted = 0
    start.wait(30)  # every process starts together
    try:
        for key, investor_id in work:
            with Session(engine) as s, s.begin():
                budget = s.get(RewardBudget, budget_id)
                assert budget is not None
                try:
                    grant(session=s, key=key, investor_id=investor_id, kind="voucher",
                          terms=Terms(amount_fen=1000, valid_days=7), budget=budget, actor="test", now=T0)
                    granted += 1
                except BudgetExhausted as err:
                    exhausted += 1
                    assert err.limit in ("max_grants", "per_investor")
        out.put((granted, exhausted, None))
    except Exception as exc:  # reported to the parent, which fails the test
        out.put((granted, exhausted, repr(exc)))
    finally:
        engine.dispose()


def _run(url: str, budget_id: int, work: list[tuple[str, int]]) -> tuple[int, int]:
    # fork: the children start at once (no re-import); each opens its own engine, never the parent's connections.
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(PROCESSES), ctx.Queue()
    shares = [work[i::PROCESSES] for i in range(PROCESSES)]
    procs = [ctx.Process(target=_grant_all, args=(url, budget_id, share, start, out)) for share in shares]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert [r[2] for r in results] == [None] * PROCESSES
    return sum(r[0] for r in results), sum(r[1] for r in results)


def _budget(app, **limits: Any) -> int:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return budget_for("campaign", "42", session=s, now=T0, **limits).id


@pytest.mark.postgres_only
def test_eight_processes_granting_150_rewards_against_a_budget_of_100_grant_exactly_100(app, database_url, db_kind):
    with get_db(app).session_scope(write=True) as s:
        investors = [make_investor(s).id for _ in range(150)]
    budget_id = _budget(app, max_grants=100, max_amount_fen=1_000_000)
    granted, exhausted = _run(database_url, budget_id, [(f"c42|{i}", i) for i in investors])
    assert (granted, exhausted) == (100, 50)
    with get_db(app).session_scope() as s:
        budget = s.get(RewardBudget, budget_id)
        assert (budget.used_grants, budget.used_amount_fen) == (100, 100_000)
        assert s.scalar(select(func.count()).select_from(Reward)) == 100


@pytest.mark.postgres_only
def test_twenty_concurrent_grants_for_one_investor_with_a_limit_of_one_grant_exactly_one(app, database_url, db_kind):
    with get_db(app).session_scope(write=True) as s:
        investor = make_investor(s).id
    budget_id = _budget(app, per_investor=1)
    granted, exhausted = _run(database_url, budget_id, [(f"c42|{investor}|{n}", investor) for n in range(20)])
    assert (granted, exhausted) == (1, 19)
    with get_db(app).session_scope() as s:
        assert s.get(RewardBudget, budget_id).used_grants == 1
        assert s.scalars(select(RewardBudgetUse.used)).all() == [1]


@pytest.mark.postgres_only
def test_the_same_key_granted_from_eight_processes_at_once_is_one_grant_and_one_budget_use(app, database_url, db_kind):
    with get_db(app).session_scope(write=True) as s:
        investor = make_investor(s).id
    budget_id = _budget(app, max_grants=100)
    granted, exhausted = _run(database_url, budget_id, [("same-key", investor)] * PROCESSES)
    assert (granted, exhausted) == (PROCESSES, 0)  # every caller gets the reward back …
    with get_db(app).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Reward)) == 1  # … and there is one
        assert s.get(RewardBudget, budget_id).used_grants == 1


def _ingest_and_drain(url: str, events: list[dict], start: Any, out: Any) -> None:
    """Run in a child process: an app of its own ingests the same events and processes the log."""
    from growth.app import create_app
    from growth.config import TestConfig
    from growth.events.processor import drain
    from growth.events.services import ingest
    from growth.timeutil import utcnow

    try:
        config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
        child = create_app({**config, "DATABASE_URL": url})
        start.wait(30)
        with get_db(child).session_scope(write=True) as s:
            ingest(events, session=s, now=utcnow())
        drain(child)
        get_db(child).dispose()
        out.put(None)
    except Exception as exc:
        out.put(repr(exc))


@pytest.mark.postgres_only
def test_the_same_redemption_and_clawback_events_processed_by_four_processes_and_replayed_have_one_effect(
        app, client, database_url, db_kind):
    from growth.events.processor import drain, reset_projections
    from growth.projections import projections_of
    from growth.rewards import jobs
    from growth.rewards.models import RewardEntry
    from tests.events import event, investment
    from tests.integration.rewards.helpers import D, give, ledger, register

    ids = register(app, client, "u1")
    voucher = give(app, ids["u1"], key="v")
    give(app, ids["u1"], "cashback", Terms(rate_bp=100, hold_days=30, principal_fen=1_000_000, investment_id="cb"),
         key="cb")
    with get_db(app).session_scope(write=True) as s:
        # The cashback is paid (its clawback will owe a debt); the voucher expires, but it was used before.
        jobs.run_due(session=s, now=T0 + 31 * D)
    events = [investment("u1", T0, "cb", amount="10000.00", term_days=90),
              investment("u1", T0 + D, "iv", amount="6000.00", reward_ids=[f"rw_{voucher}"]),
              event("investment.redeemed", "u1", T0 + 5 * D, {"investment_id": "cb", "amount": "10000.00"})]
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_ingest_and_drain, args=(database_url, events, start, out)) for _ in range(4)]
    for p in procs:
        p.start()
    assert [out.get(timeout=60) for _ in procs] == [None] * 4
    for p in procs:
        p.join(30)
    once = ledger(app)
    assert once["rewards"]["v"][0] == "redeemed" and once["rewards"]["cb"][0] == "clawed_back"
    kinds = sorted(e[1] for e in once["entries"])
    assert kinds == ["clawed_back", "debt", "expired", "granted", "granted", "paid", "redeemed"]
    for _ in range(10):
        with get_db(app).session_scope(write=True) as s:
            reset_projections(session=s, projections=projections_of(app))
        drain(app)
    assert ledger(app) == once
    with get_db(app).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(RewardEntry)) == 7
