"""A fast fake Aliyun SMS endpoint for bench/delivery.py: answers `SendSms` after a fixed latency.

Run as its own process (the benchmark starts it):

    .venv/bin/python bench/fake_sms_server.py --port 18000 --latency 0.005

A bare asyncio HTTP/1.1 server (keep-alive, Content-Length bodies), so it holds far more requests a
second than the benchmark sends: the latency is a timer, not a sleeping thread. It answers Aliyun's
response format (`{"Message":"OK","RequestId":…,"Code":"OK","BizId":…}`) but skips the signature
check (tests/fakes/aliyun_sms.py checks signatures; here only throughput matters). It counts every
`OutId` it is sent, so the benchmark can prove each message went exactly once:

    GET /stats   → {"requests", "distinct", "duplicates", "first", "last"} (epoch seconds of arrivals)
    POST /reset  → forget everything counted
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from urllib.parse import unquote_plus

_OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=utf-8\r\nContent-Length: "


class Counter:
    """What the fake has been sent."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything counted."""
        self.requests = 0
        self.out_ids: set[str] = set()
        self.duplicates = 0
        self.first = 0.0
        self.last = 0.0

    def add(self, out_id: str) -> int:
        """Count one SendSms call; return its number."""
        now = time.time()
        self.requests += 1
        if not self.first:
            self.first = now
        self.last = now
        if out_id in self.out_ids:
            self.duplicates += 1
        else:
            self.out_ids.add(out_id)
        return self.requests

    def stats(self) -> dict[str, float | int]:
        """Return the counts."""
        return {"requests": self.requests, "distinct": len(self.out_ids), "duplicates": self.duplicates,
                "first": self.first, "last": self.last}


def _out_id(body: bytes) -> str:
    for pair in body.split(b"&"):
        if pair.startswith(b"OutId="):
            return unquote_plus(pair[6:].decode())
    return ""


class SmsProtocol(asyncio.Protocol):
    """One client connection: parse requests as they arrive, answer each after the latency, in order."""

    def __init__(self, counter: Counter, latency: float) -> None:
        self.counter = counter
        self.latency = latency
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            length = 0
            close = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip())
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4:end + 4 + length]
            self.buffer = self.buffer[end + 4 + length:]
            method, path = (lines[0].split(" ") + ["", ""])[:2]
            self.handle(method, path, body, close)

    def handle(self, method: str, path: str, body: bytes, close: bool) -> None:
        if path == "/stats":
            self.respond(json.dumps(self.counter.stats()).encode(), close)
        elif path == "/reset":
            self.counter.reset()
            self.respond(b"{}", close)
        else:
            n = self.counter.add(_out_id(body))
            answer = (f'{{"Message":"OK","RequestId":"BENCH-{n:012d}","Code":"OK","BizId":"{n}^0"}}').encode()
            self.loop.call_later(self.latency, self.respond, answer, close)

    def respond(self, answer: bytes, close: bool) -> None:
        if self.transport is None:
            return
        extra = b"\r\nConnection: close" if close else b""
        self.transport.write(_OK_HEAD + str(len(answer)).encode() + extra + b"\r\n\r\n" + answer)
        if close:
            self.transport.close()


async def serve(host: str, port: int, latency: float) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    counter = Counter()
    server = await loop.create_server(lambda: SmsProtocol(counter, latency), host, port, backlog=4096,
                                      reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake aliyun sms listening on {host}:{port}, latency {latency * 1000:.1f} ms", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.005, help="seconds before each answer (default 0.005)")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost"):
        parser.error("the fake listens on loopback only")
    asyncio.run(serve(args.host, args.port, args.latency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
