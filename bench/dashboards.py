"""Benchmark the funnel and channel-economics JSON APIs on a large event log, beside a naive event scan.

Run from the project root (see bench/README.md):

    .venv/bin/python bench/dashboards.py                                # 1,000,000 investors, ≈10 events each
    .venv/bin/python bench/dashboards.py --size 2000 --runs 3 --db sqlite --check-processor

Per database, on a fresh migrated one (bench/crm.py's `fresh`):

  1. Seed (untimed, bare driver, a progress bar): the platform_events log (user.registered with channel_code /
     click_id / referral_code, kyc, card, deposits, investment.created with amount and term, matured, redeemed,
     withdrawn, ≈10 per investor) AND what the processor derives from it (investors with milestones, channel,
     referrer and totals; investments; fund movements), plus what no event carries (20 paid channels with a
     tracking link and two years of daily costs, clicks, rewards, campaigns with members and a holdout); then
     ANALYZE. `--check-processor` also runs the real processor over the same events on a second fresh database
     and compares the derived tables row by row.
  2. In process, through `app.test_client()` with an analyst's API token: GET /api/v1/funnel for every
     grouping (last 30 and 90 days, window 30) and GET /api/v1/acquisition/economics (last 30 and 90 days),
     one warm-up then R timed requests each. Beside each, a naive query: ONE SQL statement that derives the
     same figures from platform_events (milestones as MIN(occurred_at) per user and type, the channel from the
     registration's payload), timed too, and its result must equal the API's (exit 1 and a loud line if not).
  3. p50 and max per request against issue 12's targets: funnel p50 ≤ 300 ms, economics p50 ≤ 500 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parent.parent
# The project root first: this script's name would otherwise hide the `dashboards` package it measures.
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bulk import Table, load  # noqa: E402
from crm import GIVEN, PG_DEFAULT, SURNAMES, fresh, referral_codes  # noqa: E402
from economics import CHANNELS, CLICK_COLUMNS, REWARD_COLUMNS, channel_tables, reward_row  # noqa: E402
from harness import (  # noqa: E402
    CONTACT_INDEX_COLUMNS,
    BenchError,
    add_common_options,
    sealed_contact,
    sqlite_text,
    use_bench_keys,
    wait_for_quiet,
)

from growth.crypto import keyring  # noqa: E402
from growth.events.rules import dump_payload  # noqa: E402

SIZE = 1_000_000
RUNS = 7
PART = 5_000  # investors generated and written at a time
SHANGHAI = timezone(timedelta(hours=8))
TARGETS_MS = {"funnel": 300.0, "economics": 500.0}
GROUPINGS = ("none", "channel", "week", "campaign", "referral")
RANGES = {"30 days": 30, "90 days": 90}
WINDOW_DAYS = 30
REFERRAL_ID, ORGANIC_ID = CHANNELS + 1, CHANNELS + 2
CAMPAIGN_TYPES = ("new_user", "first_investment_nudge", "rate_boost", "cashback", "maturity_reinvest",
                  "reactivation")
TERMS = (30, 90, 180, 365)
RATES = ("0.0600", "0.0850", "0.1000")
DERIVED_INVESTOR_COLUMNS = (
    "id", "platform_user_id", "referral_code", "phone", "phone_at", "name", "name_at", "email", "email_at",
    "registered_at", "kyc_verified_at", "card_bound_at", "first_deposit_at", "first_investment_at",
    "repeat_investment_at", "investment_count", "investment_total_fen", "holdings_fen", "deposit_total_fen",
    "withdrawal_total_fen", "last_activity_at", "referrer_id", "referral_code_used", "channel_id", "click_id",
    "channel_code_given", "device_id", "registration_ip", *CONTACT_INDEX_COLUMNS,
)
EVENT_COLUMNS = ("seq", "event_id", "type", "occurred_at", "user_id", "payload", "received_at")
DERIVED_INVESTMENT_COLUMNS = (
    "investor_id", "investment_id", "product_id", "product_name", "term_days", "annual_rate_bp", "amount_fen",
    "started_at", "maturity_date", "status", "reward_ids", "redeemed_fen", "redeemed_at", "matured_principal_fen",
    "interest_fen", "matured_at",
)
MOVEMENT_COLUMNS = ("kind", "external_id", "investor_id", "amount_fen", "occurred_at")
CAMPAIGN_COLUMNS = ("id", "name", "type", "message_class", "definition", "status", "version", "created_at",
                    "updated_at")
MEMBER_COLUMNS = ("campaign_id", "investor_id", "entry_key", "cause", "holdout", "entered_at", "status",
                  "rewards_granted", "due_at", "created_at", "fulfilled_at")


# --- the book: events and what the processor derives from them ------------------------------------------


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


@dataclass
class Investor:
    """One generated investor: their events and derived rows, built together so they agree."""

    id: int
    uid: str
    registered: datetime
    events: list[tuple[str, datetime, dict[str, Any]]] = field(default_factory=list)
    investments: list[tuple[Any, ...]] = field(default_factory=list)
    movements: list[tuple[Any, ...]] = field(default_factory=list)

    def event(self, type_: str, at: datetime, data: dict[str, Any], user: dict[str, Any] | None = None) -> None:
        """Record an event of this investor."""
        self.events.append((type_, at, {"data": data, **({"user": user} if user else {})}))


def _step(rng: random.Random, previous: datetime | None, chance: float, registered: datetime,
          now: datetime) -> datetime | None:
    """Return when the next funnel step happened (None: it did not, or not yet); a few land on the window's edge."""
    if previous is None or rng.random() >= chance:
        return None
    if rng.random() < 0.02:  # exactly on the window's last second, or one second past it
        at = registered + timedelta(days=WINDOW_DAYS, seconds=rng.choice((0, 1)))
        at = max(at, previous)
    else:
        at = previous + timedelta(hours=rng.randrange(1, 400), seconds=rng.randrange(3600))
    return at if at <= now else None


