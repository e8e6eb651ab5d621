"""Benchmark the cohorts page's queries (GET /api/v1/dashboards/cohorts) on a large book.

Run from the project root:

    .venv/bin/python bench/cohorts.py                              # 1,000,000 investors; SQLite and PostgreSQL
    .venv/bin/python bench/cohorts.py --size 200000 --db sqlite

Per database, on a fresh migrated one (bench/crm.py's `fresh`): N investors (bench/crm.py's book: two years of
registrations, ≈0.7 investments each, one every 30 days) over 20 acquisition channels; every investment whose term
has ended is matured (`matured_at`, principal). Then, R times each, the four aggregate queries of the page
(`dashboards.cohorts.retention_counts` and `reinvestment_counts`, the last 12 months, a 7-day window), and beside
them a naive computation that reads the range's investors and investments into Python. p50 and max in ms.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # the root first: bench/dashboards.py must not hide the package

from crm import (  # noqa: E402
    INVESTMENT_COLUMNS,
    INVESTOR_COLUMNS,
    NOW,
    PG_DEFAULT,
    _pg_load,
    _sqlite_load,
    fresh,
    investment_rows,
    investor_rows,
)
from harness import run_seed_and_measure  # noqa: E402

CHANNELS = 20


def seed(url: str, kind: str, n: int, rng_seed: int) -> dict[str, int]:
    """Load the book; return the row counts."""
    rng = random.Random(rng_seed)
    channels = [(i, f"ch_{i:02d}", f"渠道{i:02d}", "sem", "", "", True, False, NOW) for i in range(1, CHANNELS + 1)]
    investors = [(*row, rng.randrange(1, CHANNELS + 1)) for row in investor_rows(n, rng_seed)]
    investments = []
    for row in investment_rows(investors, rng_seed):
        started, term, fen = row[7], row[4], row[6]
        matured = datetime.combine(started.date() + timedelta(days=term), clock(1), tzinfo=started.tzinfo)
        if matured < NOW:
            investments.append((*row[:9], "matured", *row[10:12], fen, row[13], matured))
        else:
            investments.append((*row, None))
    tables: list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]] = [
        ("acquisition_channels", ("id", "code", "name", "kind", "owner", "notes", "active", "auto_created",
                                  "created_at"), channels),
        ("investors", (*INVESTOR_COLUMNS, "channel_id"), investors),
        ("investments", (*INVESTMENT_COLUMNS, "matured_at"), investments),
    ]
    (_sqlite_load if kind == "sqlite" else _pg_load)(url, tables)
    return {name: len(rows) for name, _c, rows in tables}


def naive(session: Any, first: int, last: int, days: int) -> int:
    """Read the range's investors and every investment of theirs into Python and count there."""
    from sqlalchemy import select

    from dashboards.cohorts import month_bounds
    from growth.investors.models import Investment, Investor
    from growth.timeutil import local_date

    lo, hi = month_bounds(first, last)
    reg = {i: local_date(r) for i, r in session.execute(
        select(Investor.id, Investor.registered_at).where(Investor.registered_at >= lo, Investor.registered_at < hi))}
    cells: set[tuple[int, int, int]] = set()
    by_investor: dict[int, list[tuple[Any, Any]]] = {}
    for inv, started, matured in session.execute(
            select(Investment.investor_id, Investment.started_at, Investment.matured_at)):
        by_investor.setdefault(inv, []).append((started, matured))
        if inv in reg:
            d = local_date(started)
            cells.add((inv, reg[inv].year * 12 + reg[inv].month, d.year * 12 + d.month))
    window = timedelta(days=days)
    again = 0
    for rows in by_investor.values():
        for _s, matured in rows:
            if matured is not None and lo <= matured < hi:
                again += any(matured <= s <= matured + window for s, _m in rows)
    return len(cells) + again


def measure(url: str, runs: int) -> dict[str, dict[str, float]]:
    from sqlalchemy.orm import Session

    from dashboards.cohorts import month_index, month_range_default, reinvestment_counts, retention_counts
    from growth.db import Database
    from growth.timeutil import local_date

    db = Database(url)
    first, last = month_range_default(month_index(local_date(NOW)))

    def queries(s: Session, channel: str | None = None) -> None:
        retention_counts(session=s, first=first, last=last, channel=channel, now=NOW)
        reinvestment_counts(session=s, first=first, last=last, days=7, channel=channel)

    result: dict[str, dict[str, float]] = {}
    try:
        for name, fn in (("queries", queries), ("queries, one channel", lambda s: queries(s, "ch_07")),
                         ("naive", lambda s: naive(s, first, last, 7))):
            times = []
            for _ in range(runs + 1):  # the first warms the caches and is not counted
                with Session(db.engine) as s:
                    t0 = time.perf_counter()
                    fn(s)
                    times.append((time.perf_counter() - t0) * 1000)
            times = times[1:]
            result[name] = {"p50": statistics.median(times), "max": max(times)}
    finally:
        db.dispose()
    return result


def main(argv: list[str]) -> int:
    """Seed a fresh database per kind and time the queries."""
    return run_seed_and_measure(argv, doc=__doc__ or "", pg_default=PG_DEFAULT, runs=5, width=22, seed=seed,
                                measure=measure, fresh=fresh)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
