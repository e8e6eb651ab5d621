"""Top referrers and fraud flags (GET /api/v1/dashboards/referrals, the page and its CSVs) against a plain count.

Generated rows: referrers with share-link visits, referees registering (some at 23:59:59 and 00:00:00 Asia/Shanghai
on the range's edges), referral records with statuses, rejection reasons and fraud flags, confirmations and
referral rewards to either side (cause "referral:<referee id>", plus causes that only look like it). The expected
figures use none of the project's code.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from growth.db import get_db
from growth.investors.models import Investor
from growth.referrals.models import Referral, ReferralConfirmation, ReferralVisit
from growth.rewards.models import Reward, RewardBudget
from tests.factories import make_token

SH = ZoneInfo("Asia/Shanghai")
START, END = date(2026, 11, 1), date(2026, 11, 30)
CODES = ["same_phone", "same_device", "same_ip", "shared_subnet", "too_many_referees", "referral_cycle",
         "virtual_operator"]
BLOCKS = {"same_phone", "same_device", "same_ip"}


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=SH).astimezone(UTC)


EDGES = [local(2026, 10, 31, 23, 59, 59), local(2026, 11, 1), local(2026, 11, 30, 23, 59, 59), local(2026, 12, 1)]


def in_range(at: datetime | None) -> bool:
    return at is not None and START <= at.astimezone(SH).date() <= END


@dataclass
class Ref:
    referee: int
    referrer: int
    registered: datetime
    status: str
    rejected_reason: str | None
    flags: list[str]
    qualified: datetime | None
    confirmed: datetime | None


@dataclass
class World:
    names: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # id: (user id, name, phone)
    visits: list[tuple[int, datetime]] = field(default_factory=list)
    refs: list[Ref] = field(default_factory=list)
    rewards: list[tuple[str, datetime, int]] = field(default_factory=list)


def _arrange(app: Any, seed: int) -> World:
    rng = random.Random(seed)
    world = World()
    span = (local(2026, 12, 5) - local(2026, 10, 25)).total_seconds()

    def when() -> datetime:
        return rng.choice(EDGES) if rng.random() < 0.25 else local(2026, 10, 25) + timedelta(
            seconds=rng.uniform(0, span))

    with get_db(app).session_scope(write=True) as s:
        s.execute(insert(Investor), [{"platform_user_id": f"ref{n:03d}", "referral_code": f"R{n:03d}",
                                      "name": f"邀请人{n:03d}号", "phone": f"+86138{n:08d}",
                                      "registered_at": local(2026, 1, 1)} for n in range(30)])
        referrers = list(s.scalars(select(Investor.id).order_by(Investor.id)))
        for i, uid, name, phone in s.execute(select(Investor.id, Investor.platform_user_id, Investor.name,
                                                    Investor.phone)):
            world.names[i] = (uid, name, phone)
        referees = []
        for n in range(220):
            # A few referrers bring most referees, so the ranking has a head and ties in its tail.
            referrer = referrers[min(int(rng.paretovariate(1.2)) - 1, 29)] if rng.random() < 0.8 else rng.choice(
                referrers)
            referees.append({"platform_user_id": f"ree{n:04d}", "referral_code": f"E{n:04d}", "name": f"被邀{n}",
                             "phone": f"+86137{n:08d}", "registered_at": when(), "referrer_id": referrer})
        s.execute(insert(Investor), referees)
        rows = s.execute(select(Investor.id, Investor.referrer_id, Investor.registered_at)
                         .where(Investor.referrer_id.is_not(None))).all()
        referrals, confirmations = [], []
        for referee, referrer, registered in rows:
            flags = rng.sample(CODES, rng.choice([0, 0, 0, 1, 1, 2]))
            if set(flags) & BLOCKS:
                status, reason = "rejected", "blocked"
            elif flags:
                status, reason = rng.choice([("in_review", None), ("rejected", "staff_rejected"),
                                             ("confirmed", None)])
            else:
                status, reason = rng.choice([("pending", None), ("qualified", None), ("confirmed", None),
                                             ("rejected", "not_qualifying"), ("rejected", "redeemed_early")])
            qualified = when() if status in ("qualified", "confirmed") else None
            confirmed = when() if status == "confirmed" else None
            world.refs.append(Ref(referee, referrer, registered, status, reason, flags, qualified, confirmed))
            referrals.append({"referee_id": referee, "referrer_id": referrer, "registered_at": registered,
                              "status": status, "rejected_reason": reason, "qualified_at": qualified,
                              "flags": [{"code": c, "detail": {}} for c in flags]})
            if confirmed is not None:
                confirmations.append({"referee_id": referee, "referrer_id": referrer, "confirmed_at": confirmed,
                                      "how": "automatic"})
        s.execute(insert(Referral), referrals)
        s.execute(insert(ReferralConfirmation), confirmations)
        world.visits = [(rng.choice(referrers), when()) for _ in range(400)]
        s.execute(insert(ReferralVisit), [{"referrer_id": r, "at": at, "visitor": f"v{n}"}
                                          for n, (r, at) in enumerate(world.visits)])
        budget = RewardBudget(owner_type="program", owner_key="program", name="p", created_at=EDGES[0])
        s.add(budget)
        s.flush()
        for ref in world.refs:
            if ref.confirmed is not None:
                for _side in (ref.referrer, ref.referee):  # both sides rewarded for the same referral
                    if rng.random() < 0.7:
                        world.rewards.append((f"referral:{ref.referee}", when(), rng.choice([0, rng.randint(1, 9999)])))
        world.rewards += [("referral:", when(), 500), ("referral:abc", when(), 700), ("campaign:1", when(), 900)]
        s.execute(insert(Reward), [{"key": f"k{n}", "investor_id": referrers[0], "kind": "cash", "status": "granted",
                                    "budget_id": budget.id, "cost_fen": fen, "granted_at": at, "granted_by": "test",
                                    "cause": cause} for n, (cause, at, fen) in enumerate(world.rewards)])
    return world


def masked_name(name: str) -> str:
    return name[0] + "*" * (len(name) - 1)


def masked_phone(phone: str) -> str:
    national = phone[3:]
    return f"+86 {national[:3]}****{national[-4:]}"


def expected_top(world: World) -> list[dict[str, Any]]:
    figures: dict[int, dict[str, int]] = {}

    def bump(referrer: int, key: str, n: int = 1) -> None:
        figures.setdefault(referrer, dict.fromkeys(("invites", "registrations", "qualified", "confirmed",
                                                    "rewards_cost"), 0))[key] += n

    for referrer, at in world.visits:
        if in_range(at):
            bump(referrer, "invites")
    referrer_of = {ref.referee: ref.referrer for ref in world.refs}
    for ref in world.refs:
        if in_range(ref.registered):
            bump(ref.referrer, "registrations")
        if in_range(ref.qualified):
            bump(ref.referrer, "qualified")
        if in_range(ref.confirmed):
            bump(ref.referrer, "confirmed")
    for cause, at, fen in world.rewards:
        tail = cause.removeprefix("referral:")
        if cause.startswith("referral:") and tail.isdigit() and in_range(at):
            bump(referrer_of[int(tail)], "rewards_cost", fen)
    ranked = sorted(figures.items(), key=lambda kv: (-kv[1]["registrations"], -kv[1]["confirmed"],
                                                     -kv[1]["qualified"], -kv[1]["invites"], kv[0]))[:20]
    out = []
    for investor_id, f in ranked:
        uid, name, phone = world.names[investor_id]
        cost = f.pop("rewards_cost")
        out.append({"investor_id": investor_id, "user_id": uid, "name": masked_name(name),
                    "phone": masked_phone(phone), **f, "rewards_cost": f"{cost // 100}.{cost % 100:02d}"})
    return out


def expected_fraud(world: World) -> dict[str, Any]:
    refs = [r for r in world.refs if in_range(r.registered)]
    rejected_by: dict[str, int] = {}
    for r in refs:
        if r.status == "rejected":
            rejected_by[r.rejected_reason or ""] = rejected_by.get(r.rejected_reason or "", 0) + 1
    return {
        "referrals": len(refs), "flagged": sum(1 for r in refs if r.flags),
        "in_review": sum(1 for r in refs if r.status == "in_review"),
        "blocked": sum(1 for r in refs if r.rejected_reason == "blocked"),
        "rejected": sum(1 for r in refs if r.status == "rejected"),
        "rejected_by": dict(sorted(rejected_by.items())),
        "reasons": [{"code": c, "kind": "block" if c in BLOCKS else "flag",
                     "referrals": sum(1 for r in refs if c in r.flags)} for c in CODES],
    }


@pytest.fixture
def world(app) -> World:  # type: ignore[no-untyped-def]
    return _arrange(app, 20261130)


@pytest.fixture
def token(app) -> str:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return make_token(s, role="analyst")


def _api(client, token: str, **params: Any):  # type: ignore[no-untyped-def]
    return client.get("/api/v1/dashboards/referrals", query_string=params,
                      headers={"Authorization": f"Bearer {token}"})


def test_the_generated_data_cover_every_rule(world):
    top = expected_top(world)
    assert len(top) == 20 and top[0]["registrations"] > top[-1]["registrations"]
    fraud = expected_fraud(world)
    assert all(r["referrals"] for r in fraud["reasons"]) and fraud["blocked"] and fraud["in_review"]
    assert any(in_range(r.registered) != in_range(r.registered + timedelta(seconds=1)) for r in world.refs)


def test_top_referrers_and_fraud_flags_agree_with_a_plain_count(client, world, token):
    response = _api(client, token, start=START.isoformat(), end=END.isoformat())
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["top_referrers"] == expected_top(world)
    assert response.json["fraud"] == expected_fraud(world)
    assert [w["week_start"] for w in response.json["weeks"]][0] == "2026-10-26"


def test_bad_ranges_are_refused_with_every_problem(client, world, token):
    response = _api(client, token, start="2026-11-31", end="someday")
    assert response.status_code == 422
    assert {e["path"] for e in response.json["errors"]} == {"start", "end"}
    assert _api(client, token, start="2026-12-01", end="2026-11-01").json["errors"][0]["code"] == "start_after_end"


def test_the_page_and_its_csvs_hold_the_same_numbers(client, world, login):
    login("analyst")
    args = {"start": START.isoformat(), "end": END.isoformat()}
    top = expected_top(world)
    response = client.get("/dashboards/referrals", query_string={**args, "format": "csv", "table": "referrers"})
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    # A cell starting with "+" is defused for spreadsheets (growth.exports), as every export does.
    assert rows == [{"rank": str(n), **{k: str(v) for k, v in t.items() if k != "investor_id"},
                     "phone": "'" + t["phone"]} for n, t in enumerate(top, 1)]
    response = client.get("/dashboards/referrals", query_string={**args, "format": "csv", "table": "flags"})
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    fraud = expected_fraud(world)
    assert {r["code"]: int(r["referrals"]) for r in rows if r["kind"] != "outcome"} == {
        r["code"]: r["referrals"] for r in fraud["reasons"]}
    assert {r["code"]: int(r["referrals"]) for r in rows if r["kind"] == "outcome"} == {
        k: fraud[k] for k in ("referrals", "flagged", "in_review", "blocked", "rejected")}
    html = client.get("/dashboards/referrals", query_string=args).get_data(as_text=True)
    for t in top:
        assert f'data-referrer="{t["user_id"]}"' in html
        assert f'href="/investors/{t["investor_id"]}"' in html
    assert 'href="/referrals/review"' in html


@pytest.mark.parametrize("role", ["analyst", "agent", "marketer", "approver"])
def test_no_role_without_a_reveal_sees_a_top_referrers_full_phone_or_name(client, world, login, role):
    login(role)
    args = {"start": START.isoformat(), "end": END.isoformat()}
    bodies = [client.get("/dashboards/referrals", query_string=args).get_data(as_text=True)]
    bodies += [client.get("/dashboards/referrals", query_string={**args, "format": "csv", "table": t})
               .get_data(as_text=True) for t in ("referrers", "flags")]
    for t in expected_top(world):
        _uid, name, phone = world.names[t["investor_id"]]
        for body in bodies:
            assert name not in body and phone[3:] not in body
        assert masked_phone(phone) in bodies[0] and masked_name(name) in bodies[0]


def test_an_agent_who_revealed_a_referrer_on_the_investor_page_sees_them_in_full(client, world, login):
    login("agent")
    first = expected_top(world)[0]
    assert client.post(f"/investors/{first['investor_id']}/reveal", data={"reason": "callback"}).status_code == 302
    html = client.get("/dashboards/referrals", query_string={"start": START.isoformat(),
                                                              "end": END.isoformat()}).get_data(as_text=True)
    _uid, name, phone = world.names[first["investor_id"]]
    assert name in html and phone[3:] in html
    second = expected_top(world)[1]
    assert world.names[second["investor_id"]][1] not in html