def generate_investor(rng: random.Random, i: int, codes: list[str], now: datetime,
                      clicks: list[tuple[Any, ...]]) -> tuple[Investor, tuple[Any, ...]]:
    """Return an investor's events and derived state, and their investors row (DERIVED_INVESTOR_COLUMNS)."""
    uid = f"u{i:07d}"
    registered = now - timedelta(seconds=rng.randrange(60, 2 * 365 * 86400))
    inv = Investor(i, uid, registered)
    # Attribution (the spec's order): a known click, else a channel code, else a known referrer, else organic.
    roll = rng.random()
    channel = rng.randrange(1, CHANNELS + 1)
    click_id = code = None
    if roll < 0.45:
        click_id = f"k{i}"
        if rng.random() < 0.95:  # the rest name a click nobody recorded: the next rule decides
            clicks.append((click_id, channel, channel, registered - timedelta(minutes=rng.randrange(1, 600)),
                           "", "", ""))
        else:
            channel = 0
    elif roll < 0.65:
        code = f"ch_{channel:02d}"
    if roll >= 0.65 or channel == 0:
        channel = 0
    referrer = rng.randrange(1, i) if i > 1 and rng.random() < 0.2 else None
    rcode = codes[referrer - 1] if referrer else None
    if channel == 0:
        channel = REFERRAL_ID if referrer else ORGANIC_ID
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
    email = f"user{i}@example.com" if rng.random() < 0.5 else None
    phone = f"+8613{i:09d}"
    data = {k: v for k, v in (("channel_code", code), ("click_id", click_id), ("referral_code", rcode)) if v}
    data.update(device_id=f"d{i}", ip=f"10.{i % 256}.{i // 256 % 256}.1")
    inv.event("user.registered", registered, data,
              {"id": uid, "phone": phone, "name": name, **({"email": email} if email else {})})
    kyc = _step(rng, registered, 0.75, registered, now)
    card = _step(rng, kyc, 0.85, registered, now)
    deposit = _step(rng, card, 0.8, registered, now)
    first = _step(rng, deposit, 0.8, registered, now)
    for type_, at in (("user.kyc_verified", kyc), ("user.card_bound", card)):
        if at:
            inv.event(type_, at, {})
    starts: list[datetime] = []
    totals = {"investment": 0, "holdings": 0, "deposit": 0, "withdrawal": 0}

    def move(kind: str, at: datetime, fen: int) -> None:
        ext = f"{kind[0]}{i}-{len(inv.movements)}"
        inv.event(f"funds.{kind}ed" if kind == "deposit" else "funds.withdrawn", at,
                  {f"{kind}_id": ext, "amount": _yuan(fen)})
        inv.movements.append((kind, ext, i, fen, at))
        totals[kind] += fen

    if deposit and not first:
        move("deposit", deposit, rng.randrange(100, 5_000) * 10_000)
    at = first
    for k in range(rng.randrange(1, 17) if first else 0):
        if k:
            at = at + timedelta(days=rng.randrange(1, 60), seconds=rng.randrange(86400))  # type: ignore[operator]
            if at > now:
                break
        assert at is not None
        fen = rng.randrange(10, 500) * 10_000
        move("deposit", deposit if k == 0 and deposit else at - timedelta(minutes=10), fen)  # type: ignore[arg-type]
        term, rate = rng.choice(TERMS), rng.choice(RATES)
        iid = f"i{i}-{k}"
        inv.event("investment.created", at, {"investment_id": iid, "amount": _yuan(fen), "product": {
            "id": f"p{term}", "name": f"月月盈 {term}天", "term_days": term, "annual_rate": rate}})
        starts.append(at)
        totals["investment"] += fen
        due = at + timedelta(days=term)
        status, redeemed_at, matured_at, interest = "active", None, None, 0
        if due <= now and rng.random() < 0.85:
            status, matured_at = "matured", due
            interest = fen * int(rate[2:]) * term // (10_000 * 365) + 1
            inv.event("investment.matured", due, {"investment_id": iid, "amount": _yuan(fen),
                                                  "interest": _yuan(interest)})
            if rng.random() < 0.3 and due + timedelta(hours=1) <= now:
                move("withdrawal", due + timedelta(hours=1), fen + interest)
        elif rng.random() < 0.15:
            early = at + timedelta(days=rng.randrange(1, term), seconds=rng.randrange(86400))
            if early <= now:
                status, redeemed_at = "redeemed", early
                inv.event("investment.redeemed", early, {"investment_id": iid, "amount": _yuan(fen)})
        if status == "active":
            totals["holdings"] += fen
        inv.investments.append((
            i, iid, f"p{term}", f"月月盈 {term}天", term, int(rate[2:]), fen, at,
            (at.astimezone(SHANGHAI) + timedelta(days=term)).date(), status, "[]",
            fen if redeemed_at else 0, redeemed_at, fen if matured_at else 0, interest, matured_at))
    deposits = [m[4] for m in inv.movements if m[0] == "deposit"]
    (phone_, name_, email_), index = sealed_contact(keyring(), phone, name, email)  # stored encrypted
    row = (i, uid, codes[i - 1], phone_, registered, name_, registered, email_, registered if email else None,
           registered, kyc, card, min(deposits) if deposits else None, starts[0] if starts else None,
           starts[1] if len(starts) > 1 else None, len(starts), totals["investment"], totals["holdings"],
           totals["deposit"], totals["withdrawal"], max(at for _t, at, _b in inv.events), referrer, rcode, channel,
           click_id, code, f"d{i}", data["ip"], *index)
    return inv, row


