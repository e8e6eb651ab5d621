"""Reading never holds SQLite's write lock: token readers and audited exports leave event ingestion fast.

Against the real `growth serve` (a subprocess on an embedded SQLite database with a few thousand
investors): four bearer-token clients poll the funnel API and two staff members download audited
exports while the platform posts single events. Every event is accepted within a second and no
request fails. Before reads took their own read transaction, each token read and each export held
the write lock for the whole request and the posts queued behind them for seconds.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import requests

from growth.auth.services import create_token, create_user
from growth.db import Base, Database, insert_many
from growth.investors.models import Investor
from growth.investors.rules import referral_code_for
from growth.migrate import upgrade
from growth.models import import_all_models
from tests.conftest import KINDS
from tests.events import event, signed_headers
from tests.processes import product_env

pytestmark = pytest.mark.skipif("sqlite" not in KINDS, reason="the single write lock is SQLite's")

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
INVESTORS = 3000
LOAD_SECONDS = 12.0
ADMIN = ("boss@example.com", "boss-password-1")


def _seed(url: str) -> str:
    """Create the schema, an admin, a token and investors; return the token."""
    import_all_models()
    upgrade(url)
    db = Database(url)
    now = datetime.now(UTC)
    try:
        with db.session_scope(write=True) as s:
            user = create_user(ADMIN[0], role="admin", password=ADMIN[1], session=s, by="test")
            plain = create_token(user, "poller", session=s)[1]
            rows = []
            for n in range(INVESTORS):
                at = now - timedelta(days=n % 25, minutes=n)
                rows.append({
                    "platform_user_id": f"u_{n:06d}", "referral_code": referral_code_for(f"u_{n:06d}"),
                    "phone": f"+86139{n:08d}", "name": f"测试{n}", "registered_at": at,
                    "kyc_verified_at": at + timedelta(hours=1) if n % 2 else None,
                    "first_deposit_at": at + timedelta(hours=2) if n % 3 == 0 else None,
                    "first_investment_at": at + timedelta(hours=3) if n % 4 == 0 else None,
                    "investment_count": 0, "investment_total_fen": 0, "holdings_fen": 0, "deposit_total_fen": 0,
                    "withdrawal_total_fen": 0, "consent": {},
                })
            insert_many(s.connection(), Base.metadata.tables[Investor.__tablename__], rows)
    finally:
        db.dispose()
    return plain


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"growth serve exited {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if requests.get(url + "/login", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)  # the port is not open yet: nothing to wait on but time
    pytest.fail(f"growth serve did not answer:\n{log.read_text(errors='replace')}")


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    instance = tmp_path / "instance"
    instance.mkdir()
    url = f"sqlite:///{instance / 'growth.db'}"
    token = _seed(url)
    env = product_env()
    env.update(GROWTH_INSTANCE_PATH=str(instance), GROWTH_SECRET_KEY="lock-test-secret",
               GROWTH_WEBHOOK_SECRET=WEBHOOK_SECRET, PYTHONUNBUFFERED="1")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "growth.cli", "serve", "--port", str(port), "--threads", "12", "--no-background"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(base, proc, log)
        yield base, token
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _signed_in(base: str) -> requests.Session:
    web = requests.Session()
    page = web.get(base + "/login", timeout=10).text
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert csrf, "no CSRF token on the sign-in page"
    done = web.post(base + "/login", data={"csrf_token": csrf.group(1), "email": ADMIN[0], "password": ADMIN[1]},
                    allow_redirects=False, timeout=10)
    assert done.status_code == 302, done.text
    return web


def test_token_readers_and_audited_exports_leave_single_event_posts_fast(server):
    base, token = server
    stop = threading.Event()
    failures: list[str] = []
    reads: list[float] = []

    def loop(name: str, call) -> None:  # type: ignore[no-untyped-def]
        while not stop.is_set():
            started = time.monotonic()
            try:
                response = call()
            except requests.RequestException as err:
                failures.append(f"{name}: {err!r}")
                continue
            reads.append(time.monotonic() - started)
            if response.status_code != 200:
                failures.append(f"{name}: {response.status_code} {response.text[:200]}")

    bearer = {"Authorization": f"Bearer {token}"}
    clients = [
        threading.Thread(target=loop, args=(f"funnel{n}", lambda: requests.get(
            base + "/api/v1/funnel?group_by=channel", headers=bearer, timeout=60)))
        for n in range(4)
    ]
    exporters = [_signed_in(base), _signed_in(base)]
    clients.append(threading.Thread(target=loop, args=("investors export", lambda: exporters[0].get(
        base + "/investors/export.csv", timeout=60))))
    clients.append(threading.Thread(target=loop, args=("audit export", lambda: exporters[1].get(
        base + "/admin/audit/export.csv", timeout=60))))
    for thread in clients:
        thread.start()

    latencies: list[float] = []
    try:
        time.sleep(1.0)  # let the readers get going
        deadline = time.monotonic() + LOAD_SECONDS
        n = 0
        while time.monotonic() < deadline:
            n += 1
            body = orjson.dumps(event("user.registered", f"p_{n}", datetime.now(UTC), event_id=f"evt_lock_{n}"))
            started = time.monotonic()
            try:
                response = requests.post(base + "/api/v1/events", data=body,
                                         headers=signed_headers(body, WEBHOOK_SECRET), timeout=60)
            except requests.RequestException as err:
                failures.append(f"post: {err!r}")
                continue
            latencies.append(time.monotonic() - started)
            if response.status_code not in (200, 201, 202):
                failures.append(f"post: {response.status_code} {response.text[:200]}")
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)

    assert failures == []
    assert len(reads) > 12, "the readers hardly ran: the test measured nothing"
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"p99 {p99:.3f} s over {len(latencies)} posts, {len(reads)} reads")
    assert p99 < 1.0, f"p99 {p99:.2f} s over {len(latencies)} posts; slowest {latencies[-5:]}"
    assert len(latencies) >= 20
