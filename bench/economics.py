"""Benchmark channel economics (GET /api/v1/acquisition/economics's query) on a large book.

Run from the project root:

    .venv/bin/python bench/economics.py                            # 1,000,000 investors; SQLite and PostgreSQL
    .venv/bin/python bench/economics.py --size 200000 --db sqlite

Per database, on a fresh migrated one (bench/crm.py's `fresh`): N investors (bench/crm.py's book: two years of
registrations, milestones, ≈0.7 investments each) spread over 20 acquisition channels, 2 tracking-link clicks per
investor, a daily cost per channel for two years, 0.3 rewards per investor of every kind; then ANALYZE. Then,
R times each, `dashboards.queries.channel_economics` (the six aggregate queries the page and the API run) for the
last 30 days and the last 90 days with a 30-day window, and beside it a naive computation that reads the cohort's
rows (investors, investments, rewards, clicks) into Python and sums them there. p50 and max in ms.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import date, datetime, timedelta
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
KINDS = ("cash", "voucher", "rate_boost", "experience_funds", "cashback")
STATUSES = {"cash": ("paid",), "voucher": ("granted", "redeemed", "expired"), "rate_boost": ("redeemed", "expired"),
            "experience_funds": ("granted", "paid", "revoked"), "cashback": ("granted", "paid", "clawed_back")}


CHANNEL_COLUMNS = ("id", "code", "name", "kind", "owner", "notes", "active", "auto_created", "created_at")
LINK_COLUMNS = ("id", "channel_id", "code", "name", "landing_url", "utm_source", "utm_medium", "utm_campaign",
                "utm_content", "utm_term", "active", "created_by", "created_at")
CLICK_COLUMNS = ("click_id", "link_id", "channel_id", "at", "ip", "user_agent", "referrer")
COST_COLUMNS = ("channel_id", "day", "amount_fen", "note", "entered_by", "updated_at")
BUDGET_COLUMNS = ("id", "owner_type", "owner_key", "name", "used_grants", "used_amount_fen", "created_at")
REWARD_COLUMNS = ("id", "key", "investor_id", "kind", "status", "budget_id", "budget_fen", "cost_fen", "granted_at",
                  "granted_by", "cause")


def channel_tables(rng: random.Random, now: datetime) -> list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
    """Return the 20 paid channels (ch_01 …), a tracking link each, two years of daily costs and one budget."""
    channels = [(i, f"ch_{i:02d}", f"渠道{i:02d}", "sem", "", "", True, False, now) for i in range(1, CHANNELS + 1)]
    links = [(i, i, f"link{i:02d}", f"链接{i}", "https://www.example.com/", "", "", "", "", "", True, "bench", now)
             for i in range(1, CHANNELS + 1)]
    costs = []
    first_day = (now - timedelta(days=2 * 365)).date()
    for cid in range(1, CHANNELS + 1):
        day = first_day
        while day <= now.date():
            costs.append((cid, day, rng.randrange(0, 2_000_000), "", "bench", now))
            day += timedelta(days=1)
    return [("acquisition_channels", CHANNEL_COLUMNS, channels), ("tracking_links", LINK_COLUMNS, links),
            ("channel_costs", COST_COLUMNS, costs),
            ("reward_budgets", BUDGET_COLUMNS, [(1, "manual", "manual", "bench", 0, 0, now)])]


def reward_row(rng: random.Random, reward_id: int, investor_id: int, registered: datetime) -> tuple[Any, ...]:
    """Return a reward of a random kind and status granted within 60 days of registering (REWARD_COLUMNS)."""
    kind_ = rng.choice(KINDS)
    status = rng.choice(STATUSES[kind_])
    cost = 0 if status in ("expired", "revoked", "clawed_back") or (
        kind_ in ("voucher",) and status == "granted") else rng.randrange(100, 20_000)
    granted = registered + timedelta(hours=rng.randrange(0, 60 * 24))
    return (reward_id, f"bench-{investor_id}", investor_id, kind_, status, 1, 0, cost, granted, "bench", "bench")


def seed(url: str, kind: str, n: int, rng_seed: int) -> dict[str, int]:
    """Load the book; return the row counts."""
    rng = random.Random(rng_seed)
    now = NOW
    investors = [(*row, rng.randrange(1, CHANNELS + 1)) for row in investor_rows(n, rng_seed)]
    investments = list(investment_rows(investors, rng_seed))
    clicks = []
    for inv in investors:
        for k in range(2):
            at = inv[9] - timedelta(minutes=rng.randrange(1, 600))
            clicks.append((f"c{inv[0]}_{k}", inv[23], inv[23], at, "", "", ""))
    fixed = channel_tables(rng, now)
    rewards: list[tuple[Any, ...]] = []
    for inv in investors:
        if rng.random() < 0.3:
            rewards.append(reward_row(rng, len(rewards) + 1, inv[0], inv[9]))
    tables: list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]] = [
        *fixed[:2],
        ("investors", (*INVESTOR_COLUMNS, "channel_id"), investors),
        ("investments", INVESTMENT_COLUMNS, investments),
        ("clicks", CLICK_COLUMNS, clicks),
        *fixed[2:],
        ("rewards", REWARD_COLUMNS, rewards),
    ]
    (_sqlite_load if kind == "sqlite" else _pg_load)(url, tables)
    return {name: len(rows) for name, _c, rows in tables}


def naive(session: Any, start: date, end: date, window_days: int) -> dict[str, Any]:
    """Read the cohort's rows into Python and sum them there (what the queries avoid)."""
    from sqlalchemy import select

    from growth.acquisition.models import ChannelCost, Click
    from growth.investors.models import Investment, Investor
    from growth.rewards.models import Reward
    from growth.timeutil import local_day_bounds

    lo, hi = local_day_bounds(start)[0], local_day_bounds(end)[1]
    window = timedelta(days=window_days)
    cohort = {i: (c, r, f) for i, c, r, f in session.execute(
        select(Investor.id, Investor.channel_id, Investor.registered_at, Investor.first_investment_at)
        .where(Investor.registered_at >= lo, Investor.registered_at < hi))}
    out: dict[Any, list[int]] = {}
    for cid, reg, first in cohort.values():
        row = out.setdefault(cid, [0] * 6)
        row[0] += 1
        row[1] += int(first is not None and first - reg <= window)
    for inv_id, fen, term, at in session.execute(
            select(Investment.investor_id, Investment.amount_fen, Investment.term_days, Investment.started_at)
            .join(Investor, Investor.id == Investment.investor_id)
            .where(Investor.registered_at >= lo, Investor.registered_at < hi)):
        cid, reg, _first = cohort[inv_id]
        if at - reg <= window:
            out[cid][2] += (fen or 0) * (term or 0)
    for inv_id, cost, at in session.execute(
            select(Reward.investor_id, Reward.cost_fen, Reward.granted_at)
            .join(Investor, Investor.id == Reward.investor_id)
            .where(Investor.registered_at >= lo, Investor.registered_at < hi)):
        cid, reg, _first = cohort[inv_id]
        if at - reg <= window:
            out[cid][3] += cost
    for (cid,) in session.execute(select(Click.channel_id).where(Click.at >= lo, Click.at < hi)):
        out.setdefault(cid, [0] * 6)[4] += 1
    for cid, fen in session.execute(select(ChannelCost.channel_id, ChannelCost.amount_fen)
                                    .where(ChannelCost.day >= start, ChannelCost.day <= end)):
        out.setdefault(cid, [0] * 6)[5] += fen
    return out


