"""Sustained load on the events API: signed single-event requests at a fixed rate, latency without coordinated omission.

Run from the project root (see bench/README.md, issue 13):

    .venv/bin/python bench/load.py --db pg                       # 1,000 req/s for 60 s: gunicorn + `growth worker`
    .venv/bin/python bench/load.py --db sqlite --find-rate       # the embedded default: the highest rate it holds
    .venv/bin/python bench/load.py --db sqlite --rate 50 --seconds 3 --warmup 0   # CI

Each run gets a fresh database (a temporary SQLite file, or a temporary PostgreSQL database `load_…` that is
dropped afterwards) and the product's own processes on a free loopback port:
  pg      the PostgreSQL profile: `gunicorn -c deploy/gunicorn.conf.py wsgi:app` plus one `growth worker`;
  sqlite  the embedded default: `growth serve` with its `growth worker` child (what `make run` starts);
  ceiling the same gunicorn serving `bench/bare_app.py` instead of the product: it checks the signature and parses
          the JSON, with no Flask and no database — what the web server, client and machine allow at all;
  lean    `bench/bare_app.py` also validating and appending as the product does (one round trip on a
          plain psycopg connection) on PostgreSQL, plus one `growth worker`: the contract's work and nothing else.

Every request carries one event (demo data: registrations, KYC, deposits, investments … of many investors) and
is built and signed before the clock starts. The client is open-loop: request i is due at start + i / rate
whatever happened to the ones before, and its latency is the answer's arrival minus that due time, so a server
that falls behind shows it in the latencies (no coordinated omission). It runs as raw HTTP/1.1 over asyncio on
many keep-alive connections, cheap enough that the server, not the client, is what is measured on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: growth is importable either way

from harness import BENCH_DATA_KEYS, LOOPBACK, BenchError, free_port, tail, wait_for_quiet  # noqa: E402
from ingest import (  # noqa: E402
    PG_DEFAULT,
    Instance,
    PostgresTarget,
    SqliteTarget,
    make_workload,
    relabel,
    sign_all,
)

TARGET_RATE = 1000  # signed event requests/s on the PostgreSQL profile (issue 13)
TARGET_SECONDS = 60
TARGET_P99_MS = 200.0
RATE_HELD = 0.99  # a run holds its rate when it answers at least this share of it
FIND_RATES = (100, 200, 400, 600, 800, 1000, 1200, 1600, 2000)
REQUEST_TIMEOUT = 10.0  # seconds from a request's due time; later is a timeout
MAX_CONNECTIONS = 256
OPEN_CONNECTIONS = 32  # opened before the clock starts
# gunicorn closes a kept-alive connection idle for 5 s (deploy/gunicorn.conf.py); the client drops one idle for
# this long itself, so it never sends on a connection the server is closing at that moment.
IDLE_DROP_SECONDS = 3.0
LAG_TIMEOUT = 300.0


# --- the client -------------------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time, answers parsed by Content-Length."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
        if b"content-length" not in fields:
            self.fail(ConnectionError("answer without Content-Length"))
            return
        length = int(fields[b"content-length"])
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4:end + 4 + length])
        del self.buffer[:end + 4 + length]
        if fields.get(b"connection", b"").strip() == b"close":
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((int(head[9:12]), body))

    def fail(self, err: Exception) -> None:
        """Close the connection; the request waiting on it (if any) fails with `err`."""
        self.closed = True
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(err)
        if self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool:
        self.fail(ConnectionResetError("closed by the server before the answer"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(exc if isinstance(exc, Exception) else ConnectionResetError("connection lost"))


@dataclass
class ClientResult:
    """What one open-loop run measured (seconds on the loop's clock; latencies in ms)."""

    rate: float
    planned: int
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    send_lag_ms: list[float] = field(default_factory=list)  # actual send − due time (the client's own delay)
    duration: float = 0.0  # first due time to the last answer
    connections: int = 0
    client_cpu: float = 0.0


class OpenLoopClient:
    """Sends pre-built requests at fixed due times over a pool of keep-alive connections."""

    def __init__(self, port: int, *, max_connections: int, timeout: float) -> None:
        self.port = port
        self.max_connections = max_connections
        self.timeout = timeout
        self.idle: collections.deque[_Connection] = collections.deque()  # FIFO: every connection stays warm
        self.waiting: collections.deque[asyncio.Future[_Connection]] = collections.deque()
        self.opened = 0
        self.open_now = 0

    async def _open(self) -> _Connection:
        self.opened += 1
        self.open_now += 1
        try:
            _, conn = await asyncio.get_running_loop().create_connection(_Connection, LOOPBACK, self.port)
        except BaseException:
            self.open_now -= 1
            raise
        return conn

    async def acquire(self) -> _Connection:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.popleft()
            if not conn.closed and now - conn.idle_since < IDLE_DROP_SECONDS:
                return conn
            self._discard(conn)
        if self.open_now < self.max_connections:
            return await self._open()
        waiter: asyncio.Future[_Connection] = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        return await waiter

    def release(self, conn: _Connection) -> None:
        if conn.closed:
            self._discard(conn)
            if self.waiting:  # a slot is free: the first in line gets a new connection
                asyncio.ensure_future(self._hand_new(self.waiting.popleft()))
            return
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    async def _hand_new(self, waiter: asyncio.Future[_Connection]) -> None:
        try:
            conn = await self._open()
        except OSError as err:
            if not waiter.done():
                waiter.set_exception(err)
            return
        if waiter.done():  # the request timed out meanwhile
            self.release(conn)
        else:
            waiter.set_result(conn)

    def _discard(self, conn: _Connection) -> None:
        self.open_now -= 1
        if not conn.closed and conn.transport is not None:
            conn.closed = True
            conn.transport.close()

    async def warm(self, count: int) -> None:
        """Open `count` connections before the clock starts."""
        conns = await asyncio.gather(*(self._open() for _ in range(count)))
        for conn in conns:
            self.release(conn)

    def close(self) -> None:
        while self.idle:
            self._discard(self.idle.popleft())

    async def _one(self, request: bytes, due: float, result: ClientResult) -> None:
        loop = asyncio.get_running_loop()
        conn: _Connection | None = None
        try:
            async with asyncio.timeout_at(due + self.timeout):
                conn = await self.acquire()
                result.send_lag_ms.append((loop.time() - due) * 1000)
                status, body = await conn.send(request)
            latency = (loop.time() - due) * 1000
            if not 200 <= status < 300:
                kind = f"http_{status}"
            elif orjson.loads(body).get("accepted") != 1:
                kind = "not_accepted"
            else:
                result.ok += 1
                result.latencies_ms.append(latency)
                kind = ""
            if kind:
                result.errors[kind] = result.errors.get(kind, 0) + 1
            self.release(conn)
        except TimeoutError:
            result.errors["timeout"] = result.errors.get("timeout", 0) + 1
            if conn is not None:
                conn.fail(TimeoutError())
                self.release(conn)
        except OSError as err:
            kind = "connection_reset" if isinstance(err, ConnectionResetError) else "connection_error"
            result.errors[kind] = result.errors.get(kind, 0) + 1
            if conn is not None:
                self.release(conn)

    async def run(self, requests: list[bytes], rate: float) -> ClientResult:
        """Send every request at its due time (start + i / rate); wait for every answer or timeout."""
        loop = asyncio.get_running_loop()
        result = ClientResult(rate=rate, planned=len(requests))
        await self.warm(min(OPEN_CONNECTIONS, self.max_connections))
        tasks: set[asyncio.Task[None]] = set()
        cpu0 = _own_cpu()
        start = loop.time() + 0.05
        i, n = 0, len(requests)
        while i < n:
            now = loop.time()
            while i < n and start + i / rate <= now:
                task = loop.create_task(self._one(requests[i], start + i / rate, result))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            if i < n:
                await asyncio.sleep(max(start + i / rate - loop.time(), 0.0))
        while tasks:
            await asyncio.gather(*list(tasks))
        result.duration = loop.time() - start
        result.client_cpu = _own_cpu() - cpu0
        result.connections = self.opened
        self.close()
        return result


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_client(port: int, requests: list[bytes], rate: float, *, max_connections: int) -> ClientResult:
    """Run one open-loop pass with the garbage collector off (a pause would count against the server)."""
    gc.collect()
    gc.disable()
    try:
        return asyncio.run(OpenLoopClient(port, max_connections=max_connections, timeout=REQUEST_TIMEOUT)
                           .run(requests, rate))
    finally:
        gc.enable()


def http_requests(events: list[dict[str, Any]], secret: str, tag: str, port: int) -> list[bytes]:
    """Serialise, sign and frame one request per event (all before the clock starts)."""
    signed = sign_all([(orjson.dumps(e), 1) for e in events], secret, tag)
    host = f"Host: {LOOPBACK}:{port}\r\n".encode()
    out = []
    for body, _, headers in signed:
        lines = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
        out.append(b"POST /api/v1/events HTTP/1.1\r\n" + host + lines
                   + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return out


# --- the server side: processes, CPU ----------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """Return the CPU seconds of a process and of its children that have exited (gunicorn recycles its workers
    every ~10,000 requests: without theirs, a long run's web CPU came out far too low)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime, stime, cutime, cstime


def _processes() -> dict[int, tuple[int, str]]:
    """Return every process's parent and command line."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out[int(entry)] = (ppid, cmd)
    return out


def _machine_busy() -> tuple[float, float]:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class CpuMeter:
    """CPU seconds of the product's processes (web tree, worker) and the run database's PostgreSQL backends."""

    def __init__(self, roots: dict[str, int], database: str | None) -> None:
        self.roots = roots
        self.database = database

    def groups(self) -> dict[str, list[int]]:
        procs = _processes()
        children: dict[int, list[int]] = collections.defaultdict(list)
        for pid, (ppid, _) in procs.items():
            children[ppid].append(pid)
        groups: dict[str, list[int]] = {}
        for name, root in self.roots.items():
            tree, todo = [], [root]
            while todo:
                pid = todo.pop()
                tree.append(pid)
                todo += children.get(pid, [])
            groups[name] = tree
        if self.database:
            groups["postgres"] = [pid for pid, (_, cmd) in procs.items()
                                  if cmd.startswith("postgres:") and f" {self.database} " in cmd]
        return groups

    def sample(self) -> dict[str, Any]:
        return {"at": time.monotonic(), "machine": _machine_busy(),
                "cpu": {name: {pid: _cpu_seconds(pid) for pid in pids} for name, pids in self.groups().items()}}

    @staticmethod
    def between(first: dict[str, Any], last: dict[str, Any]) -> dict[str, float]:
        """Return each group's CPU seconds per wall second (1.0 = one core busy), and the machine's busy share."""
        wall = last["at"] - first["at"]
        out = {}
        for name, pids in last["cpu"].items():
            before = first["cpu"].get(name, {})
            out[name] = sum(max(sec - before.get(pid, 0.0), 0.0) for pid, sec in pids.items()) / wall
        busy = last["machine"][0] - first["machine"][0]
        total = last["machine"][1] - first["machine"][1]
        out["machine_busy_share"] = busy / total if total else float("nan")
        return out


@dataclass
class Stack:
    """The running processes of one run: where the web server listens, and what to measure the CPU of."""

    port: int
    roots: dict[str, int]
    logs: list[Path]


@contextlib.contextmanager
def pg_profile(instance: Instance, workers: int | None, threads: int | None, *, app: str = "pg") -> Iterator[Stack]:
    """Run gunicorn (deploy/gunicorn.conf.py) and one `growth worker` on the instance's database.

    Workers and threads not given are deploy/gunicorn.conf.py's defaults (2 × CPUs + 1 workers, at most 8; 4 threads).
    `app` "ceiling" or "lean": gunicorn serves `bench/bare_app.py` (see its docstring); "ceiling" runs no worker.
    """
    port = free_port()
    env = {**instance.env, "PYTHONUNBUFFERED": "1", "GROWTH_BIND": f"{LOOPBACK}:{port}", "GROWTH_GRACEFUL_TIMEOUT": "5"}
    env.update({name: str(value) for name, value in (("GROWTH_WEB_WORKERS", workers), ("GROWTH_WEB_THREADS", threads))
                if value})
    procs: list[subprocess.Popen[bytes]] = []
    web = ["gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"]
    if app != "pg":
        web[-1:] = ["--pythonpath", str(ROOT / "bench"), "bare_app:app"]
        env["BENCH_BARE_APPEND"] = "1" if app == "lean" else "0"
        env["GROWTH_DATA_KEYS"] = BENCH_DATA_KEYS  # the bare app seals as the product does; the worker opens them
    bare = app == "ceiling"
    commands = [web] if bare else [web, ["growth.cli", "worker"]]
    logs = [instance.dir / "gunicorn.log", instance.dir / "worker.log"][:len(commands)]
    try:
        for log, args in zip(logs, commands, strict=True):
            with open(log, "wb") as out:
                procs.append(subprocess.Popen([sys.executable, "-m", *args], env=env, cwd=ROOT, stdout=out,
                                              stderr=subprocess.STDOUT))
        Instance.wait_ready(procs[0], port, logs[0])
        if not bare:
            Instance.wait_worker(procs[1], logs[1])
        yield Stack(port, {"web": procs[0].pid} | ({} if bare else {"worker": procs[1].pid}), logs)
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                raise BenchError(f"{log.stem} exited during the run:\n{tail(log)}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def embedded(instance: Instance) -> Iterator[Stack]:
    """Run `growth serve` with its background `growth worker` child (the embedded default)."""
    with instance.server(background=True) as server:
        yield Stack(server.port, {"serve": server.pid}, [])


# --- one run ----------------------------------------------------------------------------------------


@dataclass
class RunReport:
    """The figures of one run."""

    db: str
    rate: float
    seconds: float
    requests: int
    ok: int
    achieved_rate: float
    errors: dict[str, int]
    latency_ms: dict[str, float]
    send_lag_ms: dict[str, float]
    connections: int
    cpu: dict[str, float]  # cores busy (CPU seconds per second) per process group
    client_cpu: float  # cores the client used
    stored: int
    expected: int
    processor_lag_s: float | None
    load: list[float]
    workers: int | None = None
    threads: int | None = None
    passed: bool = False

    def holds(self, rate: float, p99_ms: float = TARGET_P99_MS) -> bool:
        """Return whether the run held `rate` with p99 ≤ `p99_ms`, no error, and every event stored and processed."""
        return (not self.errors and self.ok == self.requests and self.achieved_rate >= RATE_HELD * rate
                and self.latency_ms.get("p99", float("inf")) <= p99_ms and self.stored == self.expected
                and self.processor_lag_s is not None)


def percentiles(values: list[float]) -> dict[str, float]:
    """Return p50/p90/p99/p99.9/max of the values (nearest rank)."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]

    return {"p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "p99.9": rank(0.999), "max": ordered[-1]}


def wait_processed(instance: Instance, acknowledged: int) -> float | None:
    """Wait until the processor's cursor reaches the log's last event; return the seconds it took (None: timeout).

    `acknowledged` is how many events the server answered 200 for: at least those must be in the log
    (a request the client gave up on may be stored or not).
    """
    started = time.monotonic()
    while time.monotonic() - started < LAG_TIMEOUT:
        last, position = instance.target.progress()
        if position >= last and instance.target.stored() >= acknowledged:
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def run_once(kind: str, rate: float, seconds: float, args: argparse.Namespace, step: str) -> RunReport:
    """One run on a fresh database: warm-up, then `rate` × `seconds` signed requests, then the processor's lag."""
    warm_n = int(rate * args.warmup)
    n = int(rate * seconds)
    workload = make_workload(warm_n + n, args.seed)
    tag = f"ld{os.getpid()}{step}{int(time.time())}"
    relabel(workload, tag)
    if kind in ("sqlite", "ceiling"):  # the ceiling stores nothing: a SQLite file it never opens
        instance = Instance(SqliteTarget, tag)
    else:
        instance = Instance(lambda _dir: PostgresTarget(args.pg_url, f"load_{os.getpid()}_{step}"), tag)
    try:
        if kind != "ceiling":
            instance.cli("db", "upgrade")
        stack = (embedded(instance) if kind == "sqlite" else pg_profile(instance, args.workers, args.threads, app=kind))
        with stack as running:
            requests = http_requests(workload.events, instance.secret, tag, running.port)
            warm_ok = 0
            if warm_n:
                warm = run_client(running.port, requests[:warm_n], rate, max_connections=args.connections)
                if warm.errors:
                    print(f"  warm-up errors: {warm.errors}", file=sys.stderr, flush=True)
                warm_ok = warm.ok
                if kind != "ceiling":
                    wait_processed(instance, warm.ok)
            meter = CpuMeter(running.roots, None if kind == "ceiling" else getattr(instance.target, "db_name", None))
            load = [round(x, 2) for x in os.getloadavg()]
            before = meter.sample()
            client = run_client(running.port, requests[warm_n:], rate, max_connections=args.connections)
            after = meter.sample()
            if kind == "ceiling":  # nothing is stored: every answered request counts as "stored"
                lag, stored = 0.0, warm_ok + client.ok
            else:
                lag = wait_processed(instance, warm_ok + client.ok)
                stored = instance.target.stored()
        load += [round(x, 2) for x in os.getloadavg()]
    finally:
        instance.close()
    report = RunReport(
        db=kind, rate=rate, seconds=seconds, requests=n, ok=client.ok,
        achieved_rate=client.ok / client.duration if client.duration else 0.0,
        errors=client.errors, latency_ms=percentiles(client.latencies_ms),
        send_lag_ms=percentiles(client.send_lag_ms), connections=client.connections,
        cpu={k: round(v, 3) for k, v in CpuMeter.between(before, after).items()},
        client_cpu=round(client.client_cpu / client.duration, 3) if client.duration else 0.0,
        stored=stored, expected=warm_n + n, processor_lag_s=lag, load=load,
        workers=args.workers if kind != "sqlite" else None, threads=args.threads if kind != "sqlite" else None)
    report.passed = report.holds(rate)
    return report


def describe(r: RunReport) -> str:
    """Return one run as a few readable lines."""
    lat = r.latency_ms
    lag = "not reached" if r.processor_lag_s is None else f"{r.processor_lag_s:.2f} s"
    profile = (f" ({r.workers or 'default'} workers × {r.threads or 'default'} threads)" if r.db != "sqlite" else "")
    return (f"{r.db}{profile}: target {r.rate:,.0f} req/s × {r.seconds:.0f} s → achieved {r.achieved_rate:,.1f} req/s, "
            f"{r.ok:,}/{r.requests:,} ok, errors {r.errors or 'none'}\n"
            f"  latency ms p50 {lat.get('p50', float('nan')):.1f}  p90 {lat.get('p90', float('nan')):.1f}  "
            f"p99 {lat.get('p99', float('nan')):.1f}  p99.9 {lat.get('p99.9', float('nan')):.1f}  "
            f"max {lat.get('max', float('nan')):.1f}   (client send lag p99 {r.send_lag_ms.get('p99', 0):.1f} ms, "
            f"{r.connections} connections)\n"
            f"  CPU cores: {', '.join(f'{k} {v:.2f}' for k, v in r.cpu.items() if k != 'machine_busy_share')}, "
            f"client {r.client_cpu:.2f}; machine busy {r.cpu['machine_busy_share']:.0%}\n"
            f"  stored {r.stored:,}/{r.expected:,}; processor lag after the last answer {lag}; load {r.load}")


# --- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("pg", "sqlite", "both", "ceiling", "lean"), default="both",
                        help="ceiling, lean: gunicorn serving bench/bare_app.py (no Flask; lean appends to PostgreSQL)")
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="requests/s (default 1,000)")
    parser.add_argument("--seconds", type=float, default=TARGET_SECONDS, help="measured seconds (default 60)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds at the same rate before the clock")
    parser.add_argument("--workers", type=int, help="gunicorn workers of the PostgreSQL profile "
                        "(default: deploy/gunicorn.conf.py's, 2 × CPUs + 1 and at most 8)")
    parser.add_argument("--threads", type=int, help="threads per gunicorn worker (default: the profile's, 4)")
    parser.add_argument("--connections", type=int, default=MAX_CONNECTIONS, help="client connections at most")
    parser.add_argument("--find-rate", action="store_true",
                        help=f"step the rate ({', '.join(map(str, FIND_RATES))} …) and report the highest held")
    parser.add_argument("--repeat", type=int, default=1, help="runs per database")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", PG_DEFAULT))
    parser.add_argument("--json", type=Path, help="also write every figure as JSON")
    parser.add_argument("--wait-load", type=float, help="before each run, wait (up to 10 min) for a lower load")
    parser.add_argument("--check", action="store_true", help="exit 1 when a PostgreSQL run misses the target")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.warmup < 0:
        parser.error("need --rate > 0, --seconds > 0 and --warmup ≥ 0")
    if args.db != "sqlite" and make_url(args.pg_url).host not in (LOOPBACK, "localhost"):
        parser.error("--pg-url must point at 127.0.0.1: the benchmark talks to nothing else")
    return args


def find_rate(kind: str, args: argparse.Namespace, reports: list[RunReport]) -> float | None:
    """Step the rate up until a step fails; return the highest rate held (p99 ≤ 200 ms, no error)."""
    best = None
    for step, rate in enumerate(FIND_RATES):
        report = measure(kind, rate, args, f"f{step}")
        reports.append(report)
        if not report.passed:
            break
        best = rate
    return best


def measure(kind: str, rate: float, args: argparse.Namespace, step: str) -> RunReport:
    """Run once (after waiting for a quiet machine if asked) and print the run."""
    if args.wait_load:
        wait_for_quiet(args.wait_load, 600)
    print(f"{kind}: {rate:,.0f} req/s for {args.seconds:.0f} s …", file=sys.stderr, flush=True)
    report = run_once(kind, rate, args.seconds, args, step)
    print(describe(report), flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the load test and print the figures, with pass/fail against the PostgreSQL target."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up servers and databases as on Ctrl+C
    reports: list[RunReport] = []
    held: dict[str, float | None] = {}
    for kind in ("pg", "sqlite") if args.db == "both" else (args.db,):
        if args.find_rate:
            held[kind] = find_rate(kind, args, reports)
            print(f"{kind}: highest rate held (p99 ≤ {TARGET_P99_MS:.0f} ms, no error): "
                  f"{held[kind] or 'none'} req/s\n", flush=True)
            continue
        for run in range(args.repeat):
            reports.append(measure(kind, args.rate, args, f"r{run}"))
    failed = False
    for r in reports:
        if r.db == "pg" and not args.find_rate:
            target = r.rate >= TARGET_RATE and r.seconds >= TARGET_SECONDS and r.passed
            failed |= not target
            print(f"PostgreSQL target ({TARGET_RATE:,} req/s for {TARGET_SECONDS} s, p99 ≤ {TARGET_P99_MS:.0f} ms, "
                  f"zero errors): {'PASS' if target else 'FAIL'} (p99 {r.latency_ms.get('p99', float('nan')):.1f} ms, "
                  f"{r.achieved_rate:,.0f} req/s, errors {sum(r.errors.values())})", flush=True)
    if args.json:
        args.json.write_text(json.dumps({
            "cpus": os.cpu_count(), "python": platform.python_version(), "held": held,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "runs": [asdict(r) for r in reports],
        }, indent=2))
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
