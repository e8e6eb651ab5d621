"""SIGTERM to a real `growth worker` while it holds claimed messages: it hands them back, nothing is sent twice.

The worker sends through a rate-limited fake provider, so when the signal comes part of its claim is sent and
part is waiting for a rate-limit slot. It must exit 0 within GROWTH_WORKER_STOP_SECONDS, leaving no message
`sending` (the claim lease is an hour here: a message left claimed would wait for it) and no leader lease held;
a second worker then sends the rest, and every message reaches the provider exactly once.
"""

from __future__ import annotations

import collections
import signal
from datetime import UTC, datetime

from sqlalchemy import select

from channels.models import OutboxMessage
from growth.locks import LeaderLease
from tests.integration.channels import test_delivery_processes as processes
from tests.integration.channels.test_delivery_processes import _messages, _statuses, _stop, _wait, _worker

aliyun, database = processes.aliyun, processes.database  # the fixtures of those tests, shared

STOP_SECONDS = 5  # shorter than the claimed batch takes at the rate: finishing it is not an option


def test_a_worker_stopped_with_sigterm_mid_claim_hands_back_its_messages_and_another_sends_each_once(
        database, aliyun, tmp_path, db_kind):
    ids = _messages(database, 120)
    env = {"GROWTH_SMS_RATE": "10", "GROWTH_DELIVERY_THREADS": "4", "GROWTH_DELIVERY_BATCH_SIZE": "60",
           "GROWTH_DELIVERY_LEASE_SECONDS": "3600", "GROWTH_WORKER_STOP_SECONDS": str(STOP_SECONDS)}
    first = _worker(database, aliyun, tmp_path, "first", **env)
    try:
        _wait(lambda: len(aliyun.received) >= 10, 60, "the first provider calls")
        assert _statuses(database).get("sending", 0) > 0  # a claim in hand when the signal comes
        first.send_signal(signal.SIGTERM)
        assert first.wait(STOP_SECONDS + 10) == 0
    finally:
        _stop(first)

    statuses = _statuses(database)
    assert "sending" not in statuses, statuses  # nothing stuck until the hour-long lease ends
    assert 0 < statuses.get("sent", 0) < len(ids)
    assert statuses.get("sent", 0) + statuses.get("queued", 0) == len(ids)
    now = datetime.now(UTC)
    with database.engine.connect() as conn:
        handed_back = conn.execute(select(OutboxMessage.attempts, OutboxMessage.claimed_by, OutboxMessage.lease_until)
                                   .where(OutboxMessage.status == "queued")).all()
        assert handed_back and set(handed_back) == {(0, None, None)}  # as before the claim: no attempt counted
        held = [holder for holder, until in conn.execute(select(LeaderLease.holder, LeaderLease.expires_at))
                if f":{first.pid}:" in holder and until.replace(tzinfo=until.tzinfo or UTC) > now]
    assert held == []  # the processor, scheduler … leases were given up, not left to expire

    second = _worker(database, aliyun, tmp_path, "second", **env)
    try:
        _wait(lambda: _statuses(database) == {"sent": len(ids)}, 90, "every message sent by the second worker")
    finally:
        _stop(second)
    calls = collections.Counter(p["OutId"] for p in aliyun.sent)
    assert calls == collections.Counter({str(i): 1 for i in ids})
