"""Two real `growth worker` processes on one PostgreSQL database run a scheduled campaign exactly once.

The workers are the real command in subprocesses, on the test's database. One elected scheduler records
the run once; the runner selects every member once; fulfilment (shared by both workers) gives each member
one grant and one message. A worker killed (SIGKILL) while the run is being worked on and restarted as
`growth serve` restarts it (`--predecessor-pid`, freeing its leases) leaves nobody with two or none.
Only table counts are asserted, never how the work is split.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, insert, select, text, update

from campaigns import services
from campaigns.models import Campaign, CampaignMember, CampaignRun
from channels.models import OutboxMessage
from growth.config import TestConfig
from growth.db import get_db
from growth.investors.models import Investor
from growth.investors.rules import referral_code_for
from growth.locks import LeaderLease
from growth.rewards.models import Reward
from tests.integration.test_serve import wait_for
from tests.processes import Processes, product_env

pytestmark = pytest.mark.postgres_only

N = 3_000
TIMEOUT = 60.0  # a 2-core machine shared with other test runs


def seed_investors(app: Flask, n: int) -> None:
    """Insert `n` investors in one bulk statement (as the processor would have projected them)."""
    registered = datetime.now(UTC) - timedelta(days=30)
    rows = [{"platform_user_id": f"u_w{i:06d}", "referral_code": referral_code_for(f"u_w{i:06d}"),
             "phone": f"+86137{i:08d}", "name": f"投资人{i}", "registered_at": registered} for i in range(n)]
    with get_db(app).session_scope(write=True) as s:
        s.execute(insert(Investor), rows)


def scheduled_campaign(app: Flask, at: datetime) -> int:
    """Create an approved one-shot campaign at `at` giving everyone a cash reward and an SMS."""
    doc = {"name": "双进程活动", "type": "broadcast", "class": "marketing", "schedule": {"at": at.isoformat()},
           "rewards": [{"kind": "cash", "amount": "1.00"}], "budget": {"max_grants": N + 100},
           "messages": [{"channel": "sms", "text": "{{ investor.name }}您好，1元现金红包已到账。回T退订"}]}
    now = datetime.now(UTC)
    with get_db(app).session_scope(write=True) as s:
        campaign = services.create(doc, session=s, actor_id=None, now=now - timedelta(hours=1))
        s.execute(update(Campaign).where(Campaign.id == campaign.id)
                  .values(status="scheduled", approved_at=now - timedelta(minutes=30)))
        return campaign.id


def counts(app: Flask, campaign_id: int) -> dict[str, Any]:
    """Read what the run left: runs, members, and grants and messages per investor."""
    with get_db(app).session_scope() as s:
        def per_investor(column: Any, *where: Any) -> dict[int, int]:
            return dict(s.execute(select(column, func.count()).where(*where).group_by(column)).all())  # type: ignore[arg-type]

        return {
            "runs": s.scalar(select(func.count()).select_from(CampaignRun)
                             .where(CampaignRun.campaign_id == campaign_id)),
            "members": per_investor(CampaignMember.investor_id, CampaignMember.campaign_id == campaign_id),
            "pending": s.scalar(select(func.count()).select_from(CampaignMember).where(
                CampaignMember.campaign_id == campaign_id, CampaignMember.status == "pending")),
            "rewards": per_investor(Reward.investor_id, Reward.campaign_id == campaign_id),
            "sms": per_investor(OutboxMessage.investor_id, OutboxMessage.campaign_id == campaign_id,
                                OutboxMessage.channel == "sms"),
        }


class Workers(Processes):
    """`growth worker` processes on one database; every one is stopped at the end, whatever happened."""

    def __init__(self, database_url: str, instance: Path) -> None:
        super().__init__(product_env(
            GROWTH_DATABASE_URL=database_url, GROWTH_INSTANCE_PATH=str(instance),
            GROWTH_SECRET_KEY="workers-test-secret-key", GROWTH_WEBHOOK_SECRET=TestConfig.WEBHOOK_SECRET,
            # Messages wait (deferred) instead of going to the console provider: only rows count here.
            GROWTH_SMS_PAUSED="true", GROWTH_WEBHOOK_PAUSED="true"), instance)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """Start one more `growth worker`."""
        return self.spawn(f"worker-{len(self.procs)}", ["growth.cli", "worker", *args])


@pytest.fixture
def workers(database_url: str, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(database_url, tmp_path / "workers")
    running.instance.mkdir()
    try:
        yield running
    finally:
        running.stop(20)  # before the fixture truncates the tables the workers hold locks on


def lease_pid(app: Flask, name: str) -> int | None:
    """Return the process id holding a lease (holder ids are host:pid:random), if one holds it now."""
    with get_db(app).session_scope() as s:
        lease = s.get(LeaderLease, name)
        if lease is None or lease.expires_at.astimezone(UTC) <= datetime.now(UTC):
            return None
        return int(lease.holder.split(":")[1])


def test_two_workers_run_a_scheduled_campaign_once_and_a_worker_killed_mid_run_leaves_everyone_one_grant_and_message(
        app: Flask, workers: Workers) -> None:
    with get_db(app).engine.begin() as conn:  # the job store of an earlier test's schedulers
        conn.execute(text("DROP TABLE IF EXISTS scheduler_jobs"))
    seed_investors(app, N)
    cid = scheduled_campaign(app, datetime.now(UTC) + timedelta(seconds=5))
    first, second = workers.start(), workers.start()

    # The run is being worked on: its members are selected and the first of them fulfilled.
    wait_for(lambda: counts(app, cid)["rewards"], TIMEOUT, "the run's first grants", workers)  # type: ignore[arg-type]
    victim = lease_pid(app, "campaign-runner") or first.pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(victim, signal.SIGKILL)
    killed = next(p for p in (first, second) if p.pid == victim)
    killed.wait(10)
    workers.start("--predecessor-pid", str(victim))  # as `growth serve` restarts its dead child

    def done() -> dict[str, Any] | None:
        c = counts(app, cid)
        workers.note = f"so far: { {k: v if isinstance(v, int) else (len(v), sum(v.values())) for k, v in c.items()} }"
        finished = (len(c["members"]) == N and not c["pending"] and len(c["rewards"]) == N and len(c["sms"]) == N)
        return c if finished else None

    wait_for(done, TIMEOUT, "every member to be fulfilled", workers)  # type: ignore[arg-type]

    def status() -> str | None:
        with get_db(app).session_scope() as s:
            return s.scalar(select(Campaign.status).where(Campaign.id == cid).where(Campaign.status == "finished"))

    # The runner closes the run (and the campaign) on its next pass after the last member: a loaded machine
    # may take longer than a fixed pause, so wait for it as for the members.
    wait_for(status, TIMEOUT, "the campaign to finish", workers)  # type: ignore[arg-type]
    time.sleep(2)  # anything made twice would show now
    final = counts(app, cid)
    assert final["runs"] == 1
    assert len(final["members"]) == N and set(final["members"].values()) == {1}
    assert set(final["rewards"].values()) == {1} and final["rewards"].keys() == final["members"].keys()
    assert set(final["sms"].values()) == {1} and final["sms"].keys() == final["members"].keys()
    with get_db(app).session_scope() as s:
        assert s.scalar(select(Campaign.status).where(Campaign.id == cid)) == "finished"