def measure(url: str, runs: int) -> dict[str, dict[str, float]]:
    from sqlalchemy.orm import Session

    from dashboards.queries import channel_economics
    from growth.db import Database

    db = Database(url)
    today = NOW.date()
    cases = {"30 days": (today - timedelta(days=29), today), "90 days": (today - timedelta(days=89), today)}
    result: dict[str, dict[str, float]] = {}
    try:
        for label, (start, end) in cases.items():
            for name, fn in (("queries", lambda s, a=start, b=end: channel_economics(
                    session=s, start=a, end=b, window_days=30, now=NOW)),
                             ("naive", lambda s, a=start, b=end: naive(s, a, b, 30))):
                times = []
                for _ in range(runs + 1):  # the first warms the caches and is not counted
                    with Session(db.engine) as s:
                        t0 = time.perf_counter()
                        fn(s)
                        times.append((time.perf_counter() - t0) * 1000)
                times = times[1:]
                result[f"{label} {name}"] = {"p50": statistics.median(times), "max": max(times)}
    finally:
        db.dispose()
    return result


def main(argv: list[str]) -> int:
    """Seed a fresh database per kind and time the queries."""
    return run_seed_and_measure(argv, doc=__doc__ or "", pg_default=PG_DEFAULT, runs=7, width=18, seed=seed,
                                measure=measure, fresh=fresh)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
