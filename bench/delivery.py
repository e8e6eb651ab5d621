"""Benchmark message delivery: enqueueing rendered messages, and one worker sending them, beside the ceilings.

Run from the project root (see bench/README.md):

    .venv/bin/python bench/delivery.py                       # 100,000 enqueued, 20,000 sent; both databases
    .venv/bin/python bench/delivery.py --short --db sqlite   # a CI-size run (seconds)
    .venv/bin/python bench/delivery.py --json out.json

Every phase gets a fresh database (a temporary SQLite file, or a temporary PostgreSQL database that is
dropped afterwards), migrated with `growth.migrate.upgrade`; the provider is a fake Aliyun SMS endpoint
(bench/fake_sms_server.py) in its own process on 127.0.0.1 that answers every `SendSms` after 5 ms.
Nothing else is contacted.

Per run and database:
  1. enqueue ceiling: the same outbox rows inserted with the bare driver in one transaction (sqlite3 /
     psycopg executemany, and psycopg COPY) into a table with outbox_messages' schema;
  2. enqueue: `enqueue_many` of N `NewMessage`s (service SMS, rendered text and template params, one per
     investor; the investors are created first, untimed) read from a generator in one transaction, in a
     child process that samples its own RSS; the same again with N/10 messages to show memory is flat;
  3. send ceiling: the product's Aliyun adapter (`Deliverer.adapter`) calling the fake straight from a
     thread pool as large as the worker's, with no database;
  4. send: M messages enqueued (untimed), then one `growth worker` process; the clock runs from the
     worker saying it runs until no message is waiting; then every message must be `sent` and the fake
     must have seen each `OutId` exactly once.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: growth and channels are importable either way

from harness import (  # noqa: E402
    LOOPBACK,
    BenchError,
    RssSampler,
    free_port,
    median_of,
    sqlite_text,
    tail,
    wait_for_quiet,
)

from channels.adapters.port import Channel, MessageClass  # noqa: E402
from channels.outbox import NewMessage  # noqa: E402

ENQUEUE_MESSAGES = 100_000
SEND_MESSAGES = 20_000
SHORT_ENQUEUE = 5_000
SHORT_SEND = 1_000
LATENCY = 0.005  # seconds the fake provider takes to answer (the issue)
ENQUEUE_TARGET_SECONDS = 10.0  # 100,000 messages (the issue)
SEND_TARGET = 1_000  # messages/s, one worker (the issue)
MEMORY_FLAT_RATIO = 2.0  # 10× the messages may cost at most this many times the memory growth ("flat")
ENQUEUE_CHUNK = 5000  # enqueue_many's rows per INSERT: below it both sizes are one chunk and the ratio says nothing
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
START_TIMEOUT = 90.0
WORKER_READY = "growth worker running:"
POLL_SECONDS = 0.05
WAITING_SQL = "SELECT count(*) FROM outbox_messages WHERE status IN ('queued', 'deferred', 'sending')"
STATUS_SQL = "SELECT status, count(*) FROM outbox_messages GROUP BY status ORDER BY status"
ACCESS_KEY_ID = "LTAI-bench-key"
ACCESS_KEY_SECRET = "bench-secret"
PRODUCTS = ("稳盈3月期", "稳盈6月期", "稳盈12月期", "季季享", "月月盈")


# --- the child processes (enqueue, seeding, the send ceiling) -----------------------------------------


def rendered(i: int, tag: str, investor_id: int, user_id: str) -> NewMessage:
    """Return the i-th message: a rendered service SMS (a repayment notice) to one investor."""
    product = PRODUCTS[i % len(PRODUCTS)]
    amount = f"{1000 + (i * 37) % 90000}.{i % 100:02d}"
    name = f"投资人{i % 1000:03d}"
    return NewMessage(
        sender="system", cause=f"repayment-{tag}-{i}", channel=Channel.SMS, message_class=MessageClass.SERVICE,
        content={"text": f"【投资人增长】{name}您好，您出借的“{product}”已于今日回款{amount}元，请登录查看。",
                 "template_code": "SMS_305001", "params": {"name": name, "product": product, "amount": amount}},
        investor_id=investor_id, user_id=user_id,
    )


def child_seed(n: int) -> dict[str, Any]:
    """Create `n` investors with phones in bulk (the recipients; not timed by the benchmark)."""
    from growth.app import create_app
    from growth.db import get_db, insert_many, table_of
    from growth.investors.models import Investor
    from growth.timeutil import utcnow

    app = create_app({"BACKGROUND_WORK": False})
    table = table_of(Investor)
    now = utcnow()
    started = time.perf_counter()
    with get_db(app).session_scope(write=True) as session:
        conn = session.connection()
        for start in range(0, n, 5000):
            insert_many(conn, table, [{
                "platform_user_id": f"bench_u{i:07d}", "referral_code": f"B{i:09d}", "phone": f"+86139{i:08d}",
                "name": f"投资人{i}", "registered_at": now, "investment_count": 0, "investment_total_fen": 0,
                "holdings_fen": 0, "deposit_total_fen": 0, "withdrawal_total_fen": 0,
            } for i in range(start, min(n, start + 5000))])
    return {"investors": n, "seconds": time.perf_counter() - started}


def child_enqueue(n: int, tag: str) -> dict[str, Any]:
    """Enqueue `n` messages from a generator in one transaction; time it and sample the resident set."""
    from sqlalchemy import select

    from channels.outbox import enqueue_many
    from growth.app import create_app
    from growth.db import get_db
    from growth.investors.models import Investor
    from growth.timeutil import utcnow

    app = create_app({"BACKGROUND_WORK": False})
    db = get_db(app)
    with db.session_scope() as session:
        investors = list(session.execute(select(Investor.id, Investor.platform_user_id)
                                         .order_by(Investor.id).limit(n)))
    if len(investors) < n:
        raise BenchError(f"only {len(investors)} investors for {n} messages")
    rendered(0, tag, 0, "")  # import and warm everything the generator uses before the baseline
    gc.collect()
    now = utcnow()
    messages = (rendered(i, tag, investor_id, user_id) for i, (investor_id, user_id) in enumerate(investors))
    with RssSampler() as rss:
        started = time.perf_counter()
        with db.session_scope(write=True) as session:
            result = enqueue_many(messages, session=session, now=now)
        seconds = time.perf_counter() - started
    return {"messages": n, "inserted": len(result.ids), "existing": result.existing, "seconds": seconds,
            "rss_start_kb": rss.start, "rss_peak_kb": rss.peak, "rss_growth_kb": rss.peak - rss.start}


def child_send_ceiling(n: int, threads: int) -> dict[str, Any]:
    """Call the fake `n` times through the product's adapter from `threads` threads, without a database."""
    from concurrent.futures import ThreadPoolExecutor

    from channels.adapters.port import Outgoing
    from channels.delivery import Deliverer
    from growth.app import create_app

    app = create_app({"BACKGROUND_WORK": False})
    deliverer = Deliverer(app)
    adapter = deliverer.adapter("sms", "aliyun", deliverer.config())  # settings read once, before the clock
    deliverer.close()
    first = rendered(0, "ceiling", 1, "u")
    messages = [Outgoing(message_id=f"ceiling-{i}", channel=Channel.SMS, message_class=MessageClass.SERVICE,
                         to=f"+86139{i:08d}", text=first.content["text"], template_code="SMS_305001",
                         params=dict(first.content["params"])) for i in range(n)]
    outcomes: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        started = time.perf_counter()
        for result in pool.map(adapter.send, messages):
            outcomes[str(result.outcome)] = outcomes.get(str(result.outcome), 0) + 1
        seconds = time.perf_counter() - started
    return {"messages": n, "threads": threads, "seconds": seconds, "outcomes": outcomes}