@dataclass
class Seq:
    """Ids handed out across parts."""

    event: int = 0
    reward: int = 0


def generate_part(first: int, last: int, codes: list[str], now: datetime, seed: int, seq: Seq,
                  *, derived: bool = True) -> list[Table]:
    """Return the tables of investors first..last: the log and (unless `derived` is off) the state beside it."""
    rng = random.Random(seed * 1_000_003 + first)
    events, investors, investments, movements, clicks, rewards, members = [], [], [], [], [], [], []
    for i in range(first, last + 1):
        inv, row = generate_investor(rng, i, codes, now, clicks)
        investors.append(row)
        investments.extend(inv.investments)
        movements.extend(inv.movements)
        for type_, at, body in sorted(inv.events, key=lambda e: e[1]):
            seq.event += 1
            event_id = f"evt_{seq.event:09d}"
            payload = {"id": event_id, "type": type_, "occurred_at": at.astimezone(SHANGHAI).isoformat(),
                       "user": body.get("user") or {"id": inv.uid}, "data": body["data"]}
            events.append((seq.event, event_id, type_, at, inv.uid, dump_payload(payload, keyring()), at))
        if rng.random() < 0.8:  # a click that brought nobody (yet)
            cid = rng.randrange(1, CHANNELS + 1)
            clicks.append((f"x{i}", cid, cid, now - timedelta(seconds=rng.randrange(2 * 365 * 86400)), "", "", ""))
        if rng.random() < 0.3:
            seq.reward += 1
            rewards.append((*reward_row(rng, seq.reward, i, inv.registered), None))
        entered = inv.registered + timedelta(hours=rng.randrange(0, 7 * 24))
        if rng.random() < 0.25 and entered <= now:  # a campaign member; a tenth held out
            campaign = rng.randrange(1, len(CAMPAIGN_TYPES) + 1)
            holdout = rng.random() < 0.1
            members.append((campaign, i, "once", f"bench:{campaign}", holdout, entered,
                            "holdout" if holdout else "done", 0 if holdout else 1, entered, entered,
                            None if holdout else entered))
            if not holdout:
                seq.reward += 1
                reward = reward_row(rng, seq.reward, i, entered)
                rewards.append((*reward[:1], f"campaign-{campaign}-{i}", *reward[2:8], entered, *reward[9:],
                                campaign))
    tables: list[Table] = [("platform_events", EVENT_COLUMNS, events), ("clicks", CLICK_COLUMNS, clicks)]
    if derived:
        tables += [("investors", DERIVED_INVESTOR_COLUMNS, investors),
                   ("investments", DERIVED_INVESTMENT_COLUMNS, investments),
                   ("funds_movements", MOVEMENT_COLUMNS, movements),
                   ("rewards", (*REWARD_COLUMNS, "campaign_id"), rewards),
                   ("campaign_members", MEMBER_COLUMNS, members)]
    return tables


def fixed_tables(now: datetime, seed: int) -> list[Table]:
    """Return what does not grow with the book: channels (20 paid, referral, organic), links, costs, campaigns."""
    from campaigns.presets import preset

    tables = channel_tables(random.Random(seed), now)
    name, columns, channels = tables[0]
    channels = [*channels, (REFERRAL_ID, "referral", "邀请好友", "referral", "", "", True, False, now),
                (ORGANIC_ID, "organic", "自然流量", "organic", "", "", True, False, now)]
    started = now - timedelta(days=2 * 365 + 10)
    campaigns = [(k, f"活动{k}", type_, "marketing", json.dumps(preset(type_, now=started), ensure_ascii=False),
                  "running", 1, started, started) for k, type_ in enumerate(CAMPAIGN_TYPES, 1)]
    return [(name, columns, channels), *tables[1:], ("campaigns", CAMPAIGN_COLUMNS, campaigns)]


def seed(kind: str, url: str, n: int, now: datetime, seed_: int, *, derived: bool = True,
         label: str = "loading") -> dict[str, int]:
    """Generate and load the book a part at a time behind a progress bar; return the row counts."""
    codes = referral_codes(n)
    seq = Seq()
    counts: dict[str, int] = {}

    def parts(bar: Any) -> Iterator[list[Table]]:
        fixed = fixed_tables(now, seed_)
        yield fixed if derived else [t for t in fixed if t[0] in ("acquisition_channels", "tracking_links")]
        for first in range(1, n + 1, PART):
            last = min(first + PART - 1, n)
            part = generate_part(first, last, codes, now, seed_, seq, derived=derived)
            for name, _c, rows in part:
                counts[name] = counts.get(name, 0) + len(rows)
            yield part
            bar.update(last - first + 1)
        yield [("processor_cursors", ("name", "position", "updated_at"),
                [("projections", seq.event if derived else 0, now)])]

    with click.progressbar(length=n, label=f"{kind}: {label} {n:,} investors", file=sys.stderr,
                           show_pos=True, show_eta=True) as bar:
        load(kind, url, parts(bar), done=lambda: print(f"{kind}: ANALYZE …", file=sys.stderr, flush=True))
    return counts


