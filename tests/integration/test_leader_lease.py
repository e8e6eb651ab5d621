"""The leader lease: one holder at a time, renewal, expiry, release, and a real race on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from growth.db import get_db
from growth.locks import LeaderLease, claim, release

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
TTL = timedelta(seconds=10)
S = timedelta(seconds=1)


def claim_at(app, holder: str, now: datetime, name: str = "processor") -> bool:  # type: ignore[no-untyped-def]
    """Claim in a unit of work of its own, committed, as a worker would."""
    with get_db(app).session_scope(write=True) as s:
        return claim(name, holder, session=s, now=now, ttl=TTL)


def holder_of(app, name: str = "processor") -> str | None:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return s.scalar(select(LeaderLease.holder).where(LeaderLease.name == name))


def test_the_first_holder_gets_the_lease_and_a_second_does_not_while_it_is_valid(app):
    assert claim_at(app, "a", T0) is True
    assert claim_at(app, "b", T0 + 5 * S) is False
    assert claim_at(app, "b", T0 + 10 * S) is False  # expires_at is not yet in the past
    assert holder_of(app) == "a"


def test_the_holder_renews_by_claiming_again_which_keeps_the_standby_out(app):
    assert claim_at(app, "a", T0)
    assert claim_at(app, "a", T0 + 8 * S)  # renewed until T0 + 18 s
    assert claim_at(app, "b", T0 + 12 * S) is False  # the first lease would have run out by now
    assert holder_of(app) == "a"


def test_a_standby_takes_over_once_the_lease_has_expired_and_the_old_holder_is_out(app):
    assert claim_at(app, "a", T0)
    assert claim_at(app, "b", T0 + 10 * S + timedelta(microseconds=1)) is True
    assert holder_of(app) == "b"
    assert claim_at(app, "a", T0 + 11 * S) is False  # the old holder cannot come back while b holds it
    assert claim_at(app, "b", T0 + 15 * S) is True


def test_a_released_lease_can_be_taken_at_once(app):
    assert claim_at(app, "a", T0)
    with get_db(app).session_scope(write=True) as s:
        release("processor", "a", session=s)
    assert claim_at(app, "b", T0 + S) is True
    assert holder_of(app) == "b"


def test_only_the_holder_can_release_a_lease(app):
    assert claim_at(app, "a", T0)
    with get_db(app).session_scope(write=True) as s:
        release("processor", "b", session=s)
    assert claim_at(app, "b", T0 + S) is False


def test_leases_of_different_names_are_independent(app):
    assert claim_at(app, "a", T0, name="processor")
    assert claim_at(app, "b", T0, name="scheduler")
    assert (holder_of(app, "processor"), holder_of(app, "scheduler")) == ("a", "b")


def test_a_claim_that_is_rolled_back_leaves_no_lease(app):
    with pytest.raises(RuntimeError), get_db(app).session_scope(write=True) as s:
        assert claim("processor", "a", session=s, now=T0, ttl=TTL)
        raise RuntimeError("the batch failed")
    assert claim_at(app, "b", T0 + S) is True


@pytest.mark.postgres_only
def test_holders_racing_for_a_new_lease_get_exactly_one_winner(app):
    for round_ in range(15):
        name = f"race-{round_}"
        barrier = threading.Barrier(4)
        results: dict[str, bool] = {}
        errors: list[BaseException] = []

        def contend(holder: str, name: str = name, barrier: threading.Barrier = barrier,
                    results: dict[str, bool] = results, errors: list[BaseException] = errors) -> None:
            try:
                with get_db(app).session_scope(write=True) as s:
                    barrier.wait(timeout=10)
                    results[holder] = claim(name, holder, session=s, now=T0, ttl=TTL)
            except BaseException as exc:  # surfaced below: a thread's failure must fail the test
                errors.append(exc)

        threads = [threading.Thread(target=contend, args=(f"h{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors
        winners = [h for h, won in results.items() if won]
        assert len(results) == 4 and len(winners) == 1, results
        assert holder_of(app, name) == winners[0]


def test_the_leases_of_a_dead_worker_of_this_host_are_freed_at_once_and_no_one_elses(app):
    from growth.locks import holder_prefix, release_dead_holder

    dead, alive, elsewhere = holder_prefix(123) + "ab12", holder_prefix(1234) + "cd34", "other-host:123:ef56"
    assert claim_at(app, dead, T0, name="processor")
    assert claim_at(app, dead, T0, name="scheduler")
    assert claim_at(app, alive, T0, name="delivery")
    assert claim_at(app, elsewhere, T0, name="outbox")
    with get_db(app).session_scope(write=True) as s:
        assert release_dead_holder(123, session=s) == 2
    assert claim_at(app, "new", T0 + S, name="processor") is True
    assert claim_at(app, "new", T0 + S, name="scheduler") is True
    assert claim_at(app, "new", T0 + S, name="delivery") is False  # pid 1234 is not pid 123
    assert claim_at(app, "new", T0 + S, name="outbox") is False  # the same pid on another host
