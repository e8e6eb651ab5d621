"""A real HTTP server on 127.0.0.1 (ephemeral port) in a thread, for the SMS providers' fakes."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    accepted: bool = False  # the signature and credentials were good
    data: Any = field(default=None)  # the parsed parameters / JSON body
    at: float = field(default_factory=time.time)  # when it arrived (rate-limit checks)


class FakeHttpServer:
    """Serves `answer(request) -> (status, content_type, body)` on 127.0.0.1; records every request.

    `delay` seconds are slept before each answer (timeouts); `queue(...)` answers are used in order,
    then the default answer.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.delay = 0.0
        self.answers: deque[Any] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """`127.0.0.1:<port>` (GROWTH_SMS_ENDPOINT)."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def queue(self, *answers: Any) -> None:
        """Answer the next requests with these (what an answer is, the subclass says)."""
        self.answers.extend(answers)

    def next_answer(self, default: Any) -> Any:
        return self.answers.popleft() if self.answers else default

    def answer(self, request: Received) -> tuple[int, str, bytes]:
        raise NotImplementedError

    def start(self) -> FakeHttpServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._serve()

            def do_GET(self) -> None:
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                   self.rfile.read(length))
                fake.received.append(request)
                status, content_type, body = fake.answer(request)
                if fake.delay:
                    time.sleep(fake.delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (a timeout test)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
