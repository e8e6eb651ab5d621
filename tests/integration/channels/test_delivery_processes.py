"""Delivery in real `growth worker` processes: a SIGKILL mid-send loses nothing, two workers share the queue."""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from channels.adapters.port import Channel, MessageClass
from channels.models import OutboxMessage
from channels.outbox import NewMessage, enqueue_many
from growth.config import TestConfig
from growth.db import Database, insert_many, table_of
from growth.investors.models import Investor
from growth.investors.rules import referral_code_for
from growth.migrate import upgrade
from tests.fakes.aliyun_sms import FakeAliyunSms
from tests.processes import product_env, stop_all

ROOT = Path(__file__).resolve().parents[3]
NOTICE = {"text": "您的理财即将到期", "template_code": "SMS_200", "params": {"days": "3"}}


@pytest.fixture
def aliyun() -> Iterator[FakeAliyunSms]:
    server = FakeAliyunSms().start()
    yield server
    server.stop()


@pytest.fixture
def database(db_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A migrated database the worker processes and the test share (SQLite file or this run's PostgreSQL one)."""
    if db_kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'growth.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("database_url")  # the schema exists; truncated after the test
    db = Database(url)
    yield db
    db.dispose()


def _messages(db: Database, count: int) -> list[int]:
    """Create `count` investors and one service SMS to each; return the message ids."""
    now = datetime.now(UTC)
    rows = [{"platform_user_id": f"p{n:06d}", "referral_code": referral_code_for(f"p{n:06d}"),
             "phone": f"+86137{n:08d}", "registered_at": now, "investment_count": 0, "investment_total_fen": 0,
             "holdings_fen": 0, "deposit_total_fen": 0, "withdrawal_total_fen": 0} for n in range(count)]
    with db.session_scope(write=True) as session:
        ids = sorted(r[0] for r in insert_many(session.connection(), table_of(Investor), rows, returning=("id",)))
        result = enqueue_many((NewMessage(sender="system", cause="maturity-2026-12", channel=Channel.SMS,
                                          message_class=MessageClass.SERVICE, content=NOTICE, investor_id=i)
                               for i in ids), session=session, now=now)
    return result.ids


def _worker(db: Database, fake: FakeAliyunSms, tmp_path: Path, name: str, **env: str) -> subprocess.Popen[bytes]:
    environ = product_env()
    environ.update(
        GROWTH_DATABASE_URL=db.url, GROWTH_INSTANCE_PATH=str(tmp_path / "instance"),
        GROWTH_SECRET_KEY="worker-test-secret", GROWTH_WEBHOOK_SECRET=TestConfig.WEBHOOK_SECRET,
        GROWTH_SMS_PROVIDER="aliyun", GROWTH_SMS_ENDPOINT=fake.endpoint, GROWTH_SMS_PROTOCOL="http",
        GROWTH_SMS_ACCESS_KEY_ID=fake.access_key_id, GROWTH_SMS_ACCESS_KEY_SECRET=fake.secret,
        GROWTH_SMS_SIGN_NAME="投资人增长", GROWTH_DELIVERY_IDLE_SECONDS="0.1", PYTHONUNBUFFERED="1", **env)
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "growth.cli", "worker"], env=environ, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _statuses(db: Database) -> dict[str, int]:
    with db.engine.connect() as conn:
        return dict(conn.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    stop_all(list(procs), 20)


def test_a_worker_killed_between_the_provider_call_and_recording_loses_nothing_and_repeats_one(
        database, aliyun, tmp_path, db_kind):
    ids = _messages(database, 6)
    aliyun.delay = 30.0  # the provider takes the first message, then the worker dies before hearing back
    first = _worker(database, aliyun, tmp_path, "first", GROWTH_DELIVERY_THREADS="1", GROWTH_DELIVERY_BATCH_SIZE="3",
                    GROWTH_DELIVERY_LEASE_SECONDS="2")
    try:
        _wait(lambda: len(aliyun.received) == 1, 60, "the first provider call")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        _stop(first)
    assert aliyun.received[0].accepted
    aliyun.delay = 0.0
    statuses = _statuses(database)
    assert "sent" not in statuses and statuses.get("sending", 0) >= 3  # claimed (the next batch too), unrecorded

    second = _worker(database, aliyun, tmp_path, "second", GROWTH_DELIVERY_LEASE_SECONDS="2")
    try:
        _wait(lambda: _statuses(database) == {"sent": 6}, 60, "every message sent after the restart")
    finally:
        _stop(second)

    calls = collections.Counter(p["OutId"] for p in aliyun.sent)
    assert set(calls) == {str(i) for i in ids}  # nothing lost
    assert sorted(calls.values()) == [1, 1, 1, 1, 1, 2]  # only the message in flight went twice
    assert calls[str(ids[0])] == 2


@pytest.mark.postgres_only
def test_two_workers_drain_5000_messages_each_once_and_never_above_the_rate(database, aliyun, tmp_path, db_kind):
    rate = 200
    ids = _messages(database, 5000)
    env = {"GROWTH_SMS_RATE": str(rate), "GROWTH_DELIVERY_THREADS": "8", "GROWTH_DELIVERY_BATCH_SIZE": "100"}
    workers = [_worker(database, aliyun, tmp_path, f"w{n}", **env) for n in range(2)]
    try:
        _wait(lambda: _statuses(database) == {"sent": 5000}, 120, "5,000 messages sent")
    finally:
        _stop(*workers)

    calls = collections.Counter(p["OutId"] for p in aliyun.sent)
    assert calls == collections.Counter({str(i): 1 for i in ids})
    with database.engine.connect() as conn:
        holders = conn.execute(text("SELECT count(DISTINCT split_part(claimed_by, ':', 2)) FROM outbox_messages")
                               ).scalar()
    assert holders == 0  # every claim was settled
    arrivals = sorted(r.at for r in aliyun.received if r.accepted)
    per_second = collections.Counter(int(at) for at in arrivals)  # what the provider saw in each second of its clock
    assert max(per_second.values()) <= rate, sorted(per_second.items())
    assert arrivals[-1] - arrivals[0] >= (len(arrivals) - rate) / rate  # the limit held them back, all along