# --- the naive event scan: one SQL statement over platform_events --------------------------------------


@dataclass(frozen=True)
class Dialect:
    """The few SQL fragments that differ between SQLite and PostgreSQL."""

    name: str

    def data(self, path: str) -> str:
        """Return a text field of the event's payload (dotted path below `data`)."""
        if self.name == "sqlite":
            return f"json_extract(payload, '$.data.{path}')"
        return f"(payload::json #>> '{{data,{path.replace('.', ',')}}}')"

    def fen(self, path: str) -> str:
        """Return a yuan string of the payload as integer fen."""
        if self.name == "sqlite":
            return f"CAST(ROUND(CAST({self.data(path)} AS REAL) * 100) AS INTEGER)"
        return f"ROUND(({self.data(path)})::numeric * 100)::bigint"

    def integer(self, path: str) -> str:
        """Return an integer field of the payload."""
        return f"CAST({self.data(path)} AS INTEGER)" if self.name == "sqlite" else f"({self.data(path)})::int"

    def within(self, at: str, registered: str) -> str:
        """Return the funnel's rule: `at` is at most window_days × 24 h after `registered` (earlier counts)."""
        if self.name == "sqlite":
            return (f"(CAST(strftime('%s', {at}) AS INTEGER) - CAST(strftime('%s', {registered}) AS INTEGER)"
                    f" <= :window * 86400)")
        return f"({at} - {registered} <= make_interval(days => :window))"

    def week(self, at: str) -> str:
        """Return the ISO week key (YYYY-Www) of a time's Asia/Shanghai date."""
        if self.name == "postgresql":
            return f"to_char({at} AT TIME ZONE 'Asia/Shanghai', 'IYYY-\"W\"IW')"
        # The Thursday of the date's ISO week carries the week's year and number.
        thursday = (f"date({at}, '+8 hours', '-' || ((CAST(strftime('%w', {at}, '+8 hours') AS INTEGER) + 6) % 7)"
                    f" || ' days', '+3 days')")
        return (f"(strftime('%Y', {thursday}) || '-W' || "
                f"printf('%02d', (CAST(strftime('%j', {thursday}) AS INTEGER) - 1) / 7 + 1))")

    def param(self, at: datetime) -> Any:
        """Return a time as a bind parameter compared with stored times."""
        return sqlite_text(at) if self.name == "sqlite" else at


MILESTONE_TYPES = ("user.registered", "user.kyc_verified", "user.card_bound", "funds.deposited",
                   "investment.created")


def _cohort_sql(d: Dialect) -> str:
    """Return the CTEs every naive query shares: milestones per user, the registration's channel, the cohort."""
    mins = ",\n    ".join(f"MIN(CASE WHEN type = '{t}' THEN occurred_at END) AS m{k}"
                          for k, t in enumerate(MILESTONE_TYPES))
    return f"""
m AS (
  SELECT user_id, {mins}
  FROM platform_events GROUP BY user_id
),
created AS (  -- each investment as its earliest investment.created event says
  SELECT user_id, iid, at, fen, term FROM (
    SELECT user_id, {d.data('investment_id')} AS iid, occurred_at AS at, {d.fen('amount')} AS fen,
           {d.integer('product.term_days')} AS term,
           ROW_NUMBER() OVER (PARTITION BY {d.data('investment_id')} ORDER BY occurred_at, seq) AS k
    FROM platform_events WHERE type = 'investment.created') c WHERE k = 1
),
firsts AS (  -- per user: the first investment's amount and the second one's start (the repeat milestone)
  SELECT user_id, MAX(CASE WHEN k = 1 THEN fen END) AS fen, MAX(CASE WHEN k = 2 THEN at END) AS at FROM (
    SELECT user_id, at, fen, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY at, iid) AS k FROM created) r
  WHERE k <= 2 GROUP BY user_id
),
cohort AS (
  SELECT m.user_id, m.m0, m.m1, m.m2, m.m3, m.m4, f.at AS m5, f.fen AS first_fen,
         CASE WHEN referrer.id IS NOT NULL THEN 'referred' ELSE 'not_referred' END AS referred,
         COALESCE(clicked.code, CASE WHEN {d.data('channel_code')} <> '' THEN {d.data('channel_code')} END,
                  CASE WHEN referrer.id IS NOT NULL THEN 'referral' END, 'organic') AS channel
  FROM m
  LEFT JOIN firsts f ON f.user_id = m.user_id
  -- the earliest registration's data, looked up by user for the cohort's members only
  LEFT JOIN platform_events reg ON reg.user_id = m.user_id AND reg.type = 'user.registered' AND reg.occurred_at = m.m0
  LEFT JOIN clicks ON clicks.click_id = {d.data('click_id')}
  LEFT JOIN acquisition_channels clicked ON clicked.id = clicks.channel_id
  LEFT JOIN investors referrer ON referrer.referral_code = {d.data('referral_code')}  -- who the code names
  WHERE m.m0 >= :lo AND m.m0 < :hi
)"""


def funnel_sql(d: Dialect, group_by: str) -> str:
    """Return the naive funnel: per group, how many reached each step within the window (spec's rule)."""
    group = {"none": "'total'", "channel": "channel", "week": d.week("m0"), "referral": "referred",
             "campaign": "'total'"}[group_by]
    reached = [f"m{k} IS NOT NULL AND {d.within(f'm{k}', 'm0')}" for k in range(1, 6)]
    counts = ", ".join(f"SUM(CASE WHEN {' AND '.join(reached[:k])} THEN 1 ELSE 0 END)" for k in range(1, 6))
    return f"WITH {_cohort_sql(d)}\nSELECT {group} AS k, COUNT(*), {counts} FROM cohort GROUP BY 1"


