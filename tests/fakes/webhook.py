"""A real HTTP receiver on 127.0.0.1 for Standard Webhooks: verifies each request and answers as scripted.

`answers` is a queue of `(status, headers)` used one per request (then 200); `delay` makes it answer late
(for timeouts). Every request is recorded with its headers, body and whether the signature verified.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Delivery:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: Any  # the parsed body if the signature verified, else None
    status: int


@dataclass
class FakeWebhookReceiver:
    secret: str
    answers: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    deliveries: list[Delivery] = field(default_factory=list)
    delay: float = 0.0

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    verified = Webhook(receiver.secret).verify(body, headers)
                except WebhookVerificationError:
                    verified = None
                status, extra = receiver.answers.popleft() if receiver.answers else (200, {})
                if verified is None and status < 300:
                    status = 401
                receiver.deliveries.append(Delivery(self.path, headers, body, verified, status))
                if receiver.delay:
                    time.sleep(receiver.delay)
                try:
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the client gave up (timeout tests)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hooks/growth"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> FakeWebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def answer(self, status: int, **headers: str) -> None:
        """Queue an answer for the next request."""
        self.answers.append((status, {k.replace("_", "-"): v for k, v in headers.items()}))