def run_child(spec: str) -> int:
    """Run one child task (the JSON spec) and print its result as the last line of stdout."""
    task = json.loads(spec)
    kind = task.pop("task")
    tasks: dict[str, Callable[..., dict[str, Any]]] = {
        "seed": child_seed, "enqueue": child_enqueue, "send_ceiling": child_send_ceiling}
    result = tasks[kind](**task)
    print(json.dumps(result), flush=True)
    return 0


# --- databases --------------------------------------------------------------------------------------


ROW_COLUMNS = ("key", "campaign_id", "sender", "cause", "investor_id", "user_id", "channel", "message_class",
               "content", "fallback", "fallback_of", "status", "hold_reason", "attempts", "due_at", "lease_until",
               "claimed_by", "provider", "provider_id", "recipient_masked", "error_code", "error", "created_at",
               "updated_at", "sent_at", "delivered_at")


def ceiling_rows(n: int, tag: str, sqlite: bool) -> list[tuple[Any, ...]]:
    """Return the rows `enqueue_many` would write for n messages, ready for the bare driver (content as JSON)."""
    now = datetime.now(UTC)
    stamp: Any = sqlite_text(now) if sqlite else now
    rows = []
    for i in range(n):
        row = rendered(i, tag, i + 1, f"bench_u{i:07d}").row(now)
        row["content"] = orjson.dumps(row["content"]).decode()
        for name in ("due_at", "created_at", "updated_at"):
            row[name] = stamp
        rows.append(tuple(row[c] for c in ROW_COLUMNS))
    return rows