def economics_sql(d: Dialect) -> str:
    """Return the naive channel economics: (channel code, figure, value) rows from the log and the cost tables."""
    first_within = f"m4 IS NOT NULL AND {d.within('m4', 'm0')}"
    return f"""WITH {_cohort_sql(d)}
SELECT channel, 'registrations', COUNT(*) FROM cohort GROUP BY channel
UNION ALL SELECT channel, 'first_investors', SUM(CASE WHEN {first_within} THEN 1 ELSE 0 END) FROM cohort
  GROUP BY channel
UNION ALL SELECT channel, 'first_fen', SUM(CASE WHEN {first_within} THEN first_fen ELSE 0 END) FROM cohort
  GROUP BY channel
UNION ALL SELECT channel, 'open_before', SUM(CASE WHEN m0 > :open_before THEN 1 ELSE 0 END) FROM cohort
  GROUP BY channel
UNION ALL SELECT channel, 'open_after', SUM(CASE WHEN m0 > :open_after THEN 1 ELSE 0 END) FROM cohort
  GROUP BY channel
UNION ALL SELECT channel, 'amount_term', SUM(c.fen * c.term) FROM cohort JOIN created c ON c.user_id = cohort.user_id
  WHERE {d.within('c.at', 'm0')} GROUP BY channel
UNION ALL SELECT channel, 'incentive_fen', SUM(r.cost_fen) FROM cohort
  JOIN investors i ON i.platform_user_id = cohort.user_id JOIN rewards r ON r.investor_id = i.id
  WHERE {d.within('r.granted_at', 'm0')} GROUP BY channel
UNION ALL SELECT ch.code, 'cost_fen', SUM(cc.amount_fen) FROM channel_costs cc
  JOIN acquisition_channels ch ON ch.id = cc.channel_id WHERE cc.day >= :start AND cc.day <= :end GROUP BY ch.code
UNION ALL SELECT ch.code, 'clicks', COUNT(*) FROM clicks cl JOIN acquisition_channels ch ON ch.id = cl.channel_id
  WHERE cl.at >= :lo AND cl.at < :hi GROUP BY ch.code"""


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """Return the UTC instants [lo, hi) of the Asia/Shanghai days start..end."""
    lo = datetime(start.year, start.month, start.day, tzinfo=SHANGHAI).astimezone(UTC)
    return lo, datetime(end.year, end.month, end.day, tzinfo=SHANGHAI).astimezone(UTC) + timedelta(days=1)


# --- measuring: the APIs through the test client, the naive statement beside each -----------------------


def _fen(text: str) -> int:
    return int(Decimal(text) * 100)


def _half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass
class Case:
    """One timed request and the naive statement beside it."""

    label: str
    api: str  # "funnel" or "economics"
    path: str
    group_by: str | None
    start: date
    end: date
    times_ms: list[float] = field(default_factory=list)
    naive_ms: list[float] = field(default_factory=list)
    note: str = ""
    mismatches: list[str] = field(default_factory=list)
    mode: str = "rollup"

    def summary(self) -> dict[str, Any]:
        """Return the case's figures as reported."""
        out: dict[str, Any] = {"label": self.label, "api": self.api, "note": self.note, "mode": self.mode,
                               "mismatches": self.mismatches, "n": len(self.times_ms)}
        if self.times_ms:
            out.update(p50=statistics.median(self.times_ms), max=max(self.times_ms))
        if self.naive_ms:
            out.update(naive_p50=statistics.median(self.naive_ms), naive_max=max(self.naive_ms))
        return out


def cases(today: date) -> list[Case]:
    """Return every request the benchmark times."""
    out = []
    for label, days in RANGES.items():
        start = today - timedelta(days=days - 1)
        span = f"start={start.isoformat()}&end={today.isoformat()}&window_days={WINDOW_DAYS}"
        for group in GROUPINGS:
            out.append(Case(f"funnel group_by={group}, {label}", "funnel", f"/api/v1/funnel?{span}&group_by={group}",
                            group, start, today))
        out.append(Case(f"channel economics, {label}", "economics", f"/api/v1/acquisition/economics?{span}", None,
                        start, today))
    return out


def _naive(engine: Any, d: Dialect, case: Case, extra: dict[str, Any]) -> tuple[list[tuple[Any, ...]], float]:
    from sqlalchemy import text

    lo, hi = day_bounds(case.start, case.end)
    params = {"lo": d.param(lo), "hi": d.param(hi), "window": WINDOW_DAYS,
              "start": case.start.isoformat() if d.name == "sqlite" else case.start,
              "end": case.end.isoformat() if d.name == "sqlite" else case.end, **extra}
    statement = text(funnel_sql(d, case.group_by) if case.group_by else economics_sql(d))
    with engine.connect() as conn:
        started = time.perf_counter()
        rows = [tuple(r) for r in conn.execute(statement, params)]
        return rows, (time.perf_counter() - started) * 1000


