"""A fake WeChat official-account API: real HTTP on 127.0.0.1 (ephemeral port), WeChat's JSON.

Serves under `/cgi-bin/` (`api_base`): `GET token`, `POST message/template/send`,
`POST message/mass/send` and `POST qrcode/create` (permanent string-scene QR codes). It issues
access tokens, can expire them (the next call with an old token is answered 42001 or 40001), can
answer any errcode for the next calls of an endpoint, can answer an HTTP status or be slow, and
records every request it received (anything under another path too).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/cgi-bin/"


@dataclass
class Received:
    """One request the fake received."""

    method: str
    endpoint: str  # the path after /cgi-bin/ ("token", "message/template/send"), or the whole path elsewhere
    query: dict[str, str]
    body: Any = None  # the parsed JSON body
    answer: dict[str, Any] = field(default_factory=dict)


class FakeWechat:
    """The fake API server; `start()` it, point `GROWTH_WECHAT_API_BASE` at `api_base`, `stop()` it."""

    def __init__(self, appid: str = "wx_app", secret: str = "s3cret") -> None:  # noqa: S107 (a fake)
        self.appid = appid
        self.secret = secret
        self.received: list[Received] = []
        self.tokens: dict[str, int] = {}  # issued token -> the errcode it is answered with (0 = valid)
        self.errors: dict[str, deque[int]] = {}  # endpoint -> errcodes to answer next, in order
        self.http_status: deque[int] = deque()  # HTTP statuses to answer next (any endpoint)
        self.delay = 0.0
        self.mass_jobs: dict[str, int] = {}  # clientmsgid -> msg_id of the accepted job
        self.qrcodes: dict[str, str] = {}  # scene_str -> ticket (a permanent code keeps its ticket)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- configuring ---------------------------------------------------------------------------------
    @property
    def api_base(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{PREFIX}"

    def fail(self, endpoint: str, *errcodes: int) -> None:
        """Answer the next calls of `endpoint` with these errcodes (one call each)."""
        self.errors.setdefault(endpoint, deque()).extend(errcodes)

    def expire_tokens(self, errcode: int = 42001) -> None:
        """Every token issued so far is answered with `errcode` (42001 expired, 40001/40014 invalid)."""
        with self._lock:
            for token in self.tokens:
                self.tokens[token] = errcode

    def calls(self, endpoint: str) -> list[Received]:
        return [r for r in self.received if r.endpoint == endpoint]

    # --- answering -----------------------------------------------------------------------------------
    def _answer(self, method: str, endpoint: str, query: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        if self.http_status:
            return self.http_status.popleft(), {"errcode": -1, "errmsg": "system error"}
        if endpoint == "token" and method == "GET":
            if query.get("grant_type") != "client_credential":
                return 200, {"errcode": 40002, "errmsg": "invalid grant_type"}
            if query.get("appid") != self.appid:
                return 200, {"errcode": 40013, "errmsg": "invalid appid"}
            if query.get("secret") != self.secret:
                return 200, {"errcode": 40125, "errmsg": "invalid appsecret"}
            with self._lock:
                token = f"TOKEN_{next(self._counter)}"
                self.tokens[token] = 0
            return 200, {"access_token": token, "expires_in": 7200}
        if method != "POST" or endpoint not in ("message/template/send", "message/mass/send", "qrcode/create"):
            return 404, {"errcode": 404, "errmsg": "not found"}
        token = query.get("access_token", "")
        if not token:
            return 200, {"errcode": 41001, "errmsg": "access_token missing"}
        state = self.tokens.get(token)
        if state is None:
            return 200, {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
        if state:
            return 200, {"errcode": state, "errmsg": "access_token expired" if state == 42001 else "invalid token"}
        queued = self.errors.get(endpoint)
        if queued:
            errcode = queued.popleft()
            answer: dict[str, Any] = {"errcode": errcode, "errmsg": f"fake error {errcode}"}
            if errcode == 45065:
                answer.update(msg_id=1000, errmsg="clientmsgid exist")
            return 200, answer
        if endpoint == "qrcode/create":
            return 200, self._qrcode(body)
        if endpoint == "message/template/send":
            if not isinstance(body, dict) or not body.get("touser") or not body.get("template_id"):
                return 200, {"errcode": 47001, "errmsg": "data format error"}
            return 200, {"errcode": 0, "errmsg": "ok", "msgid": 200000 + next(self._counter)}
        if not isinstance(body, dict) or body.get("msgtype") != "text" or not isinstance(body.get("touser"), list):
            return 200, {"errcode": 47001, "errmsg": "data format error"}
        if len(body["touser"]) < 2:
            return 200, {"errcode": 40130, "errmsg": "invalid openid list size, at least two openid"}
        client_msg_id = str(body.get("clientmsgid", ""))
        if client_msg_id in self.mass_jobs:
            return 200, {"errcode": 45065, "errmsg": "clientmsgid exist", "msg_id": self.mass_jobs[client_msg_id]}
        n = next(self._counter)
        if client_msg_id:
            self.mass_jobs[client_msg_id] = 1000 + n
        return 200, {"errcode": 0, "errmsg": "send job submission success", "msg_id": 1000 + n, "msg_data_id": 2000 + n}

    def _qrcode(self, body: Any) -> dict[str, Any]:
        scene = body.get("action_info", {}).get("scene", {}) if isinstance(body, dict) else {}
        if not isinstance(body, dict) or body.get("action_name") != "QR_LIMIT_STR_SCENE" or not isinstance(scene, dict):
            return {"errcode": 40097, "errmsg": "invalid args"}
        scene_str = scene.get("scene_str")
        if not isinstance(scene_str, str) or not 1 <= len(scene_str) <= 64:
            return {"errcode": 40097, "errmsg": "invalid args"}
        with self._lock:
            ticket = self.qrcodes.setdefault(scene_str, f"gQTICKET{next(self._counter):04d}")
        return {"ticket": ticket, "url": f"http://weixin.qq.com/q/{ticket}"}

    def start(self) -> FakeWechat:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                endpoint = parts.path[len(PREFIX) :] if parts.path.startswith(PREFIX) else parts.path
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw.decode("utf-8")) if raw else None
                except ValueError:
                    body = raw
                status, answer = fake._answer(method, endpoint, query, body)
                fake.received.append(Received(method, endpoint, query, body, answer))
                if fake.delay:
                    time.sleep(fake.delay)
                data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; encoding=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
