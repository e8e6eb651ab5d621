"""The acquisition pages' one period: every figure is counted for it, checked against an independent count."""

from __future__ import annotations

import csv
import io
import random
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import insert, select

from growth.acquisition import services
from growth.acquisition.models import ChannelCost, Click
from growth.db import get_db
from growth.investors.models import Investment, Investor

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # 12:00 on 2026-11-20 in Shanghai
BEIJING = ZoneInfo("Asia/Shanghai")
FIRST_DATA_DAY = datetime(2026, 8, 1, tzinfo=UTC)
# Instants either side of the custom period's edges (Shanghai midnight is 16:00 UTC the day before).
EDGES = [
    datetime(2026, 10, 31, 15, 59, 59, tzinfo=UTC), datetime(2026, 10, 31, 16, 0, tzinfo=UTC),
    datetime(2026, 11, 15, 15, 59, 59, tzinfo=UTC), datetime(2026, 11, 15, 16, 0, tzinfo=UTC),
    datetime(2026, 11, 13, 15, 59, 59, tzinfo=UTC), datetime(2026, 11, 13, 16, 0, tzinfo=UTC),
]
CODES = ("alpha", "beta", "gamma", "idle")


def _yuan(fen: int | None) -> str:
    return "—" if fen is None else f"¥{fen // 100:,}.{fen % 100:02d}"


def _per(cost: int, n: int) -> int | None:
    # Written out differently from the product's rule on purpose: cost / n in exact fractions, halves up.
    return None if n == 0 else int(Fraction(cost, n) + Fraction(1, 2))


@dataclass
class Expected:
    """Figures of one channel, counted in Python from the raw rows."""

    clicks: int = 0
    registrations: int = 0
    first_investors: int = 0
    first_investment_fen: int = 0
    cost_fen: int = 0

    def shown(self) -> dict[str, str]:
        return {
            "clicks": f"{self.clicks:,}", "registrations": f"{self.registrations:,}",
            "first_investors": f"{self.first_investors:,}", "first_investment": _yuan(self.first_investment_fen),
            "cost": _yuan(self.cost_fen), "cost_per_registration": _yuan(_per(self.cost_fen, self.registrations)),
            "cost_per_first_investor": _yuan(_per(self.cost_fen, self.first_investors)),
        }


@pytest.fixture
def world(app) -> dict[str, int]:
    """Four channels with clicks, registrations, investments and costs spread over four months; returns code -> id."""
    rng = random.Random(20261120)
    span = int((NOW - FIRST_DATA_DAY).total_seconds())

    def instant() -> datetime:
        return rng.choice(EDGES) if rng.random() < 0.25 else FIRST_DATA_DAY + timedelta(seconds=rng.randrange(span))

    with get_db(app).session_scope(write=True) as s:
        channels = {code: services.create_channel(code=code, name=f"渠道{code}", kind="sem", session=s)
                    for code in CODES}
        links = {code: services.create_link(ch, name="lp", landing_url="https://x.example/", session=s)
                 for code, ch in channels.items()}
        active = [c for c in CODES if c != "idle"]
        clicks = []
        for n in range(400):
            code = rng.choice(active)
            clicks.append({"click_id": f"k{n}", "link_id": links[code].id, "channel_id": channels[code].id,
                           "at": instant()})
        # Enough clicks in every period for one channel that thousands separators show.
        clicks += [{"click_id": f"bulk{n}", "link_id": links["alpha"].id, "channel_id": channels["alpha"].id,
                    "at": datetime(2026, 11, 14, 2, 0, tzinfo=UTC) + timedelta(seconds=n)} for n in range(1100)]
        s.execute(insert(Click), clicks)
        for n in range(160):
            code = rng.choice([*active, None])  # None: an organic registration, counted nowhere
            registered = instant()
            investor = Investor(platform_user_id=f"p{n}", referral_code=f"R{n:05d}", registered_at=registered,
                                channel_id=channels[code].id if code else None)
            s.add(investor)
            s.flush()
            starts = []
            for k in range(rng.choice([0, 0, 1, 1, 2, 3])):
                started = min(registered + timedelta(hours=rng.randrange(1, 24 * 40)), NOW)
                if k == 1 and rng.random() < 0.3:
                    started = starts[0]  # two investments at the same instant: the lower id is the first
                starts.append(started)
                s.add(Investment(investment_id=f"p{n}_{k}", investor_id=investor.id, started_at=started,
                                 amount_fen=rng.randrange(100_00, 50_000_00)))
            investor.first_investment_at = min(starts, default=None)
        day = FIRST_DATA_DAY.date()
        while day <= NOW.astimezone(BEIJING).date():
            for code in active:
                if rng.random() < 0.7:
                    services.set_cost(channels[code], day=day, amount_fen=rng.randrange(0, 9_000_00), session=s,
                                      now=NOW)
            day += timedelta(days=1)
        return {code: ch.id for code, ch in channels.items()}


def _independent_count(app, ids: dict[str, int], start: date, end: date) -> dict[str, Expected]:
    """Count each channel's figures for [start, end] (Shanghai dates) from the raw rows, in Python."""
    by_id = {cid: code for code, cid in ids.items()}
    expected = {code: Expected() for code in ids}

    def inside(at: datetime) -> bool:
        return start <= at.replace(tzinfo=at.tzinfo or UTC).astimezone(BEIJING).date() <= end

    with get_db(app).session_scope() as s:
        for channel_id, at in s.execute(select(Click.channel_id, Click.at)):
            if inside(at):
                expected[by_id[channel_id]].clicks += 1
        for channel_id, day, fen in s.execute(select(ChannelCost.channel_id, ChannelCost.day, ChannelCost.amount_fen)):
            if start <= day <= end:
                expected[by_id[channel_id]].cost_fen += fen
        investments: dict[int, list[tuple[datetime, int, int]]] = {}
        for investor_id, inv_id, started, fen in s.execute(
                select(Investment.investor_id, Investment.id, Investment.started_at, Investment.amount_fen)):
            investments.setdefault(investor_id, []).append((started, inv_id, fen))
        for investor_id, channel_id, registered in s.execute(
                select(Investor.id, Investor.channel_id, Investor.registered_at)):
            if channel_id is None or not inside(registered):
                continue
            figures = expected[by_id[channel_id]]
            figures.registrations += 1
            mine = sorted(investments.get(investor_id, []))
            if mine:
                figures.first_investors += 1
                figures.first_investment_fen += mine[0][2]
    return expected


