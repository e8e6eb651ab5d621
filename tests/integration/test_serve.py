"""`growth serve` runs the background work in a supervised `growth worker` child process.

The real command in a subprocess on an embedded SQLite database: the child is started with the
server, restarted when it dies, stopped with the server, and gone when the server is killed outright;
an event posted to the server reaches the funnel within a few seconds.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from growth.app import create_app
from growth.auth.services import create_token, create_user
from growth.background import Backoff, WorkerSupervisor
from growth.cli import ensure_schema
from growth.config import TestConfig
from growth.db import get_db
from growth.events.processor import LEASE
from tests.events import event, signed_headers
from tests.processes import product_env

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0  # a 2-core machine shared with other test runs


@dataclass
class Server:
    """A running `growth serve` and what a test needs to talk to it."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    token: str = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    """Return the ids of the live (not zombie) processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition: Callable[[], object], timeout: float, what: str, server: Server | None = None) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f"\n{server.output()}" if server else ""))
        time.sleep(0.05)


def lease_holder_pid(server: Server) -> int | None:
    """Return the process id holding the processor lease, read straight from the embedded database."""
    with contextlib.closing(sqlite3.connect(f"file:{server.log.parent / 'growth.db'}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT holder FROM leader_leases WHERE name = ?", (LEASE,)).fetchone()
    return int(row[0].split(":")[1]) if row else None  # holder ids are host:pid:random


def worker_child(server: Server) -> int:
    """Wait for the server's single `growth worker` child and return its id."""
    def only_child() -> int | None:
        pids = children(server.proc.pid)
        if len(pids) != 1:
            return None
        try:
            cmdline = Path(f"/proc/{pids[0]}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            return None
        # Between its fork and its exec a child still shows the server's own command line: wait for the exec.
        return pids[0] if b"worker" in cmdline else None

    pid = int(wait_for(only_child, START_TIMEOUT, "the worker child", server))  # type: ignore[arg-type]
    assert b"growth.cli" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    # "growth worker running: events-processor, message-delivery, …  (pid N; …": whatever the list holds.
    wait_for(lambda: re.search(rf"growth worker running: .*message-delivery.*  \(pid {pid};", server.output()),
             START_TIMEOUT, "the worker to be running", server)
    return pid


def _start(instance: Path, *args: str, env_extra: dict[str, str] | None = None) -> Server:
    port = _free_port()
    env = product_env()
    env.update(GROWTH_INSTANCE_PATH=str(instance), GROWTH_SECRET_KEY="serve-test-secret-key",
               GROWTH_WEBHOOK_SECRET=TestConfig.WEBHOOK_SECRET, PYTHONUNBUFFERED="1", **(env_extra or {}))
    log = instance / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "growth.cli", "serve", "--port", str(port), *args],
                                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    server = Server(proc, f"http://127.0.0.1:{port}", log)

    def up() -> bool:
        assert proc.poll() is None, f"growth serve exited {proc.returncode}:\n{server.output()}"
        try:
            with urllib.request.urlopen(server.url + "/login", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    wait_for(up, START_TIMEOUT, "growth serve to answer", server)
    return server


def _stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(10)
    for pid in children(server.proc.pid):  # never leave a worker behind, even when a test failed
        os.kill(pid, signal.SIGKILL)


def _analyst_token(instance: Path) -> str:
    os.environ["GROWTH_INSTANCE_PATH"] = str(instance)
    config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    app = create_app(config | {"DATABASE_URL": f"sqlite:///{instance / 'growth.db'}"})
    ensure_schema(app)
    with get_db(app).session_scope(write=True) as session:
        user = create_user("analyst@example.com", role="analyst", password="analyst-pass-123", session=session,
                           by="test")
        _token, plain = create_token(user, "serve test", session=session)
    get_db(app).dispose()
    return plain


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `growth serve` with its worker child and an analyst's API token."""
    instance = tmp_path_factory.mktemp("serve-instance")
    token = _analyst_token(instance)
    running = _start(instance)
    running.token = token
    yield running
    _stop(running)


def _post(server: Server, events: list[dict]) -> dict:
    body = orjson.dumps({"events": events})
    request = urllib.request.Request(server.url + "/api/v1/events", data=body, headers=signed_headers(body),
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return orjson.loads(response.read())


def _registered(server: Server) -> int:
    request = urllib.request.Request(server.url + "/api/v1/funnel?group_by=none",
                                     headers={"Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return orjson.loads(response.read())["total"]["counts"][0]


# --- the real command ----------------------------------------------------------------------------------


def test_serve_starts_one_growth_worker_child_and_the_child_not_serve_holds_the_processor_lease(server):
    pid = worker_child(server)
    assert f"pid {pid}" in server.output()

    assert wait_for(lambda: lease_holder_pid(server), START_TIMEOUT, "the processor lease", server) == pid
    assert pid != server.proc.pid


def test_an_event_posted_to_serve_reaches_the_funnel_within_a_few_seconds(server):
    worker_child(server)
    before = _registered(server)
    result = _post(server, [event("user.registered", "serve-u1", datetime.now(UTC), phone="13800000001")])
    assert result["accepted"] == 1
    posted = time.monotonic()
    wait_for(lambda: _registered(server) == before + 1, 5.0, "the funnel to count the registration", server)
    assert time.monotonic() - posted < 5.0


def _get(server: Server, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(server.url + path, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_serve_is_ready_once_its_worker_child_beats_and_serves_metrics_to_loopback(server):
    worker_child(server)

    wait_for(lambda: _get(server, "/readyz")[0] == 200, START_TIMEOUT, "/readyz to answer 200", server)
    status, body = _get(server, "/metrics")

    assert _get(server, "/healthz") == (200, b'{"status":"ok"}\n')
    assert status == 200
    assert b"growth_workers_alive 1.0" in body


def test_a_killed_worker_child_is_restarted_and_keeps_processing(server):
    first = worker_child(server)
    # Killed while it holds the lease, as a crash mid-work would leave it.
    wait_for(lambda: lease_holder_pid(server) == first, START_TIMEOUT, "the first worker's lease", server)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not alive(first), 10, "the killed worker to go")
    second = worker_child(server)
    assert second != first
    assert "exited with -9; restarting" in server.output()
    before = _registered(server)
    _post(server, [event("user.registered", "serve-u2", datetime.now(UTC), phone="13800000002")])
    # The new worker frees the dead one's lease at once instead of waiting 15 s for it to expire.
    wait_for(lambda: _registered(server) == before + 1, 10.0, "the new worker to process", server)
    assert f"lease(s) of the worker that died (pid {first})" in server.output()


def test_stopping_serve_stops_its_worker_child(tmp_path):
    running = _start(tmp_path)
    try:
        child = worker_child(running)
        running.proc.send_signal(signal.SIGTERM)
        assert running.proc.wait(30) == 0
        wait_for(lambda: not alive(child), 10, "the worker child to stop", running)
        assert "growth worker stopped" in running.output()  # it stopped in order, not killed
    finally:
        _stop(running)


def test_the_worker_child_exits_by_itself_when_serve_is_killed_outright(tmp_path):
    running = _start(tmp_path)
    try:
        child = worker_child(running)
        running.proc.kill()
        running.proc.wait(10)
        wait_for(lambda: not alive(child), 15, "the orphaned worker to exit", running)
        assert "the supervising server is gone" in running.output()
    finally:
        _stop(running)
        if alive(child):
            os.kill(child, signal.SIGKILL)


def test_serve_with_background_work_off_starts_no_child(tmp_path):
    running = _start(tmp_path, env_extra={"GROWTH_BACKGROUND_WORK": "false"})
    try:
        time.sleep(1.0)
        assert children(running.proc.pid) == []
        assert "background work is off" in running.output()
    finally:
        _stop(running)


# --- the supervisor itself -------------------------------------------------------------------------------


def test_backoff_doubles_after_quick_deaths_up_to_its_limit_and_resets_after_a_stable_run():
    backoff = Backoff(first=1, longest=8, stable=60)
    assert [backoff.after_run(0.5) for _ in range(5)] == [1, 2, 4, 8, 8]
    assert backoff.after_run(61) == 1
    assert backoff.after_run(2) == 2


def test_the_supervisor_restarts_a_dying_child_with_backoff_and_stops_for_good():
    def command(fd: int, predecessor: int | None) -> list[str]:
        return [sys.executable, "-c", "import sys; sys.exit(3)"]

    supervisor = WorkerSupervisor(command, backoff=Backoff(first=0.05, longest=0.2, stable=60))
    supervisor.start()
    try:
        wait_for(lambda: supervisor.starts >= 4, 20, "three restarts")
    finally:
        supervisor.stop()
    starts = supervisor.starts
    time.sleep(0.5)
    assert supervisor.starts == starts  # stopped: no restart after stop()
