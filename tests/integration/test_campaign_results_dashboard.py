"""GET /api/v1/dashboards/campaigns (and the page's CSV) against a plain-Python computation on generated campaigns.

The data are generated: campaigns of several types and statuses, with and without a holdout, trigger entries
(one cause per entry) and a run's entries (one cause shared), entries at 23:59:59 and 00:00 Asia/Shanghai on
the period's edges, investors entering twice (before the period and in it), messages on every channel in every
status (the platform webhook is not a message to a person), rewards in every status with their costs (a
referral's referrer gets one by the referee's cause), and investments before entering, at 23:59:59 and at
00:00 on the period's last edge. The expected figures use none of the project's code: only the generated
truth and the definitions written on the page.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from math import sqrt
from statistics import NormalDist
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import event

from campaigns.models import Campaign, CampaignMember
from growth.db import get_db
from growth.investors.models import Investment
from growth.rewards.models import Reward
from growth.rewards.services import budget_for
from tests.factories import make_investor, make_message, make_token

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
Z = NormalDist().inv_cdf(0.975)
RANGES = [(date(2026, 10, 1), date(2026, 10, 31)), (date(2026, 10, 15), date(2026, 11, 10)),
          (date(2026, 10, 31), date(2026, 10, 31))]
MESSAGE_STATUSES = ("queued", "deferred", "sending", "sent", "delivered", "failed", "dead", "skipped_no_consent",
                    "capped", "unreachable")
REWARD_FATES = {"granted": True, "redeemed": True, "expired": False, "revoked": False, "paid": True,
                "clawed_back": False}  # whether the reward costs anything in that state


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=SH).astimezone(UTC)


EDGES = [local(2026, 9, 30, 23, 59, 59), local(2026, 10, 1), local(2026, 10, 14, 23, 59, 59), local(2026, 10, 15),
         local(2026, 10, 31), local(2026, 10, 31, 23, 59, 59), local(2026, 11, 1), local(2026, 11, 10, 23, 59, 59),
         local(2026, 11, 11)]


@dataclass
class Entry:
    campaign: int  # index into World.campaigns
    person: int
    cause: str
    at: datetime
    holdout: bool
    status: str
    granted: int


@dataclass
class Msg:
    campaign: int
    person: int
    cause: str
    channel: str
    status: str


@dataclass
class Gift:
    campaign: int
    person: int
    cause: str
    status: str
    cost: int


@dataclass
class Inv:
    person: int
    at: datetime
    fen: int
    term: int


@dataclass
class Camp:
    name: str
    type: str
    status: str
    holdout_share: float
    id: int = 0


@dataclass
class World:
    campaigns: list[Camp]
    people: int
    entries: list[Entry] = field(default_factory=list)
    messages: list[Msg] = field(default_factory=list)
    gifts: list[Gift] = field(default_factory=list)
    investments: list[Inv] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)  # investor ids by person


CAMPAIGNS = [Camp("新手礼包十月", "new_user", "active", 0.3),
             Camp("首投促进", "first_investment_nudge", "active", 0.25),
             Camp("加息周", "rate_boost", "finished", 0.0), Camp("邀请有礼", "referral", "active", 0.2),
             Camp("沉睡唤醒（定时）", "reactivation", "finished", 0.3), Camp("九月旧活动", "cashback", "finished", 0.2),
             Camp("暂停的返现", "cashback", "paused", 0.5)]


def generate(seed: int, campaigns: list[Camp], people: int = 90, prefix: str = "") -> World:
    rng = random.Random(seed)
    world = World([Camp(c.name, c.type, c.status, c.holdout_share) for c in campaigns], people)
    start, span = local(2026, 9, 20), (local(2026, 11, 15) - local(2026, 9, 20)).total_seconds()
    n_edge = 0
    for ci, camp in enumerate(world.campaigns):
        # The holdout is stable per (campaign, investor), as the product's hash is.
        sides = {p: rng.random() < camp.holdout_share for p in range(people)}
        if camp.type == "reactivation":  # a scheduled campaign: runs whose members share the run's cause
            for run, at in enumerate([local(2026, 9, 28, 10), EDGES[5], local(2026, 10, 20, 10), EDGES[6]]):
                for p in rng.sample(range(people), 12):
                    world.entries.append(_entry(rng, ci, p, f"{prefix}run:{ci}-{run}", at, sides[p]))
            continue
        if camp.name == "九月旧活动":
            times = [local(2026, 9, 21) + timedelta(seconds=rng.uniform(0, 8 * 86400)) for _ in range(10)]
        else:
            times = [start + timedelta(seconds=rng.uniform(0, span)) for _ in range(rng.randint(25, 45))]
            times += EDGES[n_edge % len(EDGES): n_edge % len(EDGES) + 3]
            n_edge += 3
        for k, at in enumerate(times):
            p = rng.randrange(people)
            world.entries.append(_entry(rng, ci, p, f"{prefix}fire:{ci}-{k}", at, sides[p]))
    for e in world.entries:
        treated = not e.holdout
        for _n in range(rng.choice([0, 1, 1, 2]) if treated else 0):
            channel = rng.choice(["sms", "sms", "email", "wechat", "webhook"])
            world.messages.append(Msg(e.campaign, e.person, e.cause, channel, rng.choice(MESSAGE_STATUSES)))
        receivers = [e.person]
        if world.campaigns[e.campaign].type == "referral" and treated:
            receivers.append((e.person + 1) % people)  # the referrer: not a member, yet the campaign's cost
            world.messages.append(Msg(e.campaign, receivers[-1], e.cause, "sms", rng.choice(MESSAGE_STATUSES)))
        if e.granted:
            for person in receivers:
                for _ in range(e.granted):
                    fate = rng.choice(list(REWARD_FATES))
                    world.gifts.append(Gift(e.campaign, person, e.cause, fate,
                                            rng.randint(1, 90_000) if REWARD_FATES[fate] else 0))
    for p in range(people):
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            world.investments.append(Inv(p, start + timedelta(seconds=rng.uniform(0, span + 5 * 86400)),
                                         rng.randint(100_000, 5_000_000), rng.choice([7, 30, 90, 180, 365])))
    # The period's last edge: an investment at 23:59:59 counts in a period ending that day, one at 00:00 the next
    # day does not; and one made before entering never counts.
    edge_person = next(e.person for e in world.entries if e.campaign == 0 and local(2026, 10, 2) < e.at
                       < local(2026, 10, 30) and not e.holdout)
    world.investments += [Inv(edge_person, local(2026, 10, 31, 23, 59, 59), 1_234_500, 90),
                          Inv(edge_person, local(2026, 11, 1), 2_000_000, 180)]
    early = next(e for e in world.entries if e.campaign == 1 and local(2026, 10, 5) < e.at < local(2026, 10, 25))
    world.investments.append(Inv(early.person, early.at - timedelta(seconds=1), 3_000_000, 365))
    return world


def _entry(rng: random.Random, ci: int, p: int, cause: str, at: datetime, holdout: bool) -> Entry:
    if holdout:
        return Entry(ci, p, cause, at, True, "holdout", 0)
    status = rng.choice(["done", "done", "done", "budget_exhausted", "failed", "pending"])
    return Entry(ci, p, cause, at, False, status, rng.choice([1, 2]) if status == "done" else 0)


def store(app, world: World, prefix: str = "") -> None:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        if not world.ids:
            world.ids = [make_investor(s, platform_user_id=f"{prefix}cr{p:04d}", registered_at=local(2026, 9, 1)).id
                         for p in range(world.people)]
        for camp in world.campaigns:
            row = Campaign(name=camp.name, type=camp.type, message_class="marketing", definition={"name": camp.name},
                           status=camp.status, created_at=NOW, updated_at=NOW)
            s.add(row)
            s.flush()
            camp.id = row.id
        for k, e in enumerate(world.entries):
            s.add(CampaignMember(campaign_id=world.campaigns[e.campaign].id, investor_id=world.ids[e.person],
                                 entry_key=f"{e.cause}:{k}", cause=e.cause, holdout=e.holdout, entered_at=e.at,
                                 status=e.status, rewards_granted=e.granted, due_at=e.at, created_at=e.at))
        for m in world.messages:
            make_message(s, campaign_id=world.campaigns[m.campaign].id, investor_id=world.ids[m.person],
                         cause=m.cause, channel=m.channel, status=m.status)
        budget = budget_for("campaign", f"{prefix}test", session=s, now=NOW)
        for k, g in enumerate(world.gifts):
            s.add(Reward(key=f"{prefix}gift:{k}", investor_id=world.ids[g.person], kind="cash", status=g.status,
                         budget_id=budget.id, campaign_id=world.campaigns[g.campaign].id, amount_fen=g.cost,
                         cost_fen=g.cost, granted_at=NOW, granted_by="campaign", cause=g.cause))
        for k, inv in enumerate(world.investments):
            s.add(Investment(investment_id=f"{prefix}inv{k}", investor_id=world.ids[inv.person], amount_fen=inv.fen,
                             term_days=inv.term, started_at=inv.at))


# ---------------------------------------------------------------- the expected figures, plainly


def money(value: Fraction | int) -> str:
    exact = Decimal(Fraction(value).numerator) / Decimal(Fraction(value).denominator) / 100
    return str(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def interval(hits: int, n: int) -> tuple[float, float, float] | None:
    if n == 0:
        return None
    p = hits / n
    half = Z * sqrt(p * (1 - p) / n)
    return p, max(0.0, p - half), min(1.0, p + half)


def expected(world: World, start: date, end: date, type: str | None = None,
             status: str | None = None) -> dict[int, dict[str, Any]]:
    hi = local(end.year, end.month, end.day) + timedelta(days=1)
    rows: dict[int, dict[str, Any]] = {}
    for ci, camp in enumerate(world.campaigns):
        if (type and camp.type != type) or (status and camp.status != status):
            continue
        entries = [e for e in world.entries if e.campaign == ci and start <= e.at.astimezone(SH).date() <= end]
        if not entries:
            continue
        causes = {e.cause for e in entries}
        msgs = [m for m in world.messages if m.campaign == ci and m.cause in causes and m.channel != "webhook"]
        gifts = [g for g in world.gifts if g.campaign == ci and g.cause in causes]
        sides = {}
        for holdout in (False, True):
            mine = [e for e in entries if e.holdout == holdout]
            first: dict[int, datetime] = {}
            for e in mine:
                first[e.person] = min(first.get(e.person, e.at), e.at)
            invs = [i for i in world.investments if i.person in first and first[i.person] <= i.at < hi]
            sides[holdout] = {"entries": len(mine), "people": len(first), "investors": len({i.person for i in invs}),
                              "fen": sum(i.fen for i in invs), "fen_days": sum(i.fen * i.term for i in invs)}
        t, h = sides[False], sides[True]
        cost = sum(g.cost for g in gifts)
        incremental = (Fraction(t["fen_days"], 365) - Fraction(h["fen_days"], 365) * Fraction(t["people"], h["people"])
                       if t["people"] and h["people"] else None)
        lift = None
        if t["people"] and h["people"]:
            p1, p2 = t["investors"] / t["people"], h["investors"] / h["people"]
            half = Z * sqrt(p1 * (1 - p1) / t["people"] + p2 * (1 - p2) / h["people"])
            lift = (p1 - p2, p1 - p2 - half, p1 - p2 + half)
        rows[camp.id] = {
            "name": camp.name, "type": camp.type, "status": camp.status,
            "members": len(entries), "treated": t["entries"], "holdout": h["entries"],
            "granted": sum(1 for e in entries if e.granted > 0),
            "messages": {"total": len(msgs), "sent": sum(m.status in ("sent", "delivered") for m in msgs),
                         "delivered": sum(m.status == "delivered" for m in msgs)},
            "rewards": {"granted": len(gifts), "redeemed": sum(g.status == "redeemed" for g in gifts),
                        "cost": money(cost)},
            "sides": {"treated": t, "holdout": h},
            "rates": {"treated": interval(t["investors"], t["people"]),
                      "holdout": interval(h["investors"], h["people"])},
            "lift": lift,
            "incremental_annualised": None if incremental is None else money(incremental),
            "per_yuan": None if incremental is None or not cost else incremental / cost,
        }
    return rows


def close(text: str | None, value: float | Fraction | None) -> bool:
    """Tell whether a 4-decimal string shows the value (floating error may move the last digit)."""
    if text is None or value is None:
        return text is None and value is None
    return abs(Decimal(text) - Decimal(float(value))) <= Decimal("0.00006")


def check(got: dict[str, Any], want: dict[str, Any]) -> None:
    for key in ("name", "type", "status", "members", "treated", "holdout", "granted", "messages", "rewards",
                "incremental_annualised"):
        assert got[key] == want[key], (key, got[key], want[key])
    for side in ("treated", "holdout"):
        g, w = got["invested"][side], want["sides"][side]
        assert (g["entries"], g["people"], g["investors"]) == (w["entries"], w["people"], w["investors"])
        assert g["amount"] == money(w["fen"]) and g["annualised_amount"] == money(Fraction(w["fen_days"], 365))
        rate = want["rates"][side]
        assert (g["rate"] is None) == (rate is None)
        if rate is not None:
            assert all(close(g["rate"][k], v) for k, v in zip(("value", "low", "high"), rate, strict=True)), side
    if want["lift"] is None:
        assert got["lift"] is None
    else:
        assert all(close(got["lift"][k], v) for k, v in zip(("value", "low", "high"), want["lift"], strict=True))
    assert close(got["incremental_annualised_per_yuan"], want["per_yuan"])


# ---------------------------------------------------------------- the tests


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def world(app) -> World:  # type: ignore[no-untyped-def]
    w = generate(20261201, CAMPAIGNS)
    store(app, w)
    return w


@pytest.fixture
def token(app) -> str:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return make_token(s, role="analyst")


def _get(client, token: str, **params: Any):  # type: ignore[no-untyped-def]
    return client.get("/api/v1/dashboards/campaigns", query_string={"per_page": 200, **params},
                      headers={"Authorization": f"Bearer {token}"})


def test_the_generated_data_cover_every_rule_of_the_definition(world):
    want = expected(world, *RANGES[0])
    assert len(want) >= 5 and any(r["lift"] is None for r in want.values())  # a campaign without a holdout
    assert any(r["lift"] is not None and r["per_yuan"] is not None for r in want.values())
    assert {m.status for m in world.messages} == set(MESSAGE_STATUSES)
    assert {g.status for g in world.gifts} == set(REWARD_FATES)
    assert any(e.at == local(2026, 10, 31, 23, 59, 59) for e in world.entries)
    # Somebody entered twice: before the period and in it.
    seen = {(e.campaign, e.person) for e in world.entries if e.at < local(2026, 10, 1)}
    assert any((e.campaign, e.person) in seen for e in world.entries if e.at >= local(2026, 10, 1))
    # Each range answers differently, so each is a real check.
    assert len({str(expected(world, *r)) for r in RANGES}) == len(RANGES)


def test_campaign_results_agree_with_a_plain_computation(client, world, token):
    for start, end in RANGES:
        response = _get(client, token, start=start.isoformat(), end=end.isoformat())
        assert response.status_code == 200, response.get_data(as_text=True)
        want = expected(world, start, end)
        got = {row["id"]: row for row in response.json["campaigns"]}
        assert set(got) == set(want) and response.json["total"] == len(want), (start, end)
        for cid, row in want.items():
            check(got[cid], row)
        totals = response.json["totals"]
        assert totals["members"] == sum(r["members"] for r in want.values())
        compared = [r for r in want.values() if r["lift"] is not None]
        assert totals["cost"] == money(sum(int(Decimal(r["rewards"]["cost"]) * 100) for r in want.values()))
        assert totals["campaigns"] == len(want) and compared


def test_an_investment_at_235959_on_the_last_day_counts_and_one_at_midnight_does_not(client, world, token):
    edge = next(i for i in world.investments if i.at == local(2026, 10, 31, 23, 59, 59))
    late = next(i for i in world.investments if i.at == local(2026, 11, 1))
    october = expected(world, *RANGES[0])[world.campaigns[0].id]["sides"]["treated"]
    answer = {r["id"]: r for r in _get(client, token, start="2026-10-01", end="2026-10-31").json["campaigns"]}
    got = answer[world.campaigns[0].id]["invested"]["treated"]
    assert got["amount"] == money(october["fen"])
    # Remove the 23:59:59 one from the truth: the figure changes, so it was counted; the midnight one was not.
    assert edge.fen != late.fen and october["fen"] >= edge.fen
    world.investments.remove(edge)
    assert expected(world, *RANGES[0])[world.campaigns[0].id]["sides"]["treated"]["fen"] == october["fen"] - edge.fen


def test_an_investment_made_before_entering_does_not_count(world):
    early = next(i for i in world.investments if i.fen == 3_000_000 and i.term == 365)
    before = expected(world, *RANGES[0])
    world.investments.remove(early)
    assert expected(world, *RANGES[0]) == before  # the truth itself ignores it; the API is held to the truth above


def test_filters_by_type_and_status_and_the_csv_hold_the_same_numbers(client, world, token, login):
    for kind, state in (("cashback", None), (None, "finished"), ("cashback", "paused"), ("broadcast", None)):
        params = {k: v for k, v in (("type", kind), ("status", state)) if v}
        answer = _get(client, token, start="2026-09-01", end="2026-11-30", **params).json
        want = expected(world, date(2026, 9, 1), date(2026, 11, 30), kind, state)
        assert {r["id"] for r in answer["campaigns"]} == set(want), params
    login("analyst")
    response = client.get("/dashboards/campaigns", query_string={"start": "2026-10-01", "end": "2026-10-31",
                                                                 "format": "csv"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    want = expected(world, *RANGES[0])
    assert {int(r["id"]) for r in rows} == set(want)
    for row in rows:
        w = want[int(row["id"])]
        assert (int(row["members"]), int(row["treated"]), int(row["holdout"])) == (w["members"], w["treated"],
                                                                                   w["holdout"])
        assert row["incentive_cost"] == w["rewards"]["cost"]
        assert row["incremental_annualised"] == (w["incremental_annualised"] or "")
        assert int(row["messages_delivered"]) == w["messages"]["delivered"]
        assert close(row["lift"] or None, None if w["lift"] is None else w["lift"][0])


def test_rows_sort_by_lift_with_campaigns_without_a_holdout_last_and_page(client, world, token):
    want = expected(world, *RANGES[0])
    with_lift = sorted((r["lift"][0], cid) for cid, r in want.items() if r["lift"] is not None)
    without = sorted(cid for cid, r in want.items() if r["lift"] is None)
    answer = _get(client, token, start="2026-10-01", end="2026-10-31", sort="lift", order="asc").json
    assert [r["id"] for r in answer["campaigns"]] == [cid for _v, cid in with_lift] + without
    answer = _get(client, token, start="2026-10-01", end="2026-10-31", sort="lift", order="desc").json
    assert [r["id"] for r in answer["campaigns"]] == [cid for _v, cid in reversed(with_lift)] + without
    pages = [_get(client, token, start="2026-10-01", end="2026-10-31", sort="lift", per_page=2, page=n).json
             for n in (1, 2, 3, 4)]
    assert [r["id"] for p in pages for r in p["campaigns"]] == [r["id"] for r in answer["campaigns"]]
    assert all(p["total"] == len(want) for p in pages)


def test_the_answer_takes_the_same_number_of_queries_however_many_campaigns(app, client, world, token):
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    engine = get_db(app).engine
    _get(client, token, start="2026-10-01", end="2026-10-31")  # the token's first use is stamped once
    event.listen(engine, "before_cursor_execute", before)
    try:
        assert _get(client, token, start="2026-10-01", end="2026-10-31").status_code == 200
        few = len(seen)
        more = generate(7, CAMPAIGNS * 3, people=40, prefix="b")
        store(app, more, prefix="b")
        seen.clear()
        answer = _get(client, token, start="2026-10-01", end="2026-10-31")
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert answer.json["total"] > 2 * len(expected(world, *RANGES[0]))
    assert len(seen) == few
    assert sum("campaign_members" in s for s in seen) == 4  # entries, investments, messages, rewards
