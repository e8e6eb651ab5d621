"""GET /api/v1/acquisition/economics (and the page's CSV) against a plain-Python computation of spec §7.

The data are generated: channels known, unknown (created by the processor), referral and organic; clicks and
costs in and around the range; registrations at 23:59:59 and 00:00 Asia/Shanghai on the range's edges;
investments dated before registering, exactly window_days × 24 h after it and a second later; a registration
that arrives late and moves the investor's registration earlier; rewards of every kind ending in every status.
The expected figures use none of the project's code: only the generated truth and the spec's definitions.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from growth.acquisition.models import AcquisitionChannel, ChannelCost, Click, TrackingLink
from growth.db import get_db
from growth.events.processor import drain
from growth.investors.models import Investor
from growth.rewards import jobs as reward_jobs
from growth.rewards.rules import Terms
from growth.rewards.services import budget_for, grant, revoke
from tests.events import event, investment, post_events
from tests.factories import make_token

SH = ZoneInfo("Asia/Shanghai")
DAY = timedelta(days=1)
CHANNELS = {"baidu_sem": "百度SEM", "wdzj": "网贷之家", "silent_ads": "只花钱的渠道"}
LABELS = {**CHANNELS, "new_forum": "new_forum", "referral": "邀请好友", "organic": "自然流量"}
RANGES = [(date(2026, 9, 1), date(2026, 10, 31)), (date(2026, 9, 15), date(2026, 10, 15)),
          (date(2026, 10, 1), date(2026, 10, 1))]
WINDOWS = (30, 7, 1, 45)


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=SH)


EDGES = [local(2026, 8, 31, 23, 59, 59), local(2026, 9, 1), local(2026, 9, 14, 23, 59, 59), local(2026, 9, 15),
         local(2026, 9, 30, 23, 59, 59), local(2026, 10, 1), local(2026, 10, 1, 23, 59, 59), local(2026, 10, 2),
         local(2026, 10, 15, 23, 59, 59), local(2026, 10, 16), local(2026, 10, 31, 23, 59, 59), local(2026, 11, 1)]


def half_up(n: int, d: int = 1) -> int:
    """Round n / d half-up to an integer, by decimal arithmetic (not the project's integer trick)."""
    return int((Decimal(n) / Decimal(d)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def yuan(fen: int | None) -> str | None:
    return None if fen is None else f"{fen // 100}.{fen % 100:02d}"


@dataclass
class Inv:
    investment_id: str
    at: datetime
    fen: int
    term: int
    late: bool = False  # arrives after the first drain
    reward_ids: list[str] = field(default_factory=list)


@dataclass
class Gift:
    """A reward to grant and what is to become of it; `cost` is its §2 cost in its final status."""

    kind: str
    terms: Terms
    at: datetime
    fate: str  # granted, redeemed, revoked, clawed_back
    cost: int = 0
    redeem_on: Inv | None = None
    reward_id: int | None = None


@dataclass
class Person:
    uid: str
    channel: str
    registered: datetime
    data: dict[str, Any]
    late_registration: datetime | None = None  # a later registration that arrives first
    investments: list[Inv] = field(default_factory=list)
    gifts: list[Gift] = field(default_factory=list)
    redeemed_early: list[tuple[Inv, datetime]] = field(default_factory=list)


def generate(seed: int, now: datetime, n: int = 110) -> list[Person]:
    rng = random.Random(seed)
    latest = now - timedelta(days=2)
    start, span = local(2026, 8, 25), (local(2026, 11, 5) - local(2026, 8, 25)).total_seconds()
    people: list[Person] = []
    for i in range(n):
        uid = f"e{i:04d}"
        registered = EDGES[i] if i < len(EDGES) else start + timedelta(seconds=rng.uniform(0, span))
        registered = registered.astimezone(UTC)
        roll = rng.random()
        if roll < 0.45:
            code = rng.choice(["baidu_sem", "wdzj", "new_forum"])
            data, channel = {"channel_code": code}, code
        elif roll < 0.6 and people:
            data, channel = {"referral_code": rng.choice(people).uid}, "referral"
        else:
            data, channel = {}, "organic"
        p = Person(uid, channel, registered, data)
        if rng.random() < 0.15:  # the earliest registration arrives late, after a later one naming another channel
            p.late_registration = registered + timedelta(hours=rng.uniform(1, 30))
        window = rng.choice(WINDOWS)
        offsets = [-rng.uniform(1, 3) * 86400, window * 86400.0, window * 86400.0 + 1,
                   rng.uniform(0, 50 * 86400), rng.uniform(0, 5 * 86400)]
        for k in range(rng.choice([0, 0, 1, 2, 3])):
            at = registered + timedelta(seconds=rng.choice(offsets))
            if at > latest:
                continue
            p.investments.append(Inv(f"{uid}-i{k}", at, rng.randint(100_000, 5_000_000),
                                     rng.choice([7, 30, 90, 180, 365]), late=rng.random() < 0.2))
        _gifts(rng, p, latest, window)
        people.append(p)
    return people


def _gifts(rng: random.Random, p: Person, latest: datetime, window: int) -> None:
    """Give a person rewards of random kinds, each meant to end in one status, with its expected cost."""
    for k in range(rng.choice([0, 1, 1, 2, 3])):
        at = p.registered + timedelta(seconds=rng.choice(
            [-3600.0, window * 86400.0, window * 86400.0 + 1, rng.uniform(0, 40 * 86400), rng.uniform(0, 86400)]))
        if at > latest - timedelta(days=1):
            continue
        kind = rng.choice(["cash", "voucher", "rate_boost", "experience_funds", "cashback"])
        if kind == "cash":
            fen = rng.randint(100, 20_000)  # paid at grant: it always costs (and cannot be revoked)
            p.gifts.append(Gift(kind, Terms(amount_fen=fen), at, "granted", fen))
        elif kind == "experience_funds":
            fen, rate, days = rng.randint(100_000, 2_000_000), rng.choice([500, 800, 1234]), rng.choice([3, 7, 15])
            fate = rng.choice(["granted", "revoked"])
            cost = half_up(fen * rate * days, 10_000 * 365)
            p.gifts.append(Gift(kind, Terms(amount_fen=fen, annual_rate_bp=rate, days=days), at, fate,
                                cost if fate == "granted" else 0))
        elif kind in ("voucher", "rate_boost"):
            fate = rng.choice(["granted", "redeemed", "redeemed", "revoked"])
            if kind == "voucher":
                terms = Terms(amount_fen=rng.randint(500, 10_000), valid_days=3, min_investment_fen=100_000)
            else:
                terms = Terms(annual_rate_bp=rng.choice([50, 100, 150]), max_days=rng.choice([7, 30]), valid_days=3)
            gift = Gift(kind, terms, at, fate)
            if fate == "redeemed":
                inv = Inv(f"{p.uid}-r{k}", at + timedelta(hours=1), rng.randint(100_000, 3_000_000),
                          rng.choice([7, 30, 90]), late=True)
                p.investments.append(inv)
                gift.redeem_on = inv
                gift.cost = (terms.amount_fen or 0) if kind == "voucher" else half_up(
                    inv.fen * (terms.annual_rate_bp or 0) * min(terms.max_days or 0, inv.term), 10_000 * 365)
            p.gifts.append(gift)
        else:  # cashback on an investment of the person's
            inv = Inv(f"{p.uid}-c{k}", at - timedelta(minutes=1), rng.randint(100_000, 3_000_000), 30)
            p.investments.append(inv)
            rate = rng.choice([30, 50, 125])
            fate = rng.choice(["granted", "clawed_back", "revoked"])
            terms = Terms(rate_bp=rate, hold_days=30, principal_fen=inv.fen, investment_id=inv.investment_id)
            p.gifts.append(Gift(kind, terms, at, fate, half_up(inv.fen * rate, 10_000) if fate == "granted" else 0))
            if fate == "clawed_back":
                p.redeemed_early.append((inv, inv.at + timedelta(days=5)))


@dataclass
class World:
    people: list[Person]
    costs: list[tuple[str, date, int]]
    clicks: list[tuple[str, datetime]]


def _arrange(app, client, seed: int) -> World:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    rng = random.Random(seed)
    people = generate(seed, now)
    db = get_db(app)
    with db.session_scope(write=True) as s:
        channels = {code: AcquisitionChannel(code=code, name=name, kind="sem") for code, name in CHANNELS.items()}
        s.add_all(channels.values())
        s.flush()
        links = {code: TrackingLink(channel_id=c.id, code=f"l{code}", name=code, landing_url="https://x.example/")
                 for code, c in channels.items() if code != "silent_ads"}
        s.add_all(links.values())
        s.flush()
        clicks: list[tuple[str, datetime]] = []
        click_times = [local(2026, 8, 31, 23, 59, 59), local(2026, 9, 1), local(2026, 10, 31, 23, 59, 59),
                       local(2026, 11, 1), local(2026, 10, 1), local(2026, 10, 1, 23, 59, 59)]
        click_times += [local(2026, 8, 28) + timedelta(seconds=rng.uniform(0, 70 * 86400)) for _ in range(60)]
        for n, at in enumerate(click_times):
            code = rng.choice(list(links))
            s.add(Click(click_id=f"c{n}", link_id=links[code].id, channel_id=channels[code].id,
                        at=at.astimezone(UTC)))
            clicks.append((code, at.astimezone(UTC)))
        costs: list[tuple[str, date, int]] = []
        for code in CHANNELS:
            day = date(2026, 8, 29)
            while day <= date(2026, 11, 3):
                if rng.random() < 0.7:
                    fen = rng.randint(0, 900_000)
                    s.add(ChannelCost(channel_id=channels[code].id, day=day, amount_fen=fen))
                    costs.append((code, day, fen))
                day += DAY

    first, late = [], []
    for p in people:
        if p.late_registration is not None:
            first.append(event("user.registered", p.uid, p.late_registration, {"channel_code": "wdzj"}))
            late.append(event("user.registered", p.uid, p.registered, p.data))
        else:
            first.append(event("user.registered", p.uid, p.registered, p.data))
        for inv in p.investments:
            if any(g.redeem_on is inv for g in p.gifts):
                continue  # sent after its reward is granted
            (late if inv.late else first).append(
                investment(p.uid, inv.at, inv.investment_id, amount=yuan(inv.fen) or "", term_days=inv.term))
    rng.shuffle(first)
    assert post_events(client, first).json["rejected"] == []
    drain(app, limit=53)

    with db.session_scope(write=True) as s:
        ids = dict(s.execute(select(Investor.platform_user_id, Investor.id)).all())
        for p in people:
            for n, gift in enumerate(p.gifts):
                budget = budget_for("manual", "manual", session=s, now=gift.at)
                gift.reward_id = grant(session=s, key=f"{p.uid}-g{n}", investor_id=ids[p.uid], kind=gift.kind,
                                       terms=gift.terms, budget=budget, actor="test", now=gift.at).id
                if gift.redeem_on is not None:
                    gift.redeem_on.reward_ids = [f"rw_{gift.reward_id}"]
                if gift.fate == "revoked":  # at once, before it could be used, expire or be paid
                    revoke(gift.reward_id, session=s, reason="test", actor="test", now=gift.at + timedelta(minutes=1))
    for p in people:
        for gift in p.gifts:
            inv = gift.redeem_on
            if inv is not None:
                late.append(investment(p.uid, inv.at, inv.investment_id, amount=yuan(inv.fen) or "",
                                       term_days=inv.term, reward_ids=inv.reward_ids))
        for inv, at in p.redeemed_early:
            late.append(event("investment.redeemed", p.uid, at,
                              {"investment_id": inv.investment_id, "amount": yuan(inv.fen)}))
    rng.shuffle(late)
    assert post_events(client, late).json["rejected"] == []
    drain(app, limit=41)
    with db.session_scope(write=True) as s:
        reward_jobs.run_due(session=s, now=now)  # vouchers and rate boosts expire, cashback and funds are paid
    return World(people, costs, clicks)


def expected(world: World, start: date, end: date, window_days: int) -> dict[str, Any]:
    """Compute spec §7 plainly from the generated truth."""
    window = timedelta(days=window_days)
    rows: dict[str, dict[str, Any]] = {}

    def row(code: str) -> dict[str, Any]:
        return rows.setdefault(code, {"cost": 0, "clicks": 0, "registrations": 0, "first_investors": 0,
                                      "first_fen": 0, "num": 0, "incentive": 0})

    for code, day, fen in world.costs:
        if start <= day <= end:
            row(code)["cost"] += fen
    for code, at in world.clicks:
        if start <= at.astimezone(SH).date() <= end:
            row(code)["clicks"] += 1
    for p in world.people:
        if not start <= p.registered.astimezone(SH).date() <= end:
            continue
        r = row(p.channel)
        r["registrations"] += 1
        if p.investments:
            first = min(p.investments, key=lambda i: (i.at, i.investment_id))
            if first.at - p.registered <= window:
                r["first_investors"] += 1
                r["first_fen"] += first.fen
        r["num"] += sum(i.fen * i.term for i in p.investments if i.at - p.registered <= window)
        r["incentive"] += sum(g.cost for g in p.gifts if g.at - p.registered <= window)

    def shaped(code: str, label: str, r: dict[str, Any]) -> dict[str, Any]:
        spend = r["cost"] + r["incentive"]
        return {
            "code": code, "label": label, "cost": yuan(r["cost"]), "clicks": r["clicks"],
            "registrations": r["registrations"], "first_investors": r["first_investors"],
            "first_investment_amount": yuan(r["first_fen"]), "annualised_amount": yuan(half_up(r["num"], 365)),
            "incentive_cost": yuan(r["incentive"]),
            "cac": yuan(half_up(r["cost"], r["first_investors"])) if r["first_investors"] else None,
            "cost_per_registration": yuan(half_up(r["cost"], r["registrations"])) if r["registrations"] else None,
            "annualised_per_yuan": _ratio(Fraction(r["num"], 365 * r["cost"])) if r["cost"] else None,
            "net_roi": _ratio((Fraction(r["num"], 365) - spend) / spend) if spend else None,
        }

    total = {k: sum(r[k] for r in rows.values()) for k in ("cost", "clicks", "registrations", "first_investors",
                                                            "first_fen", "num", "incentive")}
    return {"window_days": window_days,
            "channels": [shaped(code, LABELS[code], rows[code]) for code in sorted(rows)],
            "total": shaped("total", "合计", total)}


def _ratio(value: Fraction) -> str:
    return str((Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.0001"),
                                                                                  rounding=ROUND_HALF_UP))


SPEC_FIELDS = ("code", "label", "cost", "clicks", "registrations", "first_investors", "first_investment_amount",
               "annualised_amount", "incentive_cost", "cac", "cost_per_registration", "annualised_per_yuan",
               "net_roi")


def _spec_part(answer: dict[str, Any]) -> dict[str, Any]:
    return {"window_days": answer["window_days"],
            "channels": [{k: c[k] for k in SPEC_FIELDS} for c in answer["channels"]],
            "total": {k: answer["total"][k] for k in SPEC_FIELDS}}


@pytest.fixture
def world(app, client) -> World:  # type: ignore[no-untyped-def]
    return _arrange(app, client, 20261204)


@pytest.fixture
def token(app) -> str:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return make_token(s, role="analyst")


def _get(client, token: str, **params: Any):  # type: ignore[no-untyped-def]
    return client.get("/api/v1/acquisition/economics", query_string=params,
                      headers={"Authorization": f"Bearer {token}"})


def test_the_generated_data_cover_every_rule_of_the_definition(world):
    people = world.people
    assert {g.kind for p in people for g in p.gifts} == {"cash", "voucher", "rate_boost", "experience_funds",
                                                          "cashback"}
    assert {g.fate for p in people for g in p.gifts} == {"granted", "redeemed", "revoked", "clawed_back"}
    assert any(i.at < p.registered for p in people for i in p.investments)  # a step dated before registering
    assert any(i.at - p.registered == timedelta(days=w) for p in people for i in p.investments for w in WINDOWS)
    assert any(p.late_registration for p in people)
    assert {p.channel for p in people} == {"baidu_sem", "wdzj", "new_forum", "referral", "organic"}
    full = expected(world, *RANGES[0], 30)
    assert full["total"]["registrations"] > 60 and full["total"]["first_investors"] > 10
    assert full["total"]["incentive_cost"] != "0.00"
    # Windows change the figures, so each window's answer is a real check.
    assert len({str(expected(world, *RANGES[0], w)["total"]) for w in WINDOWS}) == len(WINDOWS)


def test_channel_economics_agree_with_a_plain_computation_of_the_spec(client, world, token):
    for start, end in RANGES:
        for window in WINDOWS:
            response = _get(client, token, start=start.isoformat(), end=end.isoformat(), window_days=window)
            assert response.status_code == 200, response.get_data(as_text=True)
            assert _spec_part(response.json) == expected(world, start, end, window), (start, end, window)


def test_the_page_csv_holds_the_same_numbers(client, world, login):
    login("analyst")
    start, end = RANGES[1]
    response = client.get("/dashboards/economics", query_string={
        "period": "custom", "start": start.isoformat(), "end": end.isoformat(), "window_days": 7, "format": "csv"})
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    want = expected(world, start, end, 7)
    for got, row in zip(rows, [*want["channels"], want["total"]], strict=True):
        assert got == {k: "" if row[k] is None else str(row[k]) for k in SPEC_FIELDS}
    page = client.get("/dashboards/economics", query_string={
        "period": "custom", "start": start.isoformat(), "end": end.isoformat(), "window_days": 7})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for row in want["channels"]:
        assert f'data-code="{row["code"]}"' in html