class Target:
    """One fresh, migrated database for one phase."""

    name: str
    url: str

    def ceilings(self, rows: list[tuple[Any, ...]]) -> dict[str, float]:
        """Insert the rows with the bare driver in one transaction; return messages/s per method."""
        raise NotImplementedError

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        """Run a read directly (it costs the worker nothing)."""
        raise NotImplementedError

    def drop(self) -> None:
        """Remove the database."""
        raise NotImplementedError


class SqliteTarget(Target):
    """A SQLite file in the phase's temporary folder (the embedded default)."""

    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "growth.db"
        self.url = f"sqlite:///{self.path}"
        self._reader: sqlite3.Connection | None = None

    def ceilings(self, rows: list[tuple[Any, ...]]) -> dict[str, float]:
        # Same schema (copied from the migrated database) and pragmas as the app, in a separate file.
        # Foreign keys are not checked here (no investors table), the app checks them: a small edge for the ceiling.
        with contextlib.closing(sqlite3.connect(self.path)) as app_db:
            ddl = [s for (s,) in app_db.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'outbox_messages' AND sql IS NOT NULL")]
        raw_path = self.folder / "raw-ceiling.db"
        conn = sqlite3.connect(raw_path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            for statement in ddl:
                conn.execute(statement)
            insert = (f"INSERT INTO outbox_messages ({', '.join(ROW_COLUMNS)}) "
                      f"VALUES ({', '.join('?' for _ in ROW_COLUMNS)})")
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, rows)
            conn.execute("COMMIT")
            elapsed = time.perf_counter() - started
            stored = conn.execute("SELECT count(*) FROM outbox_messages").fetchone()[0]
        finally:
            conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{raw_path}{suffix}").unlink(missing_ok=True)
        if stored != len(rows):
            raise BenchError(f"raw ceiling stored {stored} of {len(rows)} rows")
        return {"executemany": len(rows) / elapsed}

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        if self._reader is None:
            # Read-only, autocommit: each query is its own short WAL read; it never blocks the worker's writes.
            self._reader = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30, isolation_level=None)
        return self._reader.execute(statement).fetchall()

    def drop(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


class PostgresTarget(Target):
    """A temporary PostgreSQL database, created for the phase and dropped after it."""

    name = "postgresql"

    def __init__(self, base_url: str, db_name: str) -> None:
        url = make_url(base_url)
        self.admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.db_name = db_name
        self.url = url.set(database=db_name).render_as_string(hide_password=False)
        self.plain = url.set(drivername="postgresql", database=db_name).render_as_string(hide_password=False)
        self._reader: psycopg.Connection | None = None
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
        self.created = True

    def ceilings(self, rows: list[tuple[Any, ...]]) -> dict[str, float]:
        results: dict[str, float] = {}
        columns = f"({', '.join(ROW_COLUMNS)})"
        with psycopg.connect(self.plain) as conn:
            for method in ("executemany", "copy"):
                table = f"raw_{method}"
                conn.execute(f"CREATE TABLE {table} (LIKE outbox_messages INCLUDING ALL)")
                conn.commit()
                started = time.perf_counter()
                with conn.cursor() as cur:
                    if method == "executemany":
                        cur.executemany(f"INSERT INTO {table} {columns} "
                                        f"VALUES ({', '.join('%s' for _ in ROW_COLUMNS)})", rows)
                    else:
                        with cur.copy(f"COPY {table} {columns} FROM STDIN") as copy:
                            for row in rows:
                                copy.write_row(row)
                conn.commit()
                elapsed = time.perf_counter() - started
                (stored,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)
                conn.execute(f"DROP TABLE {table}")
                conn.commit()
                if stored != len(rows):
                    raise BenchError(f"raw ceiling ({method}) stored {stored} of {len(rows)} rows")
                results[method] = len(rows) / elapsed
        return results

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        if self._reader is None:
            self._reader = psycopg.connect(self.plain, autocommit=True)
        return self._reader.execute(statement).fetchall()

    def drop(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if not self.created:
            return
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.db_name)))
        self.created = False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _profiler(pid: int, folder: Path) -> subprocess.Popen[bytes] | None:
    """With BENCH_PROFILE=<folder>, sample the worker with py-spy (collapsed stacks) while it sends."""
    out = os.environ.get("BENCH_PROFILE")
    if not out:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    Path(out).mkdir(parents=True, exist_ok=True)
    target = Path(out) / f"worker-{folder.name}.txt"
    # --gil: only the thread holding the GIL is sampled, so the profile is where the worker's one core goes.
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250", "--gil",
                             "--nonblocking", "--output", str(target)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_profiler(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None and spy.poll() is None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


# --- the fake provider ------------------------------------------------------------------------------


class FakeProvider:
    """bench/fake_sms_server.py in its own process on a free loopback port."""

    def __init__(self, folder: Path, latency: float) -> None:
        self.port = free_port()
        self.log = folder / "fake-sms.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "fake_sms_server.py"), "--port", str(self.port),
                 "--latency", str(latency)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.stats()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise BenchError(f"the fake provider did not start:\n{tail(self.log)}") from None
                time.sleep(0.05)

    @property
    def endpoint(self) -> str:
        """host:port, for GROWTH_SMS_ENDPOINT."""
        return f"{LOOPBACK}:{self.port}"

    def _call(self, path: str) -> dict[str, Any]:
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=10)
        try:
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def stats(self) -> dict[str, Any]:
        """What the fake has been sent since the last reset."""
        return self._call("/stats")

    def reset(self) -> None:
        """Forget what was counted."""
        self._call("/reset")

    def close(self) -> None:
        """Stop the process."""
        _stop(self.proc)


