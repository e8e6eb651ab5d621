"""Benchmark the events pipeline: API ingest, processing and end-to-end, beside the raw insert ceiling.

Run from the project root (see bench/README.md):

    .venv/bin/python bench/ingest.py                      # 100,000 events, SQLite and PostgreSQL, 3 runs
    .venv/bin/python bench/ingest.py --short --db sqlite  # 20,000 events, for CI
    .venv/bin/python bench/ingest.py --json out.json

Every phase gets a fresh database (a temporary SQLite file, or a temporary PostgreSQL database that is
dropped afterwards) and its own `growth serve` processes on 127.0.0.1; nothing else is contacted.
The client (this process) talks to the server over one keep-alive HTTP connection, so the figures
include HTTP, the WSGI stack, signature checks, validation and the durable commit.

Per run and database:
  1. raw ceiling: the same rows inserted with the bare driver (sqlite3 / psycopg executemany, and
     psycopg COPY), 1,000 rows per transaction, into a table with platform_events' schema;
  2. API ingest: `growth serve --no-background`, pre-signed batches POSTed one after another;
  3. processor alone: `drain(app)` (what `growth events process` runs) in its own process, timed inside it;
  4. backlog: the events ingested again into a fresh database, then `growth serve` with its `growth worker`
     child, timed from the child's start until GET /api/v1/funnel counts every registration sent;
  5. live: a fresh database and `growth serve` with its `growth worker` child, timed from the first POST
     until the funnel counts every registration sent.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import math
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url
from standardwebhooks import Webhook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: growth is importable either way

from harness import LOOPBACK, BenchError, free_port, median_of, sqlite_text, tail, wait_for_quiet  # noqa: E402

from growth.demodata import generate_events  # noqa: E402
from growth.timeutil import SHANGHAI, utcnow  # noqa: E402

BATCH = 1000
SHORT_EVENTS = 20_000
EVENTS_PER_INVESTOR = 4.2  # a little under the generator's ≈4.3, so one generation is nearly always enough
INGEST_TARGET = 20_000  # events/s through the API on SQLite (the issue)
PROCESS_TARGET = 5_000  # events/s processed, SQLite and PostgreSQL (the issue)
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ANALYST_EMAIL = "bench-analyst@bench.growth.local"
ANALYST_PASSWORD = "bench-analyst-password"
SERVER_START_TIMEOUT = 90.0
WORKER_READY = "growth worker running:"  # what `growth serve`'s worker child prints once its processor runs
# The funnel over ~23,000 investors costs the server ~0.3 s of CPU (in the processor's process, under one GIL), so
# it is not polled blindly: the processor's cursor is watched straight from the database (free for the server),
# and once it has passed the last event the funnel is asked until it shows every registration.
CURSOR_POLL_SECONDS = 0.05
FUNNEL_POLL_SECONDS = 0.1
PROGRESS_SQL = ("SELECT (SELECT coalesce(max(seq), 0) FROM platform_events), "
                "(SELECT coalesce(max(position), 0) FROM processor_cursors WHERE name = 'projections')")

# Runs in a child process: the processor's own rate, without interpreter and app start-up.
_DRAIN_SCRIPT = textwrap.dedent("""
    import json, time
    from growth.app import create_app
    from growth.events.processor import drain
    app = create_app({"BACKGROUND_WORK": False})
    started = time.perf_counter()
    processed = drain(app)
    print(json.dumps({"processed": processed, "seconds": time.perf_counter() - started}))
