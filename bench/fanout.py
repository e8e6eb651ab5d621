"""Benchmark one campaign run over a large audience: the audience query, holdout, grants and outbox rows.

Run from the project root (see bench/README.md):

    .venv/bin/python bench/fanout.py                        # 1,000,000 investors; SQLite and PostgreSQL
    .venv/bin/python bench/fanout.py --short --db sqlite    # a CI-size run (20,000 investors)
    .venv/bin/python bench/fanout.py --size 200000 --json out.json

Per database, on a fresh one (a temporary SQLite file, or a temporary PostgreSQL database dropped
afterwards), migrated with `growth.migrate.upgrade`:

  1. N investors registered 120 days ago are inserted in bulk, and a scheduled 沉睡唤醒 campaign is
     created (audience: inactive ≥ 90 days — all of them; holdout 10 %; a ¥20 voucher with a budget of
     one per investor; one marketing SMS with the investor's name, the amount and the last day). Untimed.
  2. A child process (the app built and warmed before the clock, its RSS sampled every 5 ms) does what
     the workers do, timed phase by phase: the audience count (one SQL query); the scheduled job
     recording the run (`task_campaign_run`); the runner's threads (`CAMPAIGN_RUNNER_THREADS`, `--threads`;
     one on SQLite) taking steps (`select_chunk`: chunks of investor ids claimed, then each fulfilled —
     the segment's query over the span, holdout by hash, members, grants and messages); fulfilment
     (`fulfil_due` until nothing is due: the grants of packs through the ledger — budget, per-investor
     counts, rewards, entries, `reward.granted` webhooks — and the rendered SMS, all in the outbox).
  3. Checks: N members, the holdout ≈ 10 % and given nothing, every treated investor exactly one
     reward, one entry, one webhook and one SMS, the budget's count equal to the rewards.
  4. Ceiling: the rows the run wrote (members, rewards, entries, outbox) inserted again with the bare
     driver in ONE transaction into empty tables of the same schema (SQLite `sqlite3` executemany into
     a separate file with the app's pragmas; PostgreSQL psycopg executemany and COPY into `LIKE …
     INCLUDING ALL` tables); only the inserts are timed. Investors/s = N ÷ that time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.string import TextLoader
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import BenchError, RssSampler, wait_for_quiet  # noqa: E402

SIZE = 1_000_000
SHORT = 20_000
TARGET = 20_000  # investors/s (the issue)
RSS_TARGET_MB = 500
HOLDOUT = 10
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TABLES = ("campaign_members", "rewards", "reward_entries", "outbox_messages")
SEED_CHUNK = 10_000
COPY_CHUNK = 20_000
NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai; the run is due a minute before


def document() -> dict[str, Any]:
    """Return the benchmark's campaign: a scheduled re-activation with a voucher and a personal SMS."""
    return {
        "name": "沉睡唤醒（基准）", "type": "reactivation", "class": "marketing",
        "schedule": {"at": (NOW - timedelta(minutes=1)).isoformat()},
        "audience": {"all": [{"field": "inactive_days", "op": "gte", "value": 90}]},
        "holdout_percent": HOLDOUT,
        "rewards": [{"kind": "voucher", "amount": "20.00", "min_investment": "1000.00", "min_term_days": 30,
                     "valid_days": 30}],
        "budget": {"max_grants": 10 * SIZE, "max_amount": "100000000.00", "per_investor": 1},
        "messages": [{"channel": "sms", "text": "{{ investor.name }}您好，送您{{ reward.amount }}元投资红包，"
                      "{{ reward.expires_on }}前有效。投资有风险，理财需谨慎。回T退订"}],
    }


# --- children (run in their own process, against GROWTH_DATABASE_URL) ----------------------------------


def child_seed(n: int) -> dict[str, Any]:
    """Insert n investors and create the campaign, scheduled; return its id."""
    from sqlalchemy import update

    from campaigns import services
    from campaigns.models import Campaign
    from growth.app import create_app
    from growth.db import get_db, insert_many, table_of
    from growth.investors.models import Investor

    app = create_app({"BACKGROUND_WORK": False})
    table = table_of(Investor)
    registered = NOW - timedelta(days=120)
    with get_db(app).session_scope(write=True) as session:
        conn = session.connection()
        for start in range(0, n, SEED_CHUNK):
            insert_many(conn, table, [{
                "platform_user_id": f"fan_u{i:07d}", "referral_code": f"F{i:09d}", "phone": f"+86139{i:08d}",
                "name": f"投资人{i}", "registered_at": registered, "investment_count": 0, "investment_total_fen": 0,
                "holdings_fen": 0, "deposit_total_fen": 0, "withdrawal_total_fen": 0,
            } for i in range(start, min(n, start + SEED_CHUNK))])
        campaign = services.create(document(), session=session, actor_id=None, now=NOW - timedelta(days=2))
        session.execute(update(Campaign).where(Campaign.id == campaign.id).values(
            status="scheduled", approved_at=NOW - timedelta(days=1)))
        return {"campaign_id": campaign.id}