# --- one phase's environment ------------------------------------------------------------------------


class Instance:
    """A temporary folder, a migrated database and the environment the product's processes run with."""

    def __init__(self, target_factory: Callable[[Path], Target], fake: FakeProvider,
                 delivery: dict[str, str]) -> None:
        from growth.migrate import upgrade

        self.dir = Path(tempfile.mkdtemp(prefix="growth-bench-delivery-"))
        try:
            self.target = target_factory(self.dir)
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        try:
            upgrade(self.target.url)
        except BaseException:
            self.close()
            raise
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GROWTH_")}
        self.env.update({
            "GROWTH_INSTANCE_PATH": str(self.dir), "GROWTH_DATABASE_URL": self.target.url,
            "GROWTH_SECRET_KEY": os.urandom(16).hex(), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
            "GROWTH_SMS_PROVIDER": "aliyun", "GROWTH_SMS_ENDPOINT": fake.endpoint, "GROWTH_SMS_PROTOCOL": "http",
            "GROWTH_SMS_ACCESS_KEY_ID": ACCESS_KEY_ID, "GROWTH_SMS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
            "GROWTH_SMS_SIGN_NAME": "投资人增长", "GROWTH_SMS_RATE": "0",
            **delivery,
        })

    def child(self, task: str, **kwargs: Any) -> dict[str, Any]:
        """Run one child task of this script against this instance's database; return its result."""
        spec = json.dumps({"task": task, **kwargs})
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", spec], env=self.env,
                              cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
        if done.returncode != 0:
            raise BenchError(f"child {task} failed: {done.stderr.strip()[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    @contextlib.contextmanager
    def worker(self) -> Iterator[tuple[subprocess.Popen[bytes], float, Path]]:
        """Run `growth worker` until the block ends; yield it and when it said it runs (perf_counter)."""
        log_path = self.dir / "worker.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "growth.cli", "worker"], env=self.env, cwd=ROOT,
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while WORKER_READY not in log_path.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"the worker did not start:\n{tail(log_path)}")
                time.sleep(0.02)
            spy = _profiler(proc.pid, self.dir)
            try:
                yield proc, time.perf_counter(), log_path
            finally:
                _stop_profiler(spy)
        finally:
            _stop(proc)

    def close(self) -> None:
        """Drop the database and remove the folder."""
        try:
            self.target.drop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# --- one run ----------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """The figures of one run on one database."""

    db: str
    run: int
    enqueue_messages: int
    send_messages: int
    enqueue_ceiling: dict[str, float] = field(default_factory=dict)  # messages/s
    enqueue_seconds: float = 0.0
    enqueue_small_seconds: float = 0.0
    rss_growth_mb: float = 0.0
    rss_growth_small_mb: float = 0.0
    send_ceiling: float = 0.0  # messages/s
    send: float = 0.0  # messages/s
    provider_span: float = 0.0  # messages/s between the fake's first and last request
    statuses: dict[str, int] = field(default_factory=dict)
    fake: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)