""")


# --- events -----------------------------------------------------------------------------------------


@dataclass
class Workload:
    """The events of a benchmark, and what the funnel must show once they are processed."""

    events: list[dict[str, Any]]
    registrations: int
    generated_at: datetime


def make_workload(n: int, seed: int) -> Workload:
    """Generate exactly `n` demo events (≈4.3 per investor), oldest first."""
    now = utcnow()
    investors = math.ceil(n / EVENTS_PER_INVESTOR) + 10
    while True:
        events = generate_events(seed=seed, investors=investors, now=now)
        if len(events) >= n:
            break
        investors = math.ceil(investors * 1.1) + 10
    events = events[:n]
    registered = {e["user"]["id"] for e in events if e["type"] == "user.registered"}
    return Workload(events, len(registered), now)


def relabel(workload: Workload, tag: str) -> None:
    """Give every event an id unique to this run (each run has a fresh database; this is belt and braces)."""
    for i, event in enumerate(workload.events, start=1):
        event["id"] = f"evt_{tag}_{i}"


def bodies(events: list[dict[str, Any]], batch: int) -> list[tuple[bytes, int]]:
    """Serialise the events into request bodies of `batch` events."""
    return [(orjson.dumps({"events": events[i:i + batch]}), len(events[i:i + batch]))
            for i in range(0, len(events), batch)]


def sign_all(payloads: list[tuple[bytes, int]], secret: str, tag: str) -> list[tuple[bytes, int, dict[str, str]]]:
    """Sign every body now, with the standardwebhooks library, so signing is outside the timing."""
    hook = Webhook(secret)
    at = datetime.now(UTC)
    signed = []
    for i, (body, count) in enumerate(payloads):
        msg_id = f"msg_{tag}_{i}"
        signed.append((body, count, {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": hook.sign(msg_id, at, body.decode()),
        }))
    return signed


def log_rows(events: list[dict[str, Any]], received: datetime) -> list[tuple[Any, ...]]:
    """Return the rows the API would append for these events (id, type, occurred_at, user, payload, received_at)."""
    return [(e["id"], e["type"], datetime.fromisoformat(e["occurred_at"]).astimezone(UTC), e["user"]["id"],
             orjson.dumps(e).decode(), received) for e in events]


# --- databases --------------------------------------------------------------------------------------


class Target:
    """One fresh database for one run: its URL for the app, and the raw-ceiling measurements."""

    name: str
    _reader: Any = None  # the direct connection `progress` opens (sqlite3 or psycopg: both have execute)

    def app_env(self) -> dict[str, str]:
        """Return the GROWTH_* variables that point the app at this database."""
        raise NotImplementedError

    def ceilings(self, rows: list[tuple[Any, ...]], batch: int) -> dict[str, float]:
        """Insert the rows with the bare driver; return events/s per method."""
        raise NotImplementedError

    def progress(self) -> tuple[int, int]:
        """Return the log's last seq and the processor's cursor, read directly (costs the server nothing)."""
        raise NotImplementedError

    def stored(self) -> int:
        """Return how many events the log holds (after `progress`, on the same direct connection)."""
        self.progress()
        return int(self._reader.execute("SELECT count(*) FROM platform_events").fetchone()[0])

    def drop(self) -> None:
        """Remove the database."""
        raise NotImplementedError


class SqliteTarget(Target):
    """A SQLite file in the run's temporary instance folder (the embedded default)."""

    name = "sqlite"

    def __init__(self, instance: Path) -> None:
        self.instance = instance
        self.path = instance / "growth.db"
        self._reader: sqlite3.Connection | None = None

    def app_env(self) -> dict[str, str]:
        return {}  # the default: growth.db in GROWTH_INSTANCE_PATH

    def ceilings(self, rows: list[tuple[Any, ...]], batch: int) -> dict[str, float]:
        # Same schema (copied from the migrated database) and the same pragmas as the app, in a separate
        # file so the app's own database stays empty.
        with contextlib.closing(sqlite3.connect(self.path)) as app_db:
            ddl = [s for (s,) in app_db.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'platform_events' AND sql IS NOT NULL")]
        raw_path = self.instance / "raw-ceiling.db"
        conn = sqlite3.connect(raw_path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            for statement in ddl:
                conn.execute(statement)
            text_rows = [(a, b, sqlite_text(c), d, e, sqlite_text(f)) for a, b, c, d, e, f in rows]
            insert = ("INSERT INTO platform_events (event_id, type, occurred_at, user_id, payload, received_at) "
                      "VALUES (?, ?, ?, ?, ?, ?)")
            started = time.perf_counter()
            for i in range(0, len(text_rows), batch):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(insert, text_rows[i:i + batch])
                conn.execute("COMMIT")
            elapsed = time.perf_counter() - started
            stored = conn.execute("SELECT count(*) FROM platform_events").fetchone()[0]
        finally:
            conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{raw_path}{suffix}").unlink(missing_ok=True)
        if stored != len(rows):
            raise BenchError(f"raw ceiling stored {stored} of {len(rows)} rows")
        return {"executemany": len(rows) / elapsed}

    def progress(self) -> tuple[int, int]:
        if self._reader is None:
            # A read-only WAL reader in autocommit mode: each query is its own short read, so it takes no lock
            # the server's writers wait for and never holds back a checkpoint.
            self._reader = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30, isolation_level=None)
        last, position = self._reader.execute(PROGRESS_SQL).fetchone()
        return last, position

    def drop(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


class PostgresTarget(Target):
    """A temporary PostgreSQL database, created for the run and dropped after it."""

    name = "postgresql"

    def __init__(self, base_url: str, db_name: str) -> None:
        url = make_url(base_url)
        self.admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.db_name = db_name
        self._reader: psycopg.Connection | None = None
        self.url = url.set(database=db_name).render_as_string(hide_password=False)
        self.plain = url.set(drivername="postgresql", database=db_name).render_as_string(hide_password=False)
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
        self.created = True

    def app_env(self) -> dict[str, str]:
        return {"GROWTH_DATABASE_URL": self.url}

    def ceilings(self, rows: list[tuple[Any, ...]], batch: int) -> dict[str, float]:
        results: dict[str, float] = {}
        columns = "(event_id, type, occurred_at, user_id, payload, received_at)"
        with psycopg.connect(self.plain) as conn:
            for method in ("executemany", "copy"):
                table = f"raw_{method}"
                conn.execute(f"CREATE TABLE {table} (LIKE platform_events INCLUDING ALL)")
                conn.commit()
                started = time.perf_counter()
                for i in range(0, len(rows), batch):
                    chunk = rows[i:i + batch]
                    with conn.cursor() as cur:
                        if method == "executemany":
                            cur.executemany(f"INSERT INTO {table} {columns} VALUES (%s, %s, %s, %s, %s, %s)", chunk)
                        else:
                            with cur.copy(f"COPY {table} {columns} FROM STDIN") as copy:
                                for row in chunk:
                                    copy.write_row(row)
                    conn.commit()
                elapsed = time.perf_counter() - started
                stored = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                conn.execute(f"DROP TABLE {table}")
                conn.commit()
                if stored != len(rows):
                    raise BenchError(f"raw ceiling ({method}) stored {stored} of {len(rows)} rows")
                results[method] = len(rows) / elapsed
        return results

    def progress(self) -> tuple[int, int]:
        if self._reader is None:
            self._reader = psycopg.connect(self.plain, autocommit=True)  # one connection: a new one forks a backend
        last, position = self._reader.execute(PROGRESS_SQL).fetchone()
        return last, position

    def drop(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if not self.created:
            return
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.db_name)))
        self.created = False