def select_all(db: Any, campaign_id: int) -> None:
    """One of the runner's threads (`campaigns.runner`): take steps until the campaign's run is selected."""
    from sqlalchemy import select

    from campaigns.models import CampaignRun
    from campaigns.runner import select_chunk

    while True:
        with db.session_scope(write=True) as session:
            if select_chunk(session=session, now=NOW):
                continue
            if session.scalar(select(CampaignRun.status).where(CampaignRun.campaign_id == campaign_id)) != "selecting":
                return
        time.sleep(0.01)  # the run's last chunks are another thread's


def child_run(campaign_id: int) -> dict[str, Any]:
    """Run the campaign as the workers do, phase by phase, timed, sampling the resident set."""
    from campaigns import segments
    from campaigns.definition import parse
    from campaigns.fulfilment import fulfil_due
    from campaigns.models import Campaign
    from campaigns.runner import runner_threads, task_campaign_run
    from growth.app import create_app
    from growth.db import get_db

    app = create_app({"BACKGROUND_WORK": False})
    db = get_db(app)
    with db.session_scope() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        audience = parse(campaign.definition).audience
    seconds: dict[str, float] = {}
    with RssSampler() as rss:
        started = time.perf_counter()
        with db.session_scope() as session:
            audience_size = segments.count(audience, session=session, now=NOW)
        seconds["audience count"] = time.perf_counter() - started
        mark = time.perf_counter()
        with db.session_scope(write=True) as session:
            task_campaign_run(session, NOW, campaign_id)
        threads = [threading.Thread(target=select_all, args=(db, campaign_id)) for _ in range(runner_threads(app))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds["selection"] = time.perf_counter() - mark
        mark = time.perf_counter()
        due = NOW + timedelta(seconds=1)
        while True:
            with db.session_scope(write=True) as session:
                if not fulfil_due(session=session, app=app, now=due):
                    break
        seconds["fulfilment"] = time.perf_counter() - mark
        seconds["run"] = seconds["selection"] + seconds["fulfilment"]
    return {"audience": audience_size, "threads": runner_threads(app), "seconds": seconds,
            "rss_start_mb": rss.start / 1024,
            "rss_peak_mb": rss.peak / 1024}


# --- databases -------------------------------------------------------------------------------------------

COUNTS_SQL = {
    "members": "SELECT count(*) FROM campaign_members",
    "holdout": "SELECT count(*) FROM campaign_members WHERE holdout",
    "done": "SELECT count(*) FROM campaign_members WHERE status = 'done' AND rewards_granted = 1",
    "rewards": "SELECT count(*) FROM rewards",
    "rewarded investors": "SELECT count(DISTINCT investor_id) FROM rewards",
    "entries": "SELECT count(*) FROM reward_entries",
    "sms": "SELECT count(*) FROM outbox_messages WHERE channel = 'sms'",
    "sms investors": "SELECT count(DISTINCT investor_id) FROM outbox_messages WHERE channel = 'sms'",
    "webhooks": "SELECT count(*) FROM outbox_messages WHERE channel = 'webhook'",
    "holdout given anything": "SELECT count(*) FROM campaign_members m WHERE m.holdout AND (EXISTS "
                              "(SELECT 1 FROM rewards r WHERE r.investor_id = m.investor_id) OR EXISTS "
                              "(SELECT 1 FROM outbox_messages o WHERE o.investor_id = m.investor_id))",
    "budget grants": "SELECT used_grants FROM reward_budgets",
}


class Sqlite:
    """A SQLite file in a temporary folder (the embedded default)."""

    name = "sqlite"

    def __init__(self, folder: Path, _stamp: str, _pg: str) -> None:
        self.folder = folder
        self.path = folder / "growth.db"
        self.url = f"sqlite:///{self.path}"

    def scalar(self, statement: str) -> int:
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as conn:
            return int(conn.execute(statement).fetchone()[0])

    def ceilings(self) -> dict[str, float]:
        """Insert the run's rows again with sqlite3 executemany into a copy of the schema; return seconds."""
        raw = self.folder / "raw-ceiling.db"
        source = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        target = sqlite3.connect(raw, isolation_level=None)
        try:
            target.execute("PRAGMA journal_mode=WAL")
            target.execute("PRAGMA synchronous=FULL")
            for table in TABLES:
                for (statement,) in source.execute(
                        "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL", (table,)):
                    target.execute(statement)
            spent = 0.0
            target.execute("BEGIN IMMEDIATE")
            for table in TABLES:
                cursor = source.execute(f"SELECT * FROM {table} ORDER BY id")
                columns = [d[0] for d in cursor.description]
                insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
                while rows := cursor.fetchmany(COPY_CHUNK):
                    started = time.perf_counter()
                    target.executemany(insert, rows)
                    spent += time.perf_counter() - started
            started = time.perf_counter()
            target.execute("COMMIT")
            spent += time.perf_counter() - started
        finally:
            source.close()
            target.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{raw}{suffix}").unlink(missing_ok=True)
        return {"executemany": spent}

    def drop(self) -> None:
        """Nothing to do: the folder goes."""


class Postgres:
    """A temporary PostgreSQL database, created for the run and dropped after it."""

    name = "postgresql"

    def __init__(self, _folder: Path, stamp: str, pg_url: str) -> None:
        url = make_url(pg_url)
        self.admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.db_name = f"growth_bench_fanout_{stamp}"
        self.url = url.set(database=self.db_name).render_as_string(hide_password=False)
        self.plain = url.set(drivername="postgresql", database=self.db_name).render_as_string(hide_password=False)
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.db_name)))

    def scalar(self, statement: str) -> int:
        with psycopg.connect(self.plain, autocommit=True) as conn:
            row = conn.execute(statement).fetchone()  # type: ignore[arg-type]
            return int(row[0]) if row else 0

    def ceilings(self) -> dict[str, float]:
        """Insert the run's rows again into `LIKE … INCLUDING ALL` copies, by executemany and by COPY; seconds."""
        spent = {}
        with psycopg.connect(self.plain) as source, psycopg.connect(self.plain) as target:
            for json_type in ("json", "jsonb"):  # rows travel as the text they are stored as, not Python dicts
                source.adapters.register_loader(json_type, TextLoader)
            for method in ("executemany", "copy"):
                seconds = 0.0
                for table in TABLES:
                    target.execute(f"CREATE TABLE raw_{table} (LIKE {table} INCLUDING ALL)")  # type: ignore[arg-type]
                target.commit()
                for table in TABLES:
                    with source.cursor(name=f"read_{table}") as read:
                        read.execute(f"SELECT * FROM {table} ORDER BY id")  # type: ignore[arg-type]
                        columns = [d.name for d in read.description or ()]
                        names = ", ".join(columns)
                        while rows := read.fetchmany(COPY_CHUNK):
                            started = time.perf_counter()
                            with target.cursor() as cur:
                                if method == "executemany":
                                    cur.executemany(f"INSERT INTO raw_{table} ({names}) "  # type: ignore[arg-type]
                                                    f"VALUES ({', '.join('%s' for _ in columns)})", rows)
                                else:
                                    with cur.copy(f"COPY raw_{table} ({names}) FROM STDIN") as copy:  # type: ignore[arg-type]
                                        for row in rows:
                                            copy.write_row(row)
                            seconds += time.perf_counter() - started
                started = time.perf_counter()
                target.commit()
                seconds += time.perf_counter() - started
                for table in TABLES:
                    target.execute(f"DROP TABLE raw_{table}")  # type: ignore[arg-type]
                target.commit()
                spent[method] = seconds
        return spent

    def drop(self) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.db_name)))