def compare_funnel(case: Case, body: dict[str, Any], rows: list[tuple[Any, ...]]) -> list[str]:
    """Return how the API's funnel differs from the naive one (nothing when they agree)."""
    naive = {str(r[0]): [int(v or 0) for v in r[1:]] for r in rows}
    total = [sum(c[k] for c in naive.values()) for k in range(6)]
    problems = []
    if body["total"]["counts"] != total:
        problems.append(f"total {body['total']['counts']} ≠ naive {total}")
    groups = {g["key"]: g["counts"] for g in body["groups"]}
    if case.group_by in ("channel", "week", "referral") and groups != naive:
        keys = sorted(set(groups) | set(naive))
        problems += [f"{k}: API {groups.get(k)} ≠ naive {naive.get(k)}" for k in keys if groups.get(k) != naive.get(k)]
    return problems


ECONOMICS_FIELDS = {"registrations": "registrations", "first_investors": "first_investors",
                    "first_investment_amount": "first_fen", "incentive_cost": "incentive_fen", "cost": "cost_fen",
                    "clicks": "clicks"}


def compare_economics(body: dict[str, Any], rows: list[tuple[Any, ...]]) -> list[str]:
    """Return how the API's channel economics differ from the naive statement's (nothing when they agree)."""
    naive: dict[str, dict[str, int]] = {}
    for code, what, value in rows:
        naive.setdefault(code, {})[what] = int(value or 0)
    problems = []
    api = {c["code"]: c for c in body["channels"]}
    for code in sorted(set(api) | {c for c, f in naive.items() if any(f.values())}):
        row, figures = api.get(code), naive.get(code, {})
        if row is None:
            problems.append(f"{code}: missing from the API, naive {figures}")
            continue
        for name, what in ECONOMICS_FIELDS.items():
            got = row[name] if isinstance(row[name], int) else _fen(row[name])
            if got != figures.get(what, 0):
                problems.append(f"{code}.{name}: API {row[name]} ≠ naive {figures.get(what, 0)}")
        annualised = _half_up(figures.get("amount_term", 0), 365)
        if _fen(row["annualised_amount"]) != annualised:
            problems.append(f"{code}.annualised_amount: API {row['annualised_amount']} ≠ naive {annualised} fen")
        # Windows close while the benchmark runs: the API's count lies between the naive counts before and after.
        if not figures.get("open_after", 0) <= row["registrations_window_open"] <= figures.get("open_before", 0):
            problems.append(f"{code}.registrations_window_open: API {row['registrations_window_open']} outside naive "
                            f"[{figures.get('open_after', 0)}, {figures.get('open_before', 0)}]")
    return problems


def measure(kind: str, url: str, runs: int, naive_runs: int, today: date, mode: str,
            naive_cache: dict[str, tuple[list[tuple[Any, ...]], list[float]]]) -> list[Case]:
    """Time every case through the test client and the naive statement beside it; check they agree. `mode` says
    whether the daily cohort rollup is built ("rollup") or not ("live": the cohort read on each request); the
    funnel's naive answers are kept in `naive_cache` for the other mode (the data do not change in between)."""
    from sqlalchemy import create_engine

    from growth.app import create_app
    from growth.auth.services import create_token, create_user
    from growth.db import get_db

    app = create_app({"DATABASE_URL": url, "BACKGROUND_WORK": False, "SECRET_KEY": os.urandom(16).hex()})
    with get_db(app).session_scope(write=True) as session:
        user = create_user(f"analyst-{mode}-{os.getpid()}@bench.test", role="analyst",
                           password="bench horse battery staple", session=session, by="bench")
        token = create_token(user, "bench", session=session)[1]
    headers = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    engine = create_engine(url)
    d = Dialect(kind)
    done = []
    try:
        for case in cases(today):
            first = client.get(case.path, headers=headers)
            if first.status_code == 400 and case.group_by in ("campaign", "referral"):
                case.note = "skipped: the API answers 400"
                done.append(case)
                print(f"{kind:10s} {case.label:34s} {case.note}: {first.get_data(as_text=True)[:200]}",
                      file=sys.stderr, flush=True)
                continue
            if first.status_code != 200:
                raise BenchError(f"{case.path} answered {first.status_code}: {first.get_data(as_text=True)[:300]}")
            for _ in range(runs):
                before = datetime.now(UTC)
                started = time.perf_counter()
                response = client.get(case.path, headers=headers)
                case.times_ms.append((time.perf_counter() - started) * 1000)
                after = datetime.now(UTC)
                if response.status_code != 200:
                    raise BenchError(f"{case.path} answered {response.status_code}")
            body = response.get_json()
            window = timedelta(days=WINDOW_DAYS)
            extra = {} if case.group_by else {"open_before": d.param(before - window),
                                              "open_after": d.param(after - window)}
            if case.group_by and case.label in naive_cache:  # the funnel's naive answer does not move with time
                rows, case.naive_ms = naive_cache[case.label]
            else:
                for _ in range(naive_runs):
                    rows, ms = _naive(engine, d, case, extra)
                    case.naive_ms.append(ms)
                naive_cache[case.label] = (rows, case.naive_ms)
            case.mismatches = (compare_funnel(case, body, rows) if case.group_by else compare_economics(body, rows))
            if case.group_by == "campaign":
                # No event carries campaign entries (they are ours): tests/integration/test_funnel_details.py
                # checks this grouping's groups against a plain count.
                case.note = "naive checks the total only: campaign entries are not in the event log"
            s = case.summary()
            case.mode = mode
            print(f"{kind:10s} {mode:6s} {case.label:34s} p50 {s['p50']:8.1f} ms  max {s['max']:8.1f} ms  naive "
                  f"{s['naive_p50']:9.1f} ms  {'MISMATCH' if case.mismatches else 'equal'}", file=sys.stderr,
                  flush=True)
            for problem in case.mismatches[:20]:
                print(f"  !!! MISMATCH {kind} {case.label}: {problem}", file=sys.stderr, flush=True)
            done.append(case)
    finally:
        engine.dispose()
        get_db(app).dispose()
    return done


