"""Worker processes record that they are alive (worker_heartbeats) and remove the record when they stop cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from growth.background import BackgroundRunner
from growth.config import TestConfig
from growth.observability.models import WorkerHeartbeat
from tests.observability import stamped
from tests.processes import product_env

ROOT = Path(__file__).resolve().parents[2]


def _rows(session) -> list[WorkerHeartbeat]:
    session.rollback()  # a fresh snapshot each look
    return list(session.scalars(select(WorkerHeartbeat)))


def _until(condition: Callable[[], object], what: str, timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("app_config", [{"HEARTBEAT_SECONDS": 0.2}])
def test_a_background_runner_beats_while_it_runs_and_removes_its_heartbeat_when_stopped(app, client, session,
                                                                                         db_kind):
    runner = BackgroundRunner(app, {"idle": lambda app, stop: stop.wait()})
    runner.start()
    try:
        first = _until(lambda: _rows(session), "the first heartbeat")[0]
        assert (first.pid, first.workers) == (os.getpid(), ["idle"])
        seen = first.seen_at  # the row object itself is refreshed with every look
        _until(lambda: [r for r in _rows(session) if r.seen_at > seen], "a later heartbeat")
        with stamped(app):
            ready = client.get("/readyz")
    finally:
        runner.shutdown()

    assert ready.status_code == 200, ready.json
    assert _rows(session) == []


def test_a_real_growth_worker_process_beats_and_removes_its_heartbeat_on_sigterm(app, session, database_url,
                                                                                tmp_path, db_kind):
    env = product_env()
    env.update(GROWTH_DATABASE_URL=database_url, GROWTH_INSTANCE_PATH=str(tmp_path / "worker-instance"),
               GROWTH_SECRET_KEY="worker-test-secret", GROWTH_WEBHOOK_SECRET=TestConfig.WEBHOOK_SECRET,
               GROWTH_HEARTBEAT_SECONDS="0.5", PYTHONUNBUFFERED="1")
    log = tmp_path / "worker.log"
    with stamped(app), log.open("wb") as out:  # at head: the worker then leaves the schema alone
        proc = subprocess.Popen([sys.executable, "-m", "growth.cli", "worker"], env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            rows = _until(lambda: [r for r in _rows(session) if r.pid == proc.pid] or proc.poll() is not None,
                          "the worker's heartbeat")
            assert proc.poll() is None, log.read_text()
            assert {"events-processor", "message-delivery", "scheduler"} <= set(rows[0].workers)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    assert [r for r in _rows(session) if r.pid == proc.pid] == []