def _child(env: dict[str, str], task: str, **kwargs: Any) -> dict[str, Any]:
    spec = json.dumps({"task": task, **kwargs})
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", spec], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=7200, check=False)
    if done.returncode != 0:
        raise BenchError(f"child {task} failed: {done.stderr.strip()[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def fresh(kind: str, pg_url: str) -> Iterator[Sqlite | Postgres]:
    """Yield a fresh, migrated database of a kind; remove it afterwards."""
    from growth.migrate import upgrade

    folder = Path(tempfile.mkdtemp(prefix="growth-bench-fanout-"))
    stamp = f"{os.getpid()}_{int(time.time())}"
    try:
        target = (Sqlite if kind == "sqlite" else Postgres)(folder, stamp, pg_url)
        try:
            upgrade(target.url)
            yield target
        finally:
            target.drop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_one(kind: str, n: int, pg_url: str, threads: int | None = None) -> dict[str, Any]:
    """Seed, run and check one database; measure the ceiling of the same rows."""
    with fresh(kind, pg_url) as target:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GROWTH_")}
        if threads is not None:
            env["GROWTH_CAMPAIGN_RUNNER_THREADS"] = str(threads)
        env.update({"GROWTH_DATABASE_URL": target.url, "GROWTH_SECRET_KEY": os.urandom(16).hex(),
                    "PYTHONPATH": str(ROOT), "GROWTH_INSTANCE_PATH": tempfile.mkdtemp(prefix="growth-bench-i-")})
        load_before = [round(x, 2) for x in os.getloadavg()]
        started = time.perf_counter()
        campaign_id = _child(env, "seed", n=n)["campaign_id"]
        seed_seconds = time.perf_counter() - started
        run = _child(env, "run", campaign_id=campaign_id)
        counts = {name: target.scalar(statement) for name, statement in COUNTS_SQL.items()}
        _check(n, run, counts)
        ceilings = target.ceilings()
        shutil.rmtree(env["GROWTH_INSTANCE_PATH"], ignore_errors=True)
        return {"db": kind, "investors": n, "seed_seconds": seed_seconds, **run, "counts": counts,
                "ceiling_seconds": ceilings, "load": load_before + [round(x, 2) for x in os.getloadavg()]}


def _check(n: int, run: dict[str, Any], counts: dict[str, int]) -> None:
    treated = counts["members"] - counts["holdout"]
    problems = []
    if run["audience"] != n or counts["members"] != n:
        problems.append(f"audience {run['audience']}, members {counts['members']} (want {n})")
    if not 0.08 * n <= counts["holdout"] <= 0.12 * n:
        problems.append(f"holdout {counts['holdout']} is not about {HOLDOUT} % of {n}")
    for name in ("done", "rewards", "rewarded investors", "entries", "sms", "sms investors", "webhooks",
                 "budget grants"):
        if counts[name] != treated:
            problems.append(f"{name}: {counts[name]} (want {treated}, one per treated investor)")
    if counts["holdout given anything"]:
        problems.append(f"{counts['holdout given anything']} holdout members were given something")
    if problems:
        raise BenchError("; ".join(problems))


def report(results: list[dict[str, Any]]) -> str:
    """Format the results as the Markdown table bench/README.md keeps."""
    lines = ["| db | investors | audience count | selection | fulfilment | run: investors/s | ceiling: investors/s "
             "| × ceiling | peak RSS | target ≥ 20,000/s, < 500 MB | load before → after |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: | --- |"]
    for r in results:
        s, n = r["seconds"], r["investors"]
        rate = n / s["run"]
        ceilings = {k: n / v for k, v in r["ceiling_seconds"].items()}
        best = max(ceilings.values())
        ceiling_text = " / ".join(f"{v:,.0f} ({k})" for k, v in ceilings.items())
        met = "yes" if rate >= TARGET and r["rss_peak_mb"] < RSS_TARGET_MB else "**no**"
        # The fan-out path fulfils members as it selects them: nothing is left for the fulfilment worker.
        fulfilment = (f"{s['fulfilment']:.1f} s ({n / s['fulfilment']:,.0f}/s)" if s["fulfilment"] >= 0.05
                      else "— (fused with selection)")
        threads = r.get("threads", 1)
        db = f"{r['db']} ({threads} threads)" if threads > 1 else r["db"]
        lines.append(f"| {db} | {n:,} | {s['audience count']:.2f} s | {s['selection']:.1f} s "
                     f"({n / s['selection']:,.0f}/s) | {fulfilment} "
                     f"| **{rate:,.0f}** | {ceiling_text} | {rate / best:.2f} | {r['rss_peak_mb']:.0f} MB | {met} "
                     f"| {' / '.join(map(str, r['load'][:3]))} → {' / '.join(map(str, r['load'][3:]))} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Parse the arguments and run the benchmark (or one child task)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=SIZE, help="investors in the audience (default 1,000,000)")
    parser.add_argument("--short", action="store_true", help=f"a CI-size run ({SHORT:,} investors)")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", PG_DEFAULT))
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--threads", type=int, help="the runner's threads (GROWTH_CAMPAIGN_RUNNER_THREADS; default: "
                        "the product's, one on SQLite)")
    parser.add_argument("--wait-load", type=float, default=0.0, help="wait for a 1-minute load below this first")
    parser.add_argument("--max-wait", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.child:
        task = json.loads(args.child)
        kind = task.pop("task")
        result = (child_seed if kind == "seed" else child_run)(**task)
        print(json.dumps(result), flush=True)
        return 0
    n = SHORT if args.short else args.size
    results = []
    for kind in (("sqlite", "postgresql") if args.db == "both" else (args.db,)):
        if args.wait_load:
            wait_for_quiet(args.wait_load, args.max_wait)
        print(f"{kind}: {n:,} investors …", file=sys.stderr, flush=True)
        results.append(run_one(kind, n, args.pg_url, args.threads))
    print(report(results))
    print(f"\n{platform.python_version()} · sqlite {sqlite3.sqlite_version} · {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "target": TARGET, "rss_target_mb": RSS_TARGET_MB},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
