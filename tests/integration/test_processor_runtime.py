"""The processor at run time: crashes mid-batch, replay (API and CLI), and two live processors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from growth import signals
from growth.audit.models import AuditEntry
from growth.cli import cli
from growth.db import get_db
from growth.events.models import PlatformEvent, ProcessorCursor
from growth.events.processor import CURSOR, LEASE, drain, reset_projections, run_processor
from growth.investors.models import Investor
from growth.investors.rules import referral_code_for
from growth.locks import LeaderLease
from growth.projections import Batch, projections_of
from tests.events import event, investment, post_events
from tests.projection_state import snapshot

T0 = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)


def history(prefix: str, n: int) -> list[dict[str, Any]]:
    """Return a varied history for n investors, referrals arriving before their referrers included."""
    events: list[dict[str, Any]] = []
    for i in range(n):
        uid, at = f"{prefix}{i}", T0 + i * H
        data: dict[str, Any] = {}
        if i % 4 == 1:
            data = {"channel_code": "baidu_sem" if i % 8 == 1 else f"auto_{prefix}"}
        elif i % 4 == 2:
            data = {"referral_code": referral_code_for(f"{prefix}{i + 1}")}  # the referrer comes next
        events.append(event("user.registered", uid, at, data, phone=f"138{i:08d}", name=f"投资人{i}"))
        events.append(event("user.kyc_verified", uid, at + H, email=f"{uid}@example.com"))
        events.append(event("funds.deposited", uid, at + 2 * H, {"deposit_id": f"{uid}-d", "amount": "1000.00"}))
        events.append(event("funds.deposited", uid, at + 3 * H, {"deposit_id": f"{uid}-d", "amount": "1000.00"}))
        events.append(investment(uid, at + 4 * H, f"{uid}-a", amount="600.00"))
        if i % 3 == 0:
            events.append(investment(uid, at + 5 * H, f"{uid}-b", amount="300.00"))
            events.append(event("investment.matured", uid, at + 40 * D,
                                {"investment_id": f"{uid}-b", "amount": "300.00", "interest": "2.50"}))
        if i % 5 == 0:
            events.append(event("investment.redeemed", uid, at + 2 * D, {"investment_id": f"{uid}-a",
                                                                         "amount": "600.00"}))
        events.append(event("user.consent_changed", uid, at + 6 * H, {"channel": "sms", "granted": i % 2 == 0}))
    return events


def post(client, events: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    response = post_events(client, events)
    assert response.json == {"accepted": len(events), "duplicates": 0, "rejected": []}, response.json


def cursor_position(app) -> int:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        cursor = s.get(ProcessorCursor, CURSOR)
        return cursor.position if cursor else 0


def last_seq(app) -> int:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return s.scalar(select(func.max(PlatformEvent.seq))) or 0


@pytest.fixture
def committed(monkeypatch) -> Iterator[list[tuple[str, int]]]:  # type: ignore[no-untyped-def]
    """Record (thread name, seq) of every event whose batch committed, whichever thread ran it."""
    done: list[tuple[str, int]] = []
    original = Batch.run

    def run(self: Batch, events: Any) -> None:
        original(self, events)
        seqs = [e.seq for e in events]

        def after_commit(_session: Any) -> None:
            name = threading.current_thread().name
            done.extend((name, seq) for seq in seqs)

        sa_event.listen(self.session, "after_commit", after_commit, once=True)

    monkeypatch.setattr(Batch, "run", run)
    yield done


# --- crashes -------------------------------------------------------------------------------------


def test_a_crash_mid_batch_leaves_cursor_and_projections_as_they_were_and_the_rerun_processes_once(
        app, client, monkeypatch):
    post(client, history("a", 6))
    drain(app)
    before_state, before_cursor = snapshot(app), cursor_position(app)
    post(client, history("b", 6) + [event("funds.deposited", "a0", T0 + 9 * D, {"deposit_id": "a0-new",
                                                                              "amount": "1.00"})])

    original = Batch.run

    def crash_halfway(self: Batch, events: Any) -> None:
        # Do real work for half the batch and write it, then die before the batch can commit.
        original(self, events[: len(events) // 2])
        raise RuntimeError("killed mid-batch")

    monkeypatch.setattr(Batch, "run", crash_halfway)
    with pytest.raises(RuntimeError, match="killed mid-batch"):
        drain(app, limit=10)
    assert cursor_position(app) == before_cursor
    assert snapshot(app) == before_state

    processed: list[int] = []

    def counting(self: Batch, events: Any) -> None:
        processed.extend(e.seq for e in events)
        original(self, events)

    monkeypatch.setattr(Batch, "run", counting)
    assert drain(app, limit=10) == last_seq(app) - before_cursor
    assert processed == list(range(before_cursor + 1, last_seq(app) + 1))
    assert cursor_position(app) == last_seq(app)
    state = snapshot(app)
    assert state["investors"]["a0"]["deposit_total_fen"] == 100100  # the new deposit, counted once
    assert state["investors"]["b0"]["deposit_total_fen"] == 100000
    assert drain(app) == 0


def test_a_crash_in_a_later_batch_keeps_the_batches_that_committed_before_it(app, client, monkeypatch):
    post(client, history("a", 4))
    original, calls = Batch.run, []

    def fail_third(self: Batch, events: Any) -> None:
        calls.append(len(events))
        if len(calls) == 3:
            raise RuntimeError("third batch dies")
        original(self, events)

    monkeypatch.setattr(Batch, "run", fail_third)
    with pytest.raises(RuntimeError):
        drain(app, limit=5)
    assert cursor_position(app) == 10
    monkeypatch.setattr(Batch, "run", original)
    drain(app, limit=5)
    assert cursor_position(app) == last_seq(app)


# --- replay --------------------------------------------------------------------------------------


def test_replay_rebuilds_the_same_state(app, client):
    post(client, history("a", 12))
    drain(app, limit=7)
    first = snapshot(app)
    assert first["investors"]["a2"]["referrer"] == "a3"  # the late referrer was found on the first run
    with get_db(app).session_scope(write=True) as s:
        reset_projections(session=s, projections=projections_of(app))
    cleared = snapshot(app)
    assert all(inv["registered_at"] is None and inv["deposit_total_fen"] == 0
               for inv in cleared["investors"].values())
    assert cleared["investments"] == {} and cleared["movements"] == {}
    assert cursor_position(app) == 0

    assert drain(app, limit=1000) == last_seq(app)
    assert snapshot(app) == first


def test_the_replay_command_rebuilds_the_same_state_without_sending_signals(app, client, session):
    post(client, history("a", 10))
    drain(app)
    first = snapshot(app)
    sent: list[Any] = []

    def receiver(sender: object, **kwargs: Any) -> None:
        sent.append(kwargs)

    signals.milestone_reached.connect(receiver)
    signals.investment_created.connect(receiver)
    try:
        result = CliRunner().invoke(cli, ["events", "replay", "--yes"], obj=ScriptInfo(create_app=lambda: app))
    finally:
        signals.milestone_reached.disconnect(receiver)
        signals.investment_created.disconnect(receiver)
    assert result.exit_code == 0, result.output
    assert f"replayed {last_seq(app):,} events" in result.output
    assert snapshot(app) == first
    assert sent == []  # a rebuild must not make campaigns react to old news again
    session.rollback()
    assert session.scalar(select(func.count()).select_from(AuditEntry)
                          .where(AuditEntry.action == "events.replayed")) == 1


def test_the_replay_command_asks_before_it_rebuilds(app, client):
    post(client, history("a", 2))
    drain(app)
    first = snapshot(app)
    result = CliRunner().invoke(cli, ["events", "replay"], input="n\n", obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code != 0
    assert snapshot(app) == first
    assert cursor_position(app) == last_seq(app)


# --- two live processors -------------------------------------------------------------------------


@pytest.fixture
def app_config() -> dict:
    return {"LEADER_LEASE_SECONDS": 1, "PROCESSOR_IDLE_SECONDS": 0.05, "PROCESSOR_BATCH_SIZE": 7}


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def test_two_live_processors_process_each_event_exactly_once_and_the_standby_takes_over(app, client, committed):
    def lease_holder() -> str | None:
        with get_db(app).session_scope() as s:
            lease = s.get(LeaderLease, LEASE)
            return lease.holder if lease and lease.expires_at > datetime.now(UTC) else None

    stop_a, stop_b = threading.Event(), threading.Event()
    a = threading.Thread(target=run_processor, args=(app, stop_a), name="processor-a", daemon=True)
    b = threading.Thread(target=run_processor, args=(app, stop_b), name="processor-b", daemon=True)
    try:
        a.start()
        wait_for(lambda: lease_holder() is not None)
        first_holder = lease_holder()
        b.start()
        for part in range(4):
            post(client, history(f"p{part}_", 8))
            time.sleep(0.1)
        wait_for(lambda: cursor_position(app) == last_seq(app))
        time.sleep(1.5)  # longer than the lease: a renewing leader keeps it; the standby stays out
        assert lease_holder() == first_holder
        assert {name for name, _seq in committed} == {"processor-a"}

        stop_a.set()
        a.join(10)
        assert not a.is_alive()
        wait_for(lambda: lease_holder() not in (None, first_holder))
        taken_over_at = last_seq(app)
        post(client, history("late_", 8))
        wait_for(lambda: cursor_position(app) == last_seq(app))
    finally:
        stop_a.set()
        stop_b.set()
        a.join(10)
        b.join(10)

    seqs = [seq for _name, seq in committed]
    assert sorted(seqs) == list(range(1, last_seq(app) + 1))  # every event once, none twice
    assert {name for name, seq in committed if seq > taken_over_at} == {"processor-b"}
    with get_db(app).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Investor).where(Investor.registered_at.is_not(None))) == 40
        lease = s.get(LeaderLease, LEASE)
        assert lease.expires_at < datetime.now(UTC)  # b released it on stopping
