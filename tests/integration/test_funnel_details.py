"""The funnel's groupings by campaign and by referral, its money, times to convert and clicks, against a plain count."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from campaigns.models import Campaign, CampaignMember
from growth.acquisition.models import AcquisitionChannel, Click, TrackingLink
from growth.events.processor import drain
from growth.investors.models import Investor
from tests.events import event, investment, post_events
from tests.factories import make_token

SH = ZoneInfo("Asia/Shanghai")
STEPS = ["registered", "kyc_verified", "card_bound", "first_deposit", "first_investment", "repeat_investment"]
START, END = date(2026, 3, 1), date(2026, 3, 31)  # every event lies well in the past
CAMPAIGNS = {1: "新手礼包A", 2: "新手礼包B"}


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=SH)


@dataclass
class Person:
    uid: str
    registered: datetime
    referred: bool = False
    click: tuple[str, str, datetime] | None = None  # click_id, channel code, when
    milestones: dict[str, datetime | None] = field(default_factory=dict)
    first: tuple[int, int] | None = None  # the first investment's amount (fen) and term (days)
    entries: list[tuple[int, bool, datetime]] = field(default_factory=list)  # campaign, held out, entered
    events: list[dict[str, Any]] = field(default_factory=list)


# On purpose at the range's edges in Shanghai (the UTC date is the day before) and at a window's last instant.
EDGES = [local(2026, 2, 28, 23, 59, 59), local(2026, 3, 1), local(2026, 3, 31, 23, 59, 59), local(2026, 4, 1)]


def generate(seed: int = 11, n: int = 160) -> tuple[list[Person], list[tuple[str, str, datetime]]]:
    """Return people with milestones, investments, clicks and campaign entries, and clicks nobody registered from."""
    rng = random.Random(seed)
    people: list[Person] = []
    stray_clicks = [(f"stray{i}", rng.choice(["sem", "feed"]), local(2026, 3, 1) + timedelta(hours=rng.uniform(0, 740)))
                    for i in range(25)]
    stray_clicks += [("edge_before", "sem", local(2026, 2, 28, 23, 59, 59)), ("edge_in", "sem", local(2026, 3, 1))]
    for i in range(n):
        reg = EDGES[i] if i < len(EDGES) else local(2026, 2, 25) + timedelta(hours=rng.uniform(0, 40 * 24))
        p = Person(f"d{i:03d}", reg)
        data: dict[str, Any] = {}
        roll = rng.random()
        if roll < 0.35:
            clicked = reg - timedelta(hours=rng.choice([0.5, 20, 24 * 29, 24 * 31]))  # some beyond a 30-day window
            p.click = (f"k{i}", rng.choice(["sem", "feed"]), clicked)
            data["click_id"] = p.click[0]
        elif roll < 0.6 and people:
            p.referred = True
            data["referral_code"] = rng.choice(people).uid
        elif roll < 0.7:
            data["referral_code"] = "NO_SUCH_CODE"
        p.events.append(event("user.registered", p.uid, reg, data))
        p.milestones["registered"] = reg
        at = reg
        for step, kind in (("kyc_verified", "user.kyc_verified"), ("card_bound", "user.card_bound")):
            at = at + timedelta(hours=rng.choice([0.2, 3, 30, 24 * 20, 24 * 45])) if rng.random() < 0.85 else None
            p.milestones[step] = at
            if at is None:
                break
            p.events.append(event(kind, p.uid, at))
        # A deposit may come before the card (steps out of order: the step is reached when every earlier one is).
        deposit = reg + timedelta(hours=rng.choice([1, 10, 24 * 8])) if rng.random() < 0.75 else None
        p.milestones["first_deposit"] = deposit
        if deposit is not None:
            p.events.append(event("funds.deposited", p.uid, deposit, {"deposit_id": f"{p.uid}-d", "amount": "900.00"}))
        first = reg + timedelta(hours=rng.choice([2, 12, 24 * 3, 24 * 29, 24 * 40])) if rng.random() < 0.65 else None
        if i == 5:
            first = reg + timedelta(days=30)  # exactly at the window's end: within
        p.milestones["first_investment"] = first
        if first is not None:
            amount, term = rng.choice([100_000, 500_050, 1_234_567]), rng.choice([30, 90, 365])
            p.first = (amount, term)
            p.events.append(investment(p.uid, first, f"{p.uid}-i1", amount=f"{amount // 100}.{amount % 100:02d}",
                                       term_days=term))
            second = first + timedelta(days=rng.choice([1, 10, 50])) if rng.random() < 0.5 else None
            p.milestones["repeat_investment"] = second
            if second is not None:
                p.events.append(investment(p.uid, second, f"{p.uid}-i2", amount="77.00", term_days=7))
        else:
            p.milestones["repeat_investment"] = None
        for campaign in (1, 2):
            if rng.random() < 0.4:
                entered = reg + timedelta(hours=rng.choice([0, 5, 24 * 30, 24 * 30 + 1, 24 * 60]))
                p.entries.append((campaign, rng.random() < 0.3, entered))
        people.append(p)
    return people, stray_clicks


def expected(people: list[Person], stray: list[tuple[str, str, datetime]], window_days: int,
             group_by: str) -> dict[str, Any]:
    """Compute the details plainly from the generated truth."""
    window = timedelta(days=window_days)
    lo, hi = datetime.combine(START, datetime.min.time(), SH), datetime.combine(END + timedelta(days=1),
                                                                                  datetime.min.time(), SH)

    def blank() -> dict[str, Any]:
        return {"registered": 0, "first_investors": 0, "fen": 0, "fen_days": 0, "seconds": [[] for _ in STEPS]}

    total, groups = blank(), {}
    for p in people:
        if not lo <= p.registered < hi:
            continue
        if group_by == "referral":
            key = "referred" if p.referred else "not_referred"
        else:
            inside = [e for e in p.entries if e[2] - p.registered <= window]
            first = min(inside, key=lambda e: e[2]) if inside else None
            key = "none" if first is None else f"{first[0]}-holdout" if first[1] else str(first[0])
        for bucket in (total, groups.setdefault(key, blank())):
            bucket["registered"] += 1
            latest = p.registered
            for k, step in enumerate(STEPS):
                at = p.milestones.get(step)
                if at is None or at - p.registered > window:
                    break
                latest = max(latest, at)
                if k:
                    bucket["seconds"][k].append((latest - p.registered).total_seconds())
                if step == "first_investment":
                    bucket["first_investors"] += 1
                    bucket["fen"] += p.first[0]
                    bucket["fen_days"] += p.first[0] * p.first[1]
    clicks: dict[str, list[int]] = {}
    for p in people:
        if p.click is not None:
            code, at = p.click[1], p.click[2]
            if lo <= at < hi:
                c = clicks.setdefault(code, [0, 0])
                c[0] += 1
                c[1] += int(p.registered - at <= window)
    for _click_id, code, at in stray:
        if lo <= at < hi:
            clicks.setdefault(code, [0, 0])[0] += 1
    return {"total": total, "groups": groups, "clicks": clicks}


def med(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def p90(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = 0
    while (k + 1) < len(s) and (k + 1) < 0.9 * len(s):  # the smallest rank r with r >= 0.9 n
        k += 1
    return s[k]


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


@pytest.fixture
def world(app, client, session):  # type: ignore[no-untyped-def]
    people, stray = generate()
    channels = {code: AcquisitionChannel(code=code, name=code.upper(), kind="sem") for code in ("sem", "feed")}
    session.add_all(channels.values())
    session.flush()
    links = {code: TrackingLink(channel_id=c.id, code=f"l{code}", name=code, landing_url="https://x.example/")
             for code, c in channels.items()}
    session.add_all(links.values())
    session.flush()
    for click_id, code, at in [p.click for p in people if p.click] + stray:
        session.add(Click(click_id=click_id, link_id=links[code].id, channel_id=channels[code].id,
                          at=at.astimezone(UTC)))
    for cid, name in CAMPAIGNS.items():
        session.add(Campaign(id=cid, name=name, type="new_user", message_class="marketing", definition={}))
    session.commit()
    events = [e for p in people for e in p.events]
    random.Random(3).shuffle(events)
    late = [e for e in events if e["type"] == "investment.created"][:10]  # arrive after a first processing
    early = [e for e in events if e not in late]
    assert post_events(client, early).status_code == 200
    drain(app, limit=50)
    assert post_events(client, late).status_code == 200
    drain(app, limit=50)
    ids = dict(session.execute(select(Investor.platform_user_id, Investor.id)).all())
    n = 0
    for p in people:
        for campaign, holdout, entered in p.entries:
            n += 1
            at = entered.astimezone(UTC)
            session.add(CampaignMember(campaign_id=campaign, investor_id=ids[p.uid], entry_key=f"e{n}", cause="t",
                                       holdout=holdout, entered_at=at, due_at=at, created_at=at,
                                       status="holdout" if holdout else "done"))
    session.commit()
    return people, stray


@pytest.fixture
def token(session) -> str:  # type: ignore[no-untyped-def]
    plain = make_token(session, role="analyst")
    session.commit()
    return plain


def details(client, token: str, **params: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/dashboards/funnel-details", headers={"Authorization": f"Bearer {token}"},
                          query_string={"start": START.isoformat(), "end": END.isoformat(), **params})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def check(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["registered"] == want["registered"]
    assert got["first_investors"] == want["first_investors"]
    assert got["first_investment_amount"] == yuan(want["fen"])
    assert got["first_investment_annualised"] == yuan((2 * want["fen_days"] + 365) // (2 * 365))
    for k, step in enumerate(STEPS[1:], start=1):
        times = got["time_to_convert"][step]
        assert times["median_seconds"] == pytest.approx(med(want["seconds"][k])), step
        assert times["p90_seconds"] == pytest.approx(p90(want["seconds"][k])), step


@pytest.mark.parametrize("window_days", [1, 30, 45])
@pytest.mark.parametrize("group_by", ["campaign", "referral"])
def test_the_funnel_details_agree_with_a_plain_count_by_campaign_and_by_referral(client, world, token, group_by,
                                                                                window_days):
    people, stray = world
    want = expected(people, stray, window_days, group_by)
    got = details(client, token, group_by=group_by, window_days=window_days)
    check(got["total"], want["total"])
    assert {g["key"] for g in got["groups"]} == set(want["groups"])
    for group in got["groups"]:
        check(group, want["groups"][group["key"]])
    counts = client.get("/api/v1/funnel", headers={"Authorization": f"Bearer {token}"}, query_string={
        "start": START.isoformat(), "end": END.isoformat(), "group_by": group_by, "window_days": window_days}).json
    assert sum(g["counts"][0] for g in counts["groups"]) == counts["total"]["counts"][0]
    labels = {g["key"]: g["label"] for g in counts["groups"]}
    if group_by == "campaign":
        assert labels.get("1") in (None, "新手礼包A") and labels.get("2-holdout") in (None, "新手礼包B（对照组）")
        assert labels.get("none") == "未参加活动"
    else:
        assert labels == {"referred": "被邀请", "not_referred": "非邀请"}


def test_the_generated_data_reaches_every_case(world):
    people, stray = world
    want = expected(people, stray, 30, "campaign")
    assert {"none", "1", "2", "1-holdout", "2-holdout"} <= set(want["groups"])
    assert all(len(s) > 3 for s in want["total"]["seconds"][1:])
    assert all(c[1] < c[0] for c in want["clicks"].values())  # some clicks never registered in the window


@pytest.mark.parametrize("window_days", [1, 30])
def test_clicks_per_channel_count_those_that_registered_within_the_window(client, world, token, window_days):
    people, stray = world
    want = expected(people, stray, window_days, "referral")["clicks"]
    got = details(client, token, group_by="channel", window_days=window_days)
    by_code = {g["key"]: (g["clicks"], g["click_registrations"]) for g in got["groups"]}
    assert {code: by_code[code] for code in want} == {code: tuple(v) for code, v in want.items()}
    assert (got["total"]["clicks"], got["total"]["click_registrations"]) == (
        sum(v[0] for v in want.values()), sum(v[1] for v in want.values()))


def test_the_funnel_page_shows_times_money_and_clicks_and_its_csv_has_them(client, world, login):
    login("analyst")
    args = {"start": START.isoformat(), "end": END.isoformat(), "group_by": "channel"}
    page = client.get("/dashboards/funnel", query_string=args)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for marker in ('id="funnel-times-chart"', 'id="funnel-money-chart"', 'id="funnel-clicks"', 'id="funnel-money"'):
        assert marker in text
    csv = client.get("/dashboards/funnel", query_string={**args, "format": "csv"}).get_data(as_text=True)
    head = csv.splitlines()[0].split(",")
    assert {"clicks", "click_registrations", "first_investment_amount", "first_investment_annualised",
            "first_investment_median_seconds"} <= set(head)
    assert client.get("/dashboards/funnel", query_string={**args, "group_by": "campaign"}).status_code == 200
    bad = client.get("/dashboards/funnel", query_string={**args, "group_by": "colour"})
    assert bad.status_code == 400 and "campaign" in bad.get_data(as_text=True)