def _stats(html: str, pattern: str) -> dict[str, str]:
    row = re.search(pattern, html, re.S)
    assert row, pattern
    return dict(re.findall(r'data-stat="(\w+)">([^<]*)<', row.group(0)))


def _without_links(figures: dict[str, str]) -> dict[str, str]:
    return {k: v.strip() for k, v in figures.items() if k != "links"}


PERIODS = [
    ("period=custom&start=2026-11-01&end=2026-11-15", date(2026, 11, 1), date(2026, 11, 15)),
    ("period=7d", date(2026, 11, 14), date(2026, 11, 20)),
    ("period=last_month", date(2026, 10, 1), date(2026, 10, 31)),
    ("period=this_month", date(2026, 11, 1), date(2026, 11, 20)),
    ("", date(2026, 10, 22), date(2026, 11, 20)),  # the default: the last 30 days
]


@pytest.mark.parametrize(("query", "start", "end"), PERIODS,
                         ids=["custom", "7d", "last_month", "this_month", "default"])
def test_every_figure_of_the_channel_list_matches_an_independent_count_for_the_period(
        client, login, app, world, query, start, end):
    expected = _independent_count(app, world, start, end)
    assert sum(e.registrations for e in expected.values()) > 0 and sum(e.first_investors for e in expected.values())
    if start <= date(2026, 11, 14) <= end:
        assert expected["alpha"].clicks >= 1000  # shown with a thousands separator
    with time_machine.travel(NOW, tick=False):
        login("analyst")
        html = client.get(f"/acquisition/channels?{query}").get_data(as_text=True)
    assert f"{start.isoformat()} 至 {end.isoformat()}" in html
    for code in CODES:
        assert _without_links(_stats(html, rf'<tr data-code="{code}".*?</tr>')) == expected[code].shown(), code
    total = Expected(**{name: sum(getattr(e, name) for e in expected.values())
                        for name in ("clicks", "registrations", "first_investors", "first_investment_fen", "cost_fen")})
    assert _without_links(_stats(html, r'<tr class="fw-bold" id="channel-totals">.*?</tr>')) == total.shown()
    # Every figure cell keeps its number on one line.
    assert re.findall(r'<td class="([^"]*)" data-stat=', html) and all(
        "text-nowrap" in cls for cls in re.findall(r'<td class="([^"]*)" data-stat=', html))


def test_the_channel_page_shows_the_same_figures_for_the_period_and_keeps_it_in_its_links(client, login, app, world):
    query = "period=custom&start=2026-11-01&end=2026-11-15"
    expected = _independent_count(app, world, date(2026, 11, 1), date(2026, 11, 15))
    with time_machine.travel(NOW, tick=False):
        login("marketer")
        listing = client.get(f"/acquisition/channels?{query}").get_data(as_text=True)
        assert f'href="/acquisition/channels/{world["beta"]}?{query.replace("&", "&amp;")}"' in listing
        html = client.get(f"/acquisition/channels/{world['beta']}?{query}").get_data(as_text=True)
    figures = _stats(html, r'<div class="row g-3 mb-1" id="channel-stats">.*?id="links"')
    assert _without_links(figures) == expected["beta"].shown()
    assert 'value="2026-11-01"' in html and 'option value="custom" selected' in html
    # A saved cost comes back to this period.
    assert f'action="/acquisition/channels/{world["beta"]}/costs?{query.replace("&", "&amp;")}"' in html


def test_the_channel_export_carries_the_figures_of_the_period(client, login, app, world):
    expected = _independent_count(app, world, date(2026, 10, 1), date(2026, 10, 31))
    with time_machine.travel(NOW, tick=False):
        login("analyst")
        response = client.get("/acquisition/channels/export.csv?period=last_month")
    assert "channels-2026-10-01-2026-10-31.csv" in response.headers["Content-Disposition"]
    rows = {r["code"]: r for r in csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff")))}
    for code in CODES:
        e = expected[code]
        assert (int(rows[code]["clicks"]), int(rows[code]["registrations"]), int(rows[code]["first_investors"]),
                rows[code]["first_investment_yuan"], rows[code]["cost_yuan"]) == (
            e.clicks, e.registrations, e.first_investors, f"{e.first_investment_fen / 100:.2f}",
            f"{e.cost_fen / 100:.2f}"), code
    assert rows["idle"]["cost_per_registration_yuan"] == "" and rows["idle"]["cost_per_first_investor_yuan"] == ""


def test_a_period_that_makes_no_sense_is_explained_and_the_default_30_days_are_shown(client, login, app, world):
    with time_machine.travel(NOW, tick=False):
        login("analyst")
        html = client.get("/acquisition/channels?period=custom&start=2026-11-15&end=2026-11-01").get_data(
            as_text=True)
    assert 'id="period-error"' in html and "开始日期不能晚于结束日期" in html
    assert "2026-10-22 至 2026-11-20" in html and 'option value="30d" selected' in html