def _wait_until_sent(instance: Instance, proc: subprocess.Popen[bytes], log_path: Path, n: int,
                     started: float) -> float:
    timeout = max(120.0, n / 100)
    while True:
        (waiting,), = instance.target.query(WAITING_SQL)
        if waiting == 0:
            return time.perf_counter() - started
        if proc.poll() is not None:
            raise BenchError(f"the worker exited with {waiting} messages waiting:\n{tail(log_path)}")
        if time.perf_counter() - started > timeout:
            raise BenchError(f"{waiting} of {n} messages still waiting after {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def run_once(kind: str, run: int, fake: FakeProvider, args: argparse.Namespace) -> RunResult:
    """Measure enqueueing and sending, each on a fresh database, beside their ceilings."""
    result = RunResult(kind, run, args.messages, args.send, load=[round(x, 2) for x in os.getloadavg()])
    stamp = f"{os.getpid()}_{run}_{int(time.time())}"
    delivery = {f"GROWTH_DELIVERY_{k}": str(v) for k, v in (("THREADS", args.threads), ("BATCH_SIZE", args.batch))
                if v is not None}
    threads = args.threads or _default("DELIVERY_THREADS")

    @contextlib.contextmanager
    def fresh(phase: str) -> Iterator[Instance]:
        if kind == "sqlite":
            instance = Instance(SqliteTarget, fake, delivery)
        else:
            instance = Instance(lambda _dir: PostgresTarget(args.pg_url, f"growth_bench_d{stamp}_{phase}"),
                                fake, delivery)
        try:
            yield instance
        finally:
            instance.close()

    # A: enqueue — the bare-driver ceiling, then enqueue_many of N and of N/10 messages.
    with fresh("a") as instance:
        instance.child("seed", n=args.messages)
        result.enqueue_ceiling = instance.target.ceilings(ceiling_rows(args.messages, "ceiling", kind == "sqlite"))
        big = instance.child("enqueue", n=args.messages, tag=f"{stamp}-big")
        small = instance.child("enqueue", n=args.messages // 10, tag=f"{stamp}-small")
        for name, got, want in (("enqueue", big, args.messages), ("enqueue (small)", small, args.messages // 10)):
            if got["inserted"] != want or got["existing"]:
                raise BenchError(f"{name}: {got['inserted']} of {want} inserted, {got['existing']} already there")
        result.enqueue_seconds, result.enqueue_small_seconds = big["seconds"], small["seconds"]
        result.rss_growth_mb = big["rss_growth_kb"] / 1024
        result.rss_growth_small_mb = small["rss_growth_kb"] / 1024
        result.seconds.update(enqueue=big["seconds"], enqueue_small=small["seconds"])

    # B: send — the adapter straight at the fake, then one worker sending pre-enqueued messages.
    with fresh("b") as instance:
        instance.child("seed", n=args.send)
        instance.child("enqueue", n=args.send, tag=f"{stamp}-send")
        fake.reset()
        ceiling = instance.child("send_ceiling", n=args.send, threads=threads)
        seen = fake.stats()
        if ceiling["outcomes"] != {"sent": args.send} or seen["distinct"] != args.send or seen["duplicates"]:
            raise BenchError(f"send ceiling: outcomes {ceiling['outcomes']}, fake saw {seen}")
        result.send_ceiling = args.send / ceiling["seconds"]
        result.seconds["send_ceiling"] = ceiling["seconds"]
        fake.reset()
        with instance.worker() as (proc, started, log_path):
            seconds = _wait_until_sent(instance, proc, log_path, args.send, started)
        result.seconds["send"] = seconds
        result.send = args.send / seconds
        result.statuses = {str(status): int(count) for status, count in instance.target.query(STATUS_SQL)}
        result.fake = fake.stats()
        if result.fake["last"] > result.fake["first"]:
            result.provider_span = result.fake["requests"] / (result.fake["last"] - result.fake["first"])
        if result.statuses != {"sent": args.send}:
            raise BenchError(f"statuses after the worker: {result.statuses} (want {args.send} sent)")
        if (result.fake["requests"], result.fake["distinct"], result.fake["duplicates"]) != (args.send, args.send, 0):
            raise BenchError(f"the fake saw {result.fake} (want each of {args.send} OutIds once)")

    result.load += [round(x, 2) for x in os.getloadavg()]
    return result


def _default(key: str) -> int:
    from growth.config import Config

    return int(getattr(Config, key))


# --- report -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the report: a value per run, its unit, and the ceiling it is compared with."""

    label: str
    unit: str
    value: Callable[[RunResult], float | None]
    ceiling: Callable[[RunResult], float | None] = lambda _r: None
    target: float | None = None
    lower_is_better: bool = False


def rows_for(kind: str, args: argparse.Namespace) -> list[Row]:
    """Return the report lines of a database."""
    n, m = args.messages, args.send
    rate = "messages/s"
    exec_ceiling = "sqlite3 executemany" if kind == "sqlite" else "psycopg executemany"
    rows = [Row(f"enqueue ceiling: {exec_ceiling}, one transaction", rate,
                lambda r: r.enqueue_ceiling.get("executemany"))]
    if kind == "postgresql":
        rows.append(Row("enqueue ceiling: psycopg COPY, one transaction", rate,
                        lambda r: r.enqueue_ceiling.get("copy")))
    best = (lambda r: max(r.enqueue_ceiling.values())) if kind == "postgresql" else (
        lambda r: r.enqueue_ceiling.get("executemany"))
    rows += [
        Row(f"enqueue_many {n:,} (generator, one transaction)", rate, lambda r: n / r.enqueue_seconds, best),
        Row(f"enqueue_many {n:,}: seconds", "s", lambda r: r.enqueue_seconds,
            target=ENQUEUE_TARGET_SECONDS * n / ENQUEUE_MESSAGES, lower_is_better=True),
        Row(f"enqueue_many {n // 10:,}: peak RSS growth", "MB", lambda r: r.rss_growth_small_mb),
        Row(f"enqueue_many {n:,}: peak RSS growth", "MB", lambda r: r.rss_growth_mb),
        Row(f"RSS growth {n:,} ÷ {n // 10:,} (flat ≤ {MEMORY_FLAT_RATIO:g})", "×",
            lambda r: r.rss_growth_mb / max(r.rss_growth_small_mb, 1.0),
            target=MEMORY_FLAT_RATIO if n // 10 >= ENQUEUE_CHUNK else None, lower_is_better=True),
        Row(f"send ceiling: adapter → fake, no database ({m:,})", rate, lambda r: r.send_ceiling),
        Row(f"one worker: start → all {m:,} sent", rate, lambda r: r.send, lambda r: r.send_ceiling, SEND_TARGET),
        Row("one worker: fake's first → last request (info)", rate, lambda r: r.provider_span,
            lambda r: r.send_ceiling),
    ]
    return rows


def summarise(results: list[RunResult], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Return per-database, per-measure medians, ranges and median ratios to the ceilings."""
    summary = []
    for kind in dict.fromkeys(r.db for r in results):
        runs = [r for r in results if r.db == kind]
        for row in rows_for(kind, args):
            values = [v for r in runs if (v := row.value(r)) is not None]
            ratios = [v / c for r in runs if (v := row.value(r)) and (c := row.ceiling(r))]
            median = median_of(values)
            met = None
            if row.target is not None and values:
                met = median <= row.target if row.lower_is_better else median >= row.target
            summary.append({
                "db": kind, "measure": row.label, "unit": row.unit, "median": median,
                "min": min(values) if values else None, "max": max(values) if values else None,
                "ratio": median_of(ratios) if ratios else None, "target": row.target,
                "lower_is_better": row.lower_is_better, "met": met,
            })
    return summary


def table(summary: list[dict[str, Any]]) -> str:
    """Format the summary as a plain-text table."""
    def num(v: float | None, unit: str) -> str:
        if v is None or math.isnan(v):
            return ""
        return f"{v:,.2f}" if unit in ("s", "×", "MB") else f"{v:,.0f}"

    lines = [f"{'db':<11}{'measure':<52}{'median':>10}{'min–max':>21} {'unit':<11}{'×ceiling':>9}{'target':>9}  ok"]
    for s in summary:
        target = "" if s["target"] is None else ("≤" if s["lower_is_better"] else "≥") + num(s["target"], s["unit"])
        met = "" if s["met"] is None else ("yes" if s["met"] else "NO")
        ratio = "" if s["ratio"] is None else f"{s['ratio']:.2f}"
        span = f"{num(s['min'], s['unit'])}–{num(s['max'], s['unit'])}"
        lines.append(f"{s['db']:<11}{s['measure']:<52}{num(s['median'], s['unit']):>10}{span:>21} {s['unit']:<11}"
                     f"{ratio:>9}{target:>9}  {met}")
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--messages", type=int, default=ENQUEUE_MESSAGES,
                        help=f"messages enqueued per run (default {ENQUEUE_MESSAGES:,}); memory is also measured "
                             "at a tenth of it")
    parser.add_argument("--send", type=int, default=SEND_MESSAGES,
                        help=f"messages the worker sends per run (default {SEND_MESSAGES:,})")
    parser.add_argument("--short", action="store_true",
                        help=f"{SHORT_ENQUEUE:,} enqueued and {SHORT_SEND:,} sent, for CI")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--runs", type=int, default=3, help="runs per database; the report shows medians")
    parser.add_argument("--threads", type=int, help="GROWTH_DELIVERY_THREADS for the worker (default: the app's)")
    parser.add_argument("--batch", type=int, help="GROWTH_DELIVERY_BATCH_SIZE for the worker (default: the app's)")
    parser.add_argument("--latency", type=float, default=LATENCY, help="the fake provider's answer time in s")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", PG_DEFAULT),
                        help="a PostgreSQL server on 127.0.0.1 (a database per phase is created there and dropped)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--wait-load", type=float, metavar="LOAD",
                        help="before each run, wait (up to --max-wait) until the 1-minute load average is below LOAD")
    parser.add_argument("--max-wait", type=float, default=20 * 60, metavar="SECONDS",
                        help="the longest --wait-load waits before a run (default 1,200 s); the run goes ahead after")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one task in a child process
    args = parser.parse_args(argv)
    if args.short:
        args.messages, args.send = SHORT_ENQUEUE, SHORT_SEND
    if args.messages < 100 or args.send < 1 or args.runs < 1 or (args.threads or 1) < 1 or (args.batch or 1) < 1:
        parser.error("need --messages ≥ 100, --send ≥ 1, --runs ≥ 1, and positive --threads and --batch")
    if args.db != "sqlite" and make_url(args.pg_url).host not in (LOOPBACK, "localhost"):
        parser.error("--pg-url must point at 127.0.0.1: the benchmark talks to nothing else")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the report."""
    args = parse_args(argv)
    if args.child:
        return run_child(args.child)
    # SIGTERM ends the benchmark like Ctrl+C does, so processes and temporary databases are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    started = datetime.now(UTC)
    results: list[RunResult] = []
    fake_dir = Path(tempfile.mkdtemp(prefix="growth-bench-fake-"))
    try:
        fake = FakeProvider(fake_dir, args.latency)
        try:
            for run in range(1, args.runs + 1):
                for kind in kinds:
                    if args.wait_load:
                        wait_for_quiet(args.wait_load, args.max_wait)
                    print(f"run {run}/{args.runs} on {kind} …", file=sys.stderr, flush=True)
                    r = run_once(kind, run, fake, args)
                    results.append(r)
                    print(f"  enqueue ceiling {', '.join(f'{k} {v:,.0f}' for k, v in r.enqueue_ceiling.items())}/s; "
                          f"enqueue {r.enqueue_messages:,} in {r.enqueue_seconds:.2f} s "
                          f"(RSS +{r.rss_growth_mb:.1f} MB; {r.enqueue_messages // 10:,}: "
                          f"{r.enqueue_small_seconds:.2f} s, +{r.rss_growth_small_mb:.1f} MB); "
                          f"send ceiling {r.send_ceiling:,.0f}/s; worker {r.send:,.0f}/s "
                          f"(fake span {r.provider_span:,.0f}/s); statuses {r.statuses}; load {r.load}",
                          file=sys.stderr, flush=True)
        finally:
            fake.close()
    finally:
        shutil.rmtree(fake_dir, ignore_errors=True)
    summary = summarise(results, args)
    threads = args.threads or _default("DELIVERY_THREADS")
    batch = args.batch or _default("DELIVERY_BATCH_SIZE")
    print(f"\n{args.messages:,} messages enqueued, {args.send:,} sent by one worker ({threads} threads, batches of "
          f"{batch}) to a fake Aliyun SMS answering in {args.latency * 1000:g} ms; {args.runs} run(s) per database, "
          f"median [min–max]; {os.cpu_count()} CPUs\n")
    print(table(summary))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "messages": args.messages, "send": args.send, "runs": args.runs, "threads": threads, "batch": batch,
            "latency": args.latency, "cpus": os.cpu_count(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "started": started.isoformat(),
            "finished": datetime.now(UTC).isoformat(), "summary": summary, "results": [r.__dict__ for r in results],
        }, indent=2, default=str))
    missed = [s for s in summary if s["met"] is False]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