# --- the processor check: the derived tables equal what the real processor makes of the same events ------


def _norm(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(value, list):
        return tuple(value)
    return value


def derived_state(url: str) -> dict[str, dict[Any, tuple[Any, ...]]]:
    """Read investors (channel by code, referrer by platform id), investments and movements, keyed by platform ids."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import aliased

    from growth.acquisition.models import AcquisitionChannel
    from growth.investors.models import FundsMovement, Investment, Investor

    engine = create_engine(url)
    referrer = aliased(Investor)
    skip = {"id", "channel_id", "referrer_id", "investor_id"}
    inv_cols = [c for c in Investor.__table__.columns if c.key in DERIVED_INVESTOR_COLUMNS and c.key not in skip]
    ment_cols = [c for c in Investment.__table__.columns if c.key in DERIVED_INVESTMENT_COLUMNS and c.key not in skip]
    move_cols = [c for c in FundsMovement.__table__.columns if c.key in MOVEMENT_COLUMNS and c.key not in skip]
    try:
        with engine.connect() as conn:
            investors = {r[0]: tuple(map(_norm, r)) for r in conn.execute(
                select(*inv_cols, AcquisitionChannel.code, referrer.platform_user_id)
                .outerjoin(AcquisitionChannel, AcquisitionChannel.id == Investor.channel_id)
                .outerjoin(referrer, referrer.id == Investor.referrer_id))}
            investments = {r[0]: tuple(map(_norm, r)) for r in conn.execute(
                select(Investment.investment_id, *ment_cols, Investor.platform_user_id)
                .join(Investor, Investor.id == Investment.investor_id))}
            movements = {(r[0], r[1]): tuple(map(_norm, r)) for r in conn.execute(
                select(FundsMovement.kind, FundsMovement.external_id, *move_cols, Investor.platform_user_id)
                .join(Investor, Investor.id == FundsMovement.investor_id))}
    finally:
        engine.dispose()
    return {"investors": investors, "investments": investments, "funds_movements": movements}


def check_processor(kind: str, url: str, n: int, now: datetime, seed_: int, pg_url: str) -> dict[str, Any]:
    """Run the real processor over the same events on a fresh database; return the rows that differ."""
    from growth.app import create_app
    from growth.db import get_db
    from growth.events.processor import drain

    expected = derived_state(url)
    time.sleep(1.1)  # `fresh` names a PostgreSQL database after the second
    with fresh(kind, pg_url) as other:
        seed(kind, other, n, now, seed_, derived=False, label="events only, for the processor:")
        app = create_app({"DATABASE_URL": other, "BACKGROUND_WORK": False, "SECRET_KEY": os.urandom(16).hex()})
        started = time.perf_counter()
        processed = drain(app, emit=False)
        seconds = time.perf_counter() - started
        get_db(app).dispose()
        actual = derived_state(other)
    differences: dict[str, list[str]] = {}
    for table, rows in expected.items():
        got = actual[table]
        keys = sorted(set(rows) | set(got), key=str)
        differences[table] = [f"{key}: bench {rows.get(key)} ≠ processor {got.get(key)}" for key in keys
                              if rows.get(key) != got.get(key)]
    return {"processed": processed, "seconds": seconds, "rows": {t: len(r) for t, r in expected.items()},
            "differences": {t: d[:20] for t, d in differences.items()},
            "different": {t: len(d) for t, d in differences.items()}}


# --- the run --------------------------------------------------------------------------------------------


def run_one(kind: str, args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    """Seed, optionally check against the processor, and measure one database."""
    from growth.timeutil import local_date

    with database(kind, args) as (url, seeded):
        load_before = [round(x, 2) for x in os.getloadavg()]
        started = time.perf_counter()
        counts = table_counts(url) if seeded else seed(kind, url, args.size, now, args.seed)
        seconds = 0.0 if seeded else time.perf_counter() - started
        print(f"{kind}: {'reused' if seeded else 'seeded'} {counts} in {seconds:.0f} s", file=sys.stderr, flush=True)
        processor = (check_processor(kind, url, args.size, now, args.seed, args.pg_url)
                     if args.check_processor else None)
        if processor:
            print(f"{kind}: processor check {processor['different']} rows differ of {processor['rows']}",
                  file=sys.stderr, flush=True)
        if args.wait_load:
            wait_for_quiet(args.wait_load, args.max_wait)
        load_measure = [round(x, 2) for x in os.getloadavg()]
        # First without the daily cohort rollup (every request reads the cohort), then with it, built as
        # `growth dashboards rebuild` builds it.
        naive: dict[str, tuple[list[tuple[Any, ...]], list[float]]] = {}
        live = measure(kind, url, args.runs, args.naive_runs, local_date(now), "live", naive) if args.live else []
        rollup_seconds = build_rollup(url)
        print(f"{kind}: daily cohort rollup built in {rollup_seconds:.0f} s", file=sys.stderr, flush=True)
        measured = measure(kind, url, args.runs, args.naive_runs, local_date(now), "rollup", naive)
        return {"db": kind, "investors": args.size, "counts": counts, "seed_seconds": seconds,
                "rollup_seconds": rollup_seconds,
                "processor": processor, "cases": [c.summary() for c in [*live, *measured]],
                "load": {"before_seed": load_before, "before_measure": load_measure,
                         "after": [round(x, 2) for x in os.getloadavg()]}}


@contextmanager
def database(kind: str, args: argparse.Namespace) -> Iterator[tuple[str, bool]]:
    """Yield the database to measure and whether it is already seeded: `--reuse`'s, a kept SQLite file (`--keep`,
    seeded now and left in place for a later `--reuse`), or a fresh one removed afterwards."""
    if args.reuse:
        yield args.reuse, True
    elif args.keep and kind == "sqlite":
        from growth.migrate import upgrade

        url = f"sqlite:///{Path(args.keep).resolve()}"
        upgrade(url)
        yield url, False
        print(f"{kind}: kept at {url} (measure it again with --reuse {url})", file=sys.stderr, flush=True)
    else:
        with fresh(kind, args.pg_url) as url:
            yield url, False


def table_counts(url: str) -> dict[str, int]:
    """Count the rows of the tables `seed` reports, in a database seeded earlier."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {t: int(conn.scalar(text(f"SELECT count(*) FROM {t}")) or 0)
                    for t in ("platform_events", "clicks", "investors", "investments", "funds_movements", "rewards",
                              "campaign_members")}
    finally:
        engine.dispose()


