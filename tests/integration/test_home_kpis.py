"""GET /api/v1/dashboards/kpis, the KPI page's CSV and the home strip against a plain-Python count.

Generated rows: investors registering and first investing, investments and rewards (with their ledger cost) spread
over two months, plus rows at 23:59:59 and 00:00:00 Asia/Shanghai on every period's edges, at the frozen "now"
and its twin in the previous period (the previous period ends at the same time of day, exclusive). A registration
that arrives late through the event log moves an investor to an earlier day. The expected figures use none of the
project's code: only the generated truth, zoneinfo and the definitions.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import event as sa_event
from sqlalchemy import insert, select

from growth.db import get_db
from growth.events.processor import drain
from growth.investors.models import Investment, Investor
from growth.rewards.models import Reward, RewardBudget
from tests.events import event, post_events
from tests.factories import make_token

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 10, 14, 30, 15, tzinfo=SH).astimezone(UTC)  # Thursday afternoon in Shanghai
PERIODS = ("today", "7d", "30d", "this_month")


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=SH).astimezone(UTC)


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


@dataclass
class Truth:
    registrations: list[datetime]
    first_investments: list[datetime]
    investments: list[tuple[datetime, int]]
    rewards: list[tuple[datetime, int]]


def _edges() -> list[datetime]:
    """Instants on both sides of every period's and previous period's ends, and of the cut at "now"."""
    days = [date(2026, 12, 10), date(2026, 12, 9), date(2026, 12, 4), date(2026, 11, 27), date(2026, 11, 11),
            date(2026, 10, 12), date(2026, 12, 1), date(2026, 11, 21), date(2026, 11, 30)]
    out = []
    for day in days:
        out.append(local(day.year, day.month, day.day))
        before = day - timedelta(days=1)
        out.append(local(before.year, before.month, before.day, 23, 59, 59))
    for k in (1, 7, 30, 10):  # "now" in each previous period: excluded; a second before: included
        out += [NOW - timedelta(days=k), NOW - timedelta(days=k, seconds=1)]
    return out + [NOW - timedelta(seconds=1)]


def _generate(seed: int) -> Truth:
    rng = random.Random(seed)
    start = local(2026, 10, 1)
    span = (NOW - start).total_seconds()
    edges = _edges()

    def when() -> datetime:
        return rng.choice(edges) if rng.random() < 0.3 else start + timedelta(seconds=rng.uniform(0, span))

    regs = [when() for _ in range(260)]
    firsts = [when() for _ in range(140)]
    invs = [(when(), rng.randint(1, 5_000_000)) for _ in range(300)]
    rewards = [(when(), rng.choice([0, 0, rng.randint(1, 50_000)])) for _ in range(200)]
    # Rows after "now" (a clock ahead) are outside every period.
    regs.append(NOW + timedelta(seconds=5))
    return Truth(regs, firsts, invs, rewards)


def _arrange(app: Any, truth: Truth) -> None:
    with get_db(app).session_scope(write=True) as s:
        budget = RewardBudget(owner_type="manual", owner_key="manual", name="m", created_at=NOW)
        s.add(budget)
        s.flush()
        investors = []
        for n in range(max(len(truth.registrations), len(truth.first_investments))):
            investors.append({
                "platform_user_id": f"k{n:05d}", "referral_code": f"K{n:05d}",
                "registered_at": truth.registrations[n] if n < len(truth.registrations) else None,
                "first_investment_at": truth.first_investments[n] if n < len(truth.first_investments) else None})
        s.execute(insert(Investor), investors)
        ids = list(s.scalars(select(Investor.id).order_by(Investor.id)))
        s.execute(insert(Investment), [
            {"investment_id": f"i{n}", "investor_id": ids[n % len(ids)], "amount_fen": fen, "term_days": 30,
             "started_at": at, "status": "redeemed" if n % 5 == 0 else "active", "reward_ids": []}
            for n, (at, fen) in enumerate(truth.investments)])
        s.execute(insert(Reward), [
            {"key": f"r{n}", "investor_id": ids[n % len(ids)], "kind": "cash", "status": "granted",
             "budget_id": budget.id, "cost_fen": fen, "amount_fen": fen, "granted_at": at, "granted_by": "test",
             "cause": f"test:{n}"} for n, (at, fen) in enumerate(truth.rewards)])


def expected(truth: Truth, period: str) -> dict[str, Any]:
    """Compute the KPIs plainly: Shanghai days, the current period up to NOW, the previous as long before it."""
    today = NOW.astimezone(SH).date()
    n = {"today": 1, "7d": 7, "30d": 30, "this_month": today.day}[period]
    first_day = today - timedelta(days=n - 1)
    lo = datetime(first_day.year, first_day.month, first_day.day, tzinfo=SH)
    length = NOW - lo
    prev_lo = lo - timedelta(days=n)

    def days(base: date) -> list[date]:
        return [base + timedelta(days=i) for i in range(n)]

    def per_day(items: list[tuple[datetime, int]], a: datetime, b: datetime, day_list: list[date]) -> list[int]:
        sums = dict.fromkeys(day_list, 0)
        for at, value in items:
            if a <= at < b:
                sums[at.astimezone(SH).date()] += value
        return [sums[d] for d in day_list]

    series = {"registrations": [(t, 1) for t in truth.registrations],
              "first_investors": [(t, 1) for t in truth.first_investments],
              "volume": truth.investments, "incentive_spend": truth.rewards}
    cur_days, prev_days = days(first_day), days(first_day - timedelta(days=n))
    cur = {k: per_day(v, lo, NOW, cur_days) for k, v in series.items()}
    prev = {k: per_day(v, prev_lo, prev_lo + length, prev_days) for k, v in series.items()}

    def shown(key: str, value: int) -> int | str:
        return yuan(value) if key in ("volume", "incentive_spend") else value

    def change(a: int, b: int) -> str | None:
        if b == 0:
            return None
        from decimal import ROUND_HALF_UP, Decimal
        return str((Decimal(a - b) / Decimal(b)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))

    kpis = []
    for key in series:
        a, b = sum(cur[key]), sum(prev[key])
        kpis.append({"key": key, "value": shown(key, a), "previous": shown(key, b), "delta": shown(key, a - b),
                     "change": change(a, b)})
    return {
        "period": period, "start": first_day.isoformat(), "end": today.isoformat(),
        "previous_start": prev_days[0].isoformat(), "previous_end": prev_days[-1].isoformat(), "kpis": kpis,
        "days": [{"day": d.isoformat(), **{k: shown(k, cur[k][i]) for k in series}} for i, d in enumerate(cur_days)],
        "previous_days": [{"day": d.isoformat(), **{k: shown(k, prev[k][i]) for k in series}}
                          for i, d in enumerate(prev_days)],
    }


@pytest.fixture
def truth(app) -> Truth:  # type: ignore[no-untyped-def]
    generated = _generate(20261210)
    _arrange(app, generated)
    return generated


@pytest.fixture
def token(app) -> str:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return make_token(s, role="analyst")


def _api(client, token: str, **params: Any):  # type: ignore[no-untyped-def]
    with time_machine.travel(NOW, tick=False):
        return client.get("/api/v1/dashboards/kpis", query_string=params, headers={"Authorization": f"Bearer {token}"})


def test_the_generated_data_cover_the_edges_of_every_period(truth):
    for period in PERIODS:
        want = expected(truth, period)
        assert all(k["value"] not in (0, "0.00") for k in want["kpis"]), period
        assert all(k["previous"] not in (0, "0.00") for k in want["kpis"]), period
    # The cut at "now" matters: counting whole days would give other previous figures.
    assert NOW - timedelta(days=7, seconds=1) in truth.registrations


def test_every_kpi_and_its_previous_period_agree_with_a_plain_count(client, truth, token):
    for period in PERIODS:
        response = _api(client, token, period=period)
        assert response.status_code == 200, response.get_data(as_text=True)
        got = dict(response.json)
        assert got.pop("as_of") == NOW.isoformat()
        assert datetime.fromisoformat(got.pop("previous_as_of")) == NOW - timedelta(
            days=len(got["days"]))
        assert got == expected(truth, period), period


def test_the_default_period_is_seven_days_and_a_bad_one_is_refused_in_both_languages(client, truth, token):
    assert _api(client, token).json["period"] == "7d"
    response = _api(client, token, period="fortnight")
    assert response.status_code == 422
    assert response.json["errors"][0]["path"] == "period"
    assert "today" in response.json["errors"][0]["message"]


def test_the_csv_holds_both_periods_daily_figures(client, truth, login):
    with time_machine.travel(NOW, tick=False):
        login("marketer")
        response = client.get("/dashboards/kpis", query_string={"period": "30d", "format": "csv"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    want = expected(truth, "30d")
    assert rows == [{"period": name, **{k: str(v) for k, v in day.items()}}
                    for name, days in (("current", want["days"]), ("previous", want["previous_days"]))
                    for day in days]


def test_the_home_strip_shows_the_same_figures(client, truth, login):
    with time_machine.travel(NOW, tick=False):
        login("analyst")
        html = client.get("/", query_string={"period": "this_month"}).get_data(as_text=True)
    want = {k["key"]: k for k in expected(truth, "this_month")["kpis"]}
    for key, kpi in want.items():
        raw = kpi["value"] if isinstance(kpi["value"], int) else int(kpi["value"].replace(".", ""))
        assert f'data-kpi="{key}"' in html
        assert f'data-value="{raw}"' in html
        assert f'data-change="{kpi["change"] or ""}"' in html


def test_a_registration_arriving_late_counts_on_its_own_earlier_day(app, client, token):
    later, earlier = local(2026, 12, 9, 0, 0, 0), local(2026, 12, 8, 23, 59, 59)
    with time_machine.travel(NOW, tick=False):
        assert post_events(client, [event("user.registered", "late1", later, {})]).json["rejected"] == []
        drain(app)
        days = {d["day"]: d["registrations"] for d in _api(client, token, period="7d").json["days"]}
        assert days["2026-12-09"] == 1 and days["2026-12-08"] == 0
        assert post_events(client, [event("user.registered", "late1", earlier, {})]).json["rejected"] == []
        drain(app)
        days = {d["day"]: d["registrations"] for d in _api(client, token, period="7d").json["days"]}
    assert days["2026-12-09"] == 0 and days["2026-12-08"] == 1


def test_the_kpis_take_four_queries_however_many_rows(app, client, token, truth):
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    engine = get_db(app).engine
    sa_event.listen(engine, "before_cursor_execute", before)
    try:
        for period in PERIODS:
            _api(client, token, period=period)  # warm: the token's check is not the KPIs'
            seen.clear()
            assert _api(client, token, period=period).status_code == 200
            kpi_queries = [q for q in seen if "CASE WHEN" in q]
            assert len(kpi_queries) == 4, period
    finally:
        sa_event.remove(engine, "before_cursor_execute", before)
