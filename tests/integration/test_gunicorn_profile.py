"""deploy/gunicorn.conf.py serves wsgi:app on PostgreSQL and drains on SIGTERM.

The real gunicorn (2 workers) with the profile's configuration file, on this run's PostgreSQL database. A page
answers; then an event upload is held mid-body (a slow client: the request is inside the app, reading) when
the server gets SIGTERM. The upload completes and is accepted, and gunicorn exits 0 within its graceful timeout.
The access log holds no query string and no client address.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest

from growth.config import TestConfig
from tests.events import event, signed_headers
from tests.integration.test_serve import wait_for
from tests.processes import product_env

pytestmark = pytest.mark.postgres_only

ROOT = Path(__file__).resolve().parents[2]
GRACEFUL = 15
START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_gunicorn_with_the_profile_serves_pages_and_drains_an_in_flight_request_on_sigterm(database_url, tmp_path,
                                                                                         db_kind):
    port = _free_port()
    env = product_env()
    env.update(GROWTH_BIND=f"127.0.0.1:{port}", GROWTH_WEB_WORKERS="2", GROWTH_WEB_THREADS="2",
               GROWTH_WEB_ACCESS_LOG="1", GROWTH_GRACEFUL_TIMEOUT=str(GRACEFUL), GROWTH_DATABASE_URL=database_url,
               GROWTH_INSTANCE_PATH=str(tmp_path / "instance"), GROWTH_SECRET_KEY="g" * 48,
               GROWTH_WEBHOOK_SECRET=TestConfig.WEBHOOK_SECRET, PYTHONUNBUFFERED="1")
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"],
                                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(url + "/login?next=%2Fsecret-13800138000", timeout=2) as response:
                    return response.status == 200
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return False

        wait_for(up, START_TIMEOUT, "gunicorn to answer")

        body = orjson.dumps({"events": [event("user.registered", "u_drain", "2026-12-01T08:00:00+08:00")]})
        headers = signed_headers(body) | {"Content-Length": str(len(body)), "Connection": "close"}
        head = "POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        half = len(body) // 2
        with socket.create_connection(("127.0.0.1", port), timeout=GRACEFUL + 10) as client:
            client.sendall(head.encode() + body[:half])
            time.sleep(1.0)  # the worker has the request and waits in the app for the rest of the body
            proc.send_signal(signal.SIGTERM)
            time.sleep(1.0)  # the shutdown has begun: new connections are refused from here
            with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2) as late:
                late.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
                assert late.recv(100)  # an accepted connection would be answered
            client.sendall(body[half:])
            response = b""
            while chunk := client.recv(65536):
                response += chunk
        status = int(response.split(b" ", 2)[1])
        assert status in (200, 202), response[:500]
        assert orjson.loads(response.split(b"\r\n\r\n", 1)[1])["accepted"] == 1

        started = time.monotonic()
        assert proc.wait(GRACEFUL + 5) == 0, log.read_text()
        assert time.monotonic() - started <= GRACEFUL + 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        with contextlib.suppress(OSError):
            proc.kill()

    output = log.read_text()
    assert '"GET /login HTTP/1.1" 200' in output  # the access log line: path without its query
    assert "13800138000" not in output and "next=" not in output
    assert "127.0.0.1 -" not in output  # no client address