# --- the product's processes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """A running `growth serve`: its port, process id, and when it (and its worker child) first answered."""

    port: int
    pid: int
    ready_at: float  # perf_counter: the web server answered and, with background work, the worker child runs


class Instance:
    """One run's environment: a temporary instance folder, a database, a secret, CLI and servers."""

    def __init__(self, target_factory: Callable[[Path], Target], tag: str) -> None:
        self.tag = tag
        self.dir = Path(tempfile.mkdtemp(prefix=f"growth-bench-{tag}-"))
        self.secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        try:
            self.target = target_factory(self.dir)
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GROWTH_")}
        self.env.update({
            "GROWTH_INSTANCE_PATH": str(self.dir),
            "GROWTH_SECRET_KEY": os.urandom(16).hex(),
            "GROWTH_WEBHOOK_SECRET": self.secret,
            "PYTHONPATH": str(ROOT),
            **self.target.app_env(),
        })
        self.token = ""

    def cli(self, *args: str) -> str:
        """Run a `growth` command against this instance's database; return its stdout."""
        done = subprocess.run([sys.executable, "-m", "growth.cli", *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise BenchError(f"growth {' '.join(args[:2])} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def prepare(self) -> None:
        """Create the schema and an analyst with an API token (for the funnel)."""
        self.cli("db", "upgrade")
        self.cli("users", "create", ANALYST_EMAIL, "--role", "analyst", "--password", ANALYST_PASSWORD)
        self.token = self.cli("tokens", "create", ANALYST_EMAIL).strip().splitlines()[-1].strip()

    @contextlib.contextmanager
    def server(self, *, background: bool) -> Iterator[Server]:
        """Run `growth serve` on a free loopback port until the block ends."""
        port = free_port()
        args = [sys.executable, "-m", "growth.cli", "serve", "--host", LOOPBACK, "--port", str(port)]
        if not background:
            args.append("--no-background")
        log_path = self.dir / f"serve-{port}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            self.wait_ready(proc, port, log_path)
            if background:
                self.wait_worker(proc, log_path)
            try:
                yield Server(port, proc.pid, time.perf_counter())
            except BenchError as err:
                raise BenchError(f"{err}\n--- server log (tail) ---\n{tail(log_path)}") from err
            if proc.poll() is not None:
                raise BenchError(f"the server exited during the run:\n{tail(log_path)}")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    @staticmethod
    def wait_ready(proc: subprocess.Popen, port: int, log_path: Path) -> None:
        """Wait until a web server (`growth serve`, gunicorn) answers on `port`."""
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"the server did not start:\n{tail(log_path)}")
            try:
                conn = http.client.HTTPConnection(LOOPBACK, port, timeout=2)
                conn.request("GET", "/api/v1/openapi.json")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            time.sleep(0.1)
        raise BenchError(f"the server did not answer within {SERVER_START_TIMEOUT:.0f} s:\n{tail(log_path)}")

    @staticmethod
    def wait_worker(proc: subprocess.Popen, log_path: Path) -> None:
        """Wait until `growth serve`'s worker child (or a `growth worker`) says it runs."""
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"the server exited:\n{tail(log_path)}")
            if WORKER_READY in log_path.read_text(errors="replace"):
                return
            time.sleep(0.02)
        raise BenchError(f"the worker child did not start within {SERVER_START_TIMEOUT:.0f} s:\n{tail(log_path)}")

    def drain(self) -> tuple[int, float]:
        """Process the whole log in a child process (the code path of `growth events process`)."""
        out = subprocess.run([sys.executable, "-c", _DRAIN_SCRIPT], env=self.env, cwd=ROOT, capture_output=True,
                             text=True, timeout=3600)
        if out.returncode != 0:
            raise BenchError(f"processing failed: {out.stderr.strip()[-2000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        return result["processed"], result["seconds"]

    def close(self) -> None:
        """Drop the database and remove the instance folder."""
        try:
            self.target.drop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# --- the client -------------------------------------------------------------------------------------


def post_all(port: int, signed: list[tuple[bytes, int, dict[str, str]]]) -> float:
    """POST every signed batch over one keep-alive connection; check each answer; return the seconds taken."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=120)
    try:
        started = time.perf_counter()
        for i, (body, count, headers) in enumerate(signed):
            conn.request("POST", "/api/v1/events", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise BenchError(f"batch {i}: HTTP {response.status} {data[:500]!r}")
            result = orjson.loads(data)
            if result["accepted"] != count or result["duplicates"] or result["rejected"]:
                raise BenchError(f"batch {i}: accepted {result['accepted']} of {count}, "
                                 f"duplicates {result['duplicates']}, rejected {result['rejected'][:3]}")
        return time.perf_counter() - started
    finally:
        conn.close()


def funnel_registered(conn: http.client.HTTPConnection, token: str, query: str) -> int | None:
    """Return the funnel's first step (registered) for the whole cohort, or None on a server error."""
    conn.request("GET", f"/api/v1/funnel?{query}", headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    data = response.read()
    if response.status >= 500:
        # Seen on SQLite while the processor writes: the token's last_used_at touch cannot upgrade the
        # request's read transaction ("database is locked"). Counted and reported, then polled again.
        return None
    if response.status != 200:
        raise BenchError(f"funnel: HTTP {response.status} {data[:300]!r}")
    return orjson.loads(data)["total"]["counts"][0]


def funnel_query(workload: Workload) -> str:
    """Return a funnel query whose cohort covers every registration of the workload."""
    today = workload.generated_at.astimezone(SHANGHAI).date()
    return urlencode({"start": (today - timedelta(days=400)).isoformat(),
                      "end": (today + timedelta(days=1)).isoformat(), "group_by": "none"})


# --- one run ----------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """The figures of one run on one database (events/s unless named otherwise)."""

    db: str
    run: int
    events: int
    ceiling: dict[str, float] = field(default_factory=dict)
    ingest: float = 0.0  # API, serve --no-background
    process: float = 0.0  # drain() in its own process, timed inside it
    backlog: float = 0.0  # serve with its processor, from ready until the funnel shows the whole backlog
    e2e: float = 0.0  # serve with its processor, from the first POST until the funnel shows them all
    ingest_with_processor: float = 0.0  # API, while the worker child's processor works
    seconds: dict[str, float] = field(default_factory=dict)
    funnel_errors: int = 0  # HTTP 5xx answers of GET /api/v1/funnel while polling
    load: list[float] = field(default_factory=list)


def wait_for_funnel(instance: Instance, port: int, workload: Workload, started: float) -> tuple[float, int]:
    """Wait until the funnel shows every registration sent; return the seconds since `started` and 5xx answers."""
    timeout = max(120.0, len(workload.events) / 500)
    last, _ = instance.target.progress()  # every POST has been answered: the log is complete
    while True:
        _, position = instance.target.progress()
        if position >= last:
            break
        if time.perf_counter() - started > timeout:
            raise BenchError(f"the processor reached seq {position} of {last} in {timeout:.0f} s")
        time.sleep(CURSOR_POLL_SECONDS)
    query = funnel_query(workload)
    errors = 0
    poll = http.client.HTTPConnection(LOOPBACK, port, timeout=120)
    try:
        while True:
            shown = funnel_registered(poll, instance.token, query)
            elapsed = time.perf_counter() - started
            if shown is None:
                errors += 1
            elif shown == workload.registrations:
                return elapsed, errors
            elif shown > workload.registrations:
                raise BenchError(f"the funnel shows {shown} registrations; {workload.registrations} sent")
            if elapsed > timeout:
                raise BenchError(f"the funnel showed {shown} of {workload.registrations} registrations "
                                 f"after {elapsed:.0f} s ({errors} server errors)")
            time.sleep(FUNNEL_POLL_SECONDS)
    finally:
        poll.close()


def run_once(kind: str, run: int, workload: Workload, args: argparse.Namespace) -> RunResult:
    """Measure the ceiling, API ingest, processing and end-to-end, each on a fresh database."""
    n = len(workload.events)
    result = RunResult(kind, run, n, load=[round(x, 2) for x in os.getloadavg()])
    stamp = f"{os.getpid()}_{run}_{int(time.time())}"

    @contextlib.contextmanager
    def fresh(phase: str) -> Iterator[tuple[Instance, list[tuple[bytes, int]]]]:
        tag = f"{kind[:2]}{stamp}{phase}"
        relabel(workload, tag)
        payloads = bodies(workload.events, args.batch)
        if kind == "sqlite":
            instance = Instance(SqliteTarget, tag)
        else:
            instance = Instance(lambda _dir: PostgresTarget(args.pg_url, f"growth_bench_{stamp}_{phase}"), tag)
        try:
            instance.prepare()
            yield instance, payloads
        finally:
            instance.close()

    def post(instance: Instance, server: Server, payloads: list[tuple[bytes, int]], name: str) -> float:
        seconds = post_all(server.port, sign_all(payloads, instance.secret, instance.tag))
        result.seconds[name] = seconds
        return n / seconds

    # A: the raw ceiling, API ingest without the processor, then the processor alone on that log.
    with fresh("a") as (instance, payloads):
        result.ceiling = instance.target.ceilings(log_rows(workload.events, utcnow()), args.batch)
        with instance.server(background=False) as server:
            result.ingest = post(instance, server, payloads, "ingest")
        processed, seconds = instance.drain()
        if processed != n:
            raise BenchError(f"the processor processed {processed} of {n} events")
        result.seconds["process"] = seconds
        result.process = n / seconds

    # B: a backlog in the log, then `growth serve` with its processor until the funnel shows it all.
    with fresh("b") as (instance, payloads):
        with instance.server(background=False) as server:
            post(instance, server, payloads, "ingest_b")
        with instance.server(background=True) as server:
            # Ready time is when the worker child printed that it runs (its processor starts then, ±0.02 s).
            seconds, errors = wait_for_funnel(instance, server.port, workload, server.ready_at)
        result.funnel_errors += errors
        result.seconds["backlog"] = seconds
        result.backlog = n / seconds

    # C: live, from the first POST until the funnel shows every registration.
    with fresh("c") as (instance, payloads):
        with instance.server(background=True) as server:
            signed = sign_all(payloads, instance.secret, instance.tag)
            started = time.perf_counter()
            posting = post_all(server.port, signed)
            seconds, errors = wait_for_funnel(instance, server.port, workload, started)
        result.funnel_errors += errors
        result.seconds.update(ingest_with_processor=posting, e2e=seconds)
        result.ingest_with_processor = n / posting
        result.e2e = n / seconds

    result.load += [round(x, 2) for x in os.getloadavg()]
    return result


# --- report -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the report."""

    label: str
    value: Callable[[RunResult], float | None]
    target: int | None = None


def rows_for(kind: str) -> list[Row]:
    """Return the report lines of a database."""
    rows = [Row("raw ceiling: driver executemany", lambda r: r.ceiling.get("executemany"))]
    if kind == "postgresql":
        rows.append(Row("raw ceiling: psycopg COPY", lambda r: r.ceiling.get("copy")))
    rows += [
        Row("API ingest (serve --no-background)", lambda r: r.ingest, INGEST_TARGET if kind == "sqlite" else None),
        Row("processor alone (drain)", lambda r: r.process, PROCESS_TARGET),
        Row("backlog: serve until the funnel shows it", lambda r: r.backlog, PROCESS_TARGET),
        Row("live: first POST until the funnel shows", lambda r: r.e2e, PROCESS_TARGET),
        Row("API ingest while processing (info)", lambda r: r.ingest_with_processor),
    ]
    return rows


def summarise(results: list[RunResult]) -> list[dict[str, Any]]:
    """Return per-database, per-measure medians, ranges and median ratios to the ceilings."""
    summary = []
    for kind in dict.fromkeys(r.db for r in results):
        runs = [r for r in results if r.db == kind]
        for row in rows_for(kind):
            values = [v for r in runs if (v := row.value(r)) is not None]
            ratios = {m: median_of([row.value(r) / r.ceiling[m] for r in runs if row.value(r) and r.ceiling.get(m)])
                      for m in ("executemany", "copy") if any(r.ceiling.get(m) for r in runs)}
            median = median_of(values)
            summary.append({
                "db": kind, "measure": row.label, "median": median, "min": min(values), "max": max(values),
                "ratio_executemany": ratios.get("executemany"), "ratio_copy": ratios.get("copy"),
                "target": row.target, "met": None if row.target is None else median >= row.target,
            })
    return summary


def table(summary: list[dict[str, Any]]) -> str:
    """Format the summary as a plain-text table."""
    def ratio(v: float | None) -> str:
        return "" if v is None or math.isnan(v) else f"{v:.2f}"

    lines = [f"{'db':<11}{'measure':<41}{'median ev/s':>12}{'min–max':>19}{'×execmany':>11}{'×COPY':>8}"
             f"{'target':>10}  ok"]
    for s in summary:
        target = f"≥{s['target']:,}" if s["target"] else ""
        met = "" if s["met"] is None else ("yes" if s["met"] else "NO")
        lines.append(f"{s['db']:<11}{s['measure']:<41}{s['median']:>12,.0f}{s['min']:>10,.0f}–{s['max']:<8,.0f}"
                     f"{ratio(s['ratio_executemany']):>11}{ratio(s['ratio_copy']):>8}{target:>10}  {met}")
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per run (default 100,000)")
    parser.add_argument("--short", action="store_true", help=f"{SHORT_EVENTS:,} events, for CI")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--runs", type=int, default=3, help="runs per database; the report shows medians")
    parser.add_argument("--batch", type=int, default=BATCH, help="events per request (default 1,000)")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the generated events")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", PG_DEFAULT),
                        help="a PostgreSQL server on 127.0.0.1 (a database per run is created there and dropped)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--wait-load", type=float, metavar="LOAD",
                        help="before each run, wait (up to 20 min) until the 1-minute load average is below LOAD")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.short:
        args.events = SHORT_EVENTS
    if args.events < args.batch or args.runs < 1 or not 1 <= args.batch <= 5000:
        parser.error("need --events ≥ --batch, --runs ≥ 1 and 1 ≤ --batch ≤ 5000")
    host = make_url(args.pg_url).host
    if args.db != "sqlite" and host not in (LOOPBACK, "localhost"):
        parser.error("--pg-url must point at 127.0.0.1: the benchmark talks to nothing else")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the report."""
    args = parse_args(argv)
    # SIGTERM ends the benchmark like Ctrl+C does, so servers and temporary databases are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print(f"generating {args.events:,} events (seed {args.seed}) …", file=sys.stderr, flush=True)
    workload = make_workload(args.events, args.seed)
    results: list[RunResult] = []
    for run in range(1, args.runs + 1):
        for kind in kinds:
            if args.wait_load:
                wait_for_quiet(args.wait_load, 20 * 60)
            print(f"run {run}/{args.runs} on {kind} …", file=sys.stderr, flush=True)
            result = run_once(kind, run, workload, args)
            results.append(result)
            print(f"  ceiling {', '.join(f'{k} {v:,.0f}' for k, v in result.ceiling.items())}; "
                  f"ingest {result.ingest:,.0f}; processor {result.process:,.0f}; backlog {result.backlog:,.0f}; "
                  f"live {result.e2e:,.0f}; ingest while processing {result.ingest_with_processor:,.0f} events/s; "
                  f"seconds {', '.join(f'{k} {v:.2f}' for k, v in result.seconds.items())}; "
                  f"funnel 5xx {result.funnel_errors}; load {result.load}",
                  file=sys.stderr, flush=True)
    summary = summarise(results)
    print(f"\n{args.events:,} events in batches of {args.batch:,}, {workload.registrations:,} registrations; "
          f"{args.runs} run(s) per database, median [min–max]; {os.cpu_count()} CPUs\n")
    print(table(summary))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "events": args.events, "batch": args.batch, "runs": args.runs, "seed": args.seed,
            "registrations": workload.registrations, "cpus": os.cpu_count(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "started": workload.generated_at.isoformat(),
            "summary": summary, "results": [r.__dict__ for r in results],
        }, indent=2, default=str))
    missed = [s for s in summary if s["met"] is False]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
