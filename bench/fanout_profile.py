"""Profile one fan-out run on PostgreSQL statement by statement, with EXPLAIN (ANALYZE, BUFFERS, WAL) at chosen chunks.

Run from the project root (see bench/README.md, fan-out, 2026-12-04):

    .venv/bin/python bench/fanout_profile.py 200000 --explain 2,39
    .venv/bin/python bench/fanout_profile.py 600000 --explain 100 --json out.json
    .venv/bin/python bench/fanout_profile.py 200000 --drop-fks all      # what-if: the run without foreign-key checks

Seeds a fresh database (`--db`, dropped afterwards unless `--keep`) as bench/fanout.py does, then runs
the selection chunk by chunk in this process, timing every statement by SQLAlchemy's cursor events
(`pg_stat_statements` needs a server restart to load). The statements of a chunk listed in `--explain`
are first run under EXPLAIN (ANALYZE, BUFFERS, WAL) in a savepoint rolled back, then for real. Prints the
seconds per statement — in total, per chunk in the first and the last quarter of the run — the plans,
the relation sizes and the database's buffer hit ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def label(statement: str) -> str:
    """Name a statement by its verb and table (the two outbox inserts: webhooks from rewards, SMS from members)."""
    s = " ".join(statement.split())
    m = re.match(r"(INSERT INTO|UPDATE|SELECT|DELETE FROM)\s+(\w+)?", s)
    if not m:
        return s[:40]
    if m.group(1) == "SELECT":
        table = re.search(r"FROM (\w+)", s)
        return "SELECT " + (table.group(1) if table else "?")
    head = f"{m.group(1).split()[0]} {m.group(2) or ''}"
    if m.group(2) == "outbox_messages":
        head += " (webhooks)" if "FROM rewards" in s else " (SMS)"
    return head


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int)
    parser.add_argument("--explain", default="", help="chunk numbers to EXPLAIN, comma-separated")
    parser.add_argument("--db", default="growth_fanout_profile")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--analyze", action="store_true", help="ANALYZE after seeding")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--drop-fks", default="", help="what-if: foreign keys to drop after seeding, comma-separated "
                        "names (`all`: every one on the tables the run writes); the run's checks still hold")
    args = parser.parse_args()
    explain_at = {int(x) for x in args.explain.split(",") if x}
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")  # type: ignore[arg-type]
        conn.execute(f"CREATE DATABASE {args.db}")  # type: ignore[arg-type]
    plain = f"postgresql://postgres@127.0.0.1:5432/{args.db}"
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{args.db}"
    for name in [k for k in os.environ if k.startswith("GROWTH_")]:
        del os.environ[name]
    os.environ.update({"GROWTH_DATABASE_URL": url, "GROWTH_SECRET_KEY": os.urandom(16).hex(),
                       "GROWTH_INSTANCE_PATH": tempfile.mkdtemp(prefix="growth-fanout-profile-")})

    import fanout as bench
    from sqlalchemy import event

    from campaigns.runner import select_chunk, task_campaign_run
    from growth.app import create_app
    from growth.db import get_db
    from growth.migrate import upgrade

    upgrade(url)
    started = time.perf_counter()
    campaign_id = bench.child_seed(args.n)["campaign_id"]
    print(f"seeded {args.n:,} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    if args.analyze:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute("ANALYZE")
    if args.drop_fks:
        with psycopg.connect(plain, autocommit=True) as conn:
            written = ("campaign_members", "reward_budget_uses", "rewards", "reward_entries", "outbox_messages")
            found = conn.execute("SELECT conname, conrelid::regclass::text FROM pg_constraint WHERE contype = 'f' "
                                 "AND conrelid::regclass::text = ANY(%s)", (list(written),)).fetchall()
            wanted = {name for name, _ in found} if args.drop_fks == "all" else set(args.drop_fks.split(","))
            for name, table in found:
                if name in wanted:
                    conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")  # type: ignore[arg-type]
            print(f"dropped {sorted(wanted & {n for n, _ in found})}", file=sys.stderr)
    app = create_app({"BACKGROUND_WORK": False})
    db = get_db(app)
    state: dict[str, Any] = {"chunk": 0, "current": defaultdict(float)}
    plans: dict[str, str] = {}

    @event.listens_for(db.engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if state["chunk"] in explain_at and statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            cursor.execute("SAVEPOINT profile")
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, WAL) " + statement, parameters)
            plans[f"chunk {state['chunk']}: {label(statement)} #{len(plans)}"] = "\n".join(
                r[0] for r in cursor.fetchall())
            cursor.execute("ROLLBACK TO SAVEPOINT profile")
        conn.info["profile_t0"] = time.perf_counter()

    @event.listens_for(db.engine, "after_cursor_execute")
    def after(conn: Any, _cursor: Any, statement: str, _parameters: Any, _context: Any, _many: bool) -> None:
        state["current"][label(statement)] += time.perf_counter() - conn.info["profile_t0"]

    per_chunk: list[dict[str, float]] = []
    started = time.perf_counter()
    with db.session_scope(write=True) as session:
        task_campaign_run(session, bench.NOW, campaign_id)
    while True:
        state["chunk"] += 1
        state["current"] = current = defaultdict(float)
        t0 = time.perf_counter()
        with db.session_scope(write=True) as session:
            selected = select_chunk(session=session, now=bench.NOW)
            t1 = time.perf_counter()
        current["(commit)"] = time.perf_counter() - t1
        current["(chunk)"] = time.perf_counter() - t0
        if not selected:
            break
        per_chunk.append(dict(current))
    total = time.perf_counter() - started
    print(f"run {total:.1f} s: {args.n / total:,.0f} investors/s, {len(per_chunk)} chunks, load {os.getloadavg()}")
    quarter = len(per_chunk) // 4 or 1
    names = sorted({k for c in per_chunk for k in c}, key=lambda k: -sum(c.get(k, 0) for c in per_chunk))
    print(f"{'statement':42} {'total s':>8} {'ms/chunk, 1st quarter':>22} {'last quarter':>13}")
    for name in names:
        first = sum(c.get(name, 0) for c in per_chunk[:quarter]) / quarter * 1000
        last = sum(c.get(name, 0) for c in per_chunk[-quarter:]) / quarter * 1000
        print(f"{name:42} {sum(c.get(name, 0) for c in per_chunk):8.2f} {first:22.1f} {last:13.1f}")
    for name, plan in plans.items():
        print(f"\n=== {name}\n" + re.sub(r"'\{[0-9,]{50,}\}'", "'{…}'", plan))
    with psycopg.connect(plain, autocommit=True) as conn:
        print("\nrelations over 1 MB:")
        for relname, kind, size in conn.execute(
                "SELECT c.relname, c.relkind, pg_size_pretty(pg_relation_size(c.oid)) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                "AND pg_relation_size(c.oid) > 1000000 ORDER BY pg_relation_size(c.oid) DESC"):
            print(f"  {relname:60} {kind} {size:>10}")
        hit, read = conn.execute("SELECT blks_hit, blks_read FROM pg_stat_database "
                                 "WHERE datname = current_database()").fetchone() or (0, 0)
        print(f"blocks: {hit:,} hit, {read:,} read ({hit / max(1, hit + read):.4f} hit)")
    if args.json:
        args.json.write_text(json.dumps({"per_chunk": per_chunk, "plans": plans, "total": total,
                                         "blocks": {"hit": hit, "read": read}}))
    if not args.keep:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