def build_rollup(url: str) -> float:
    """Build the daily cohort rollup from the loaded book (as `growth dashboards rebuild`); return the seconds."""
    from dashboards import rollup
    from growth.app import create_app
    from growth.db import get_db

    app = create_app({"DATABASE_URL": url, "BACKGROUND_WORK": False, "SECRET_KEY": os.urandom(16).hex()})
    started = time.perf_counter()
    try:
        rollup.rebuild(session_scope=lambda: get_db(app).session_scope(write=True))
    finally:
        get_db(app).dispose()
    return time.perf_counter() - started


def report(results: list[dict[str, Any]]) -> str:
    """Format the results as the Markdown table bench/README.md keeps."""
    lines = ["| db | investors | events | path | request | p50 | max | naive event scan | target p50 | met | "
             "naive = API |",
             "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | :---: | :---: |"]
    for r in results:
        for c in r["cases"]:
            target = TARGETS_MS[c["api"]]
            if "p50" not in c:
                lines.append(f"| {r['db']} | {r['investors']:,} | {r['counts']['platform_events']:,} | {c['mode']} "
                             f"| {c['label']} | | | | ≤ {target:.0f} ms | | {c['note']} |")
                continue
            met = "yes" if c["p50"] <= target else "**no**"
            same = "**NO**" if c["mismatches"] else ("total only" if "total only" in c["note"] else "yes")
            lines.append(f"| {r['db']} | {r['investors']:,} | {r['counts']['platform_events']:,} | {c['mode']} "
                         f"| {c['label']} "
                         f"| {c['p50']:.1f} ms | {c['max']:.1f} ms | {c['naive_p50']:,.0f} ms | ≤ {target:.0f} ms "
                         f"| {met} | {same} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Parse the arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=SIZE, help="investors (≈10 events each; default 1,000,000)")
    parser.add_argument("--runs", type=int, default=RUNS, help="timed requests per case after one warm-up (7)")
    parser.add_argument("--naive-runs", type=int, default=1, help="runs of each naive statement (1)")
    parser.add_argument("--no-live", dest="live", action="store_false",
                        help="skip the requests timed before the daily cohort rollup is built")
    parser.add_argument("--check-processor", action="store_true",
                        help="also run the real processor over the events and compare the derived tables")
    parser.add_argument("--keep", metavar="FILE",
                        help="SQLite: seed into FILE and keep it (measure it again later with --reuse)")
    parser.add_argument("--reuse", metavar="URL",
                        help="measure a database seeded earlier (--keep) instead of seeding one; give --db too")
    add_common_options(parser, pg_default=PG_DEFAULT, max_wait=1200.0)
    args = parser.parse_args(argv)
    instance = tempfile.mkdtemp(prefix="growth-bench-dashboards-")
    for key in [k for k in os.environ if k.startswith("GROWTH_")]:
        del os.environ[key]
    os.environ["GROWTH_INSTANCE_PATH"] = instance
    use_bench_keys()  # contact data is seeded encrypted, as the app stores it
    now = datetime.now(UTC).replace(microsecond=0)
    results = []
    try:
        for kind in (("sqlite", "postgresql") if args.db == "both" else (args.db,)):
            results.append(run_one(kind, args, now))
    finally:
        shutil.rmtree(instance, ignore_errors=True)
    print(report(results))
    for r in results:
        print(f"\n{r['db']}: loaded in {r['seed_seconds']:,.0f} s; daily cohort rollup built in "
              f"{r['rollup_seconds']:,.1f} s")
    print(f"\n{platform.python_version()} · sqlite {sqlite3.sqlite_version} · {os.cpu_count()} CPUs · "
          f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "targets_ms": TARGETS_MS, "now": now.isoformat()},
                                        indent=1, default=str))
    wrong = [c["label"] for r in results for c in r["cases"] if c["mismatches"]]
    wrong += [f"{r['db']} processor" for r in results if r["processor"] and any(r["processor"]["different"].values())]
    if wrong:
        print(f"\n!!! THE NAIVE SCAN OR THE PROCESSOR DISAGREES: {', '.join(wrong)}", file=sys.stderr)
        return 1
    missed = [c for r in results for c in r["cases"]
              if c["mode"] == "rollup" and "p50" in c and c["p50"] > TARGETS_MS[c["api"]]]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
