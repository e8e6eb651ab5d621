"""Segments compiled to SQL select exactly the investors an independent Python reading of the rules selects."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from campaigns.definition import Audience
from campaigns.segments import count, in_holdout, members_query, stream
from channels.models import ConsentState
from growth.acquisition.models import AcquisitionChannel
from growth.investors.models import Investment, InvestorTag
from growth.timeutil import SHANGHAI
from tests.factories import make_investor

NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
TODAY = date(2026, 12, 3)
CODES = ("baidu_sem", "wechat_ad", "organic", "referral")


def audience(*conditions: dict[str, Any]) -> Audience:
    return Audience.model_validate({"all": list(conditions)})


@pytest.fixture
def population(session) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Sixty investors with random attributes, and the same facts as plain dicts for the reference reading."""
    rng = random.Random(20261203)
    channels = {}
    for code in CODES:
        channel = AcquisitionChannel(code=code, name=code, kind="other")
        session.add(channel)
        session.flush()
        channels[code] = channel.id
    people = []
    for i in range(60):
        registered = NOW - timedelta(hours=rng.randint(0, 24 * 40))
        first_investment = registered + timedelta(hours=rng.randint(-5, 24 * 20)) if rng.random() < 0.6 else None
        code = rng.choice((*CODES, None))
        investor = make_investor(
            session, registered_at=registered, channel_id=channels.get(code) if code else None,
            first_investment_at=first_investment, investment_count=rng.randint(0, 5) if first_investment else 0,
            holdings_fen=rng.choice((0, 100_000, 5_000_000)), investment_total_fen=rng.randint(0, 10_000_000),
            last_activity_at=registered + timedelta(days=rng.randint(0, 30)) if rng.random() < 0.8 else None,
        )
        maturities = []
        for _ in range(rng.randint(0, 2)):
            maturity = TODAY + timedelta(days=rng.randint(-3, 20))
            status = rng.choice(("active", "active", "matured"))
            session.add(Investment(investment_id=f"inv_{i}_{len(maturities)}", investor_id=investor.id,
                                   maturity_date=maturity, status=status, amount_fen=100_000))
            maturities.append((maturity, status))
        consents = {}
        for channel in ("sms", "email"):
            if rng.random() < 0.5:
                consents[channel] = rng.random() < 0.7
                session.add(ConsentState(investor_id=investor.id, channel=channel, granted=consents[channel],
                                         occurred_at=registered, source="event"))
        tags = {t for t in ("vip", "called") if rng.random() < 0.3}
        for tag in tags:
            session.add(InvestorTag(investor_id=investor.id, tag=tag, created_at=NOW))
        people.append({"id": investor.id, "registered": registered, "code": code, "first": first_investment,
                       "count": investor.investment_count, "holdings": investor.holdings_fen,
                       "total": investor.investment_total_fen, "last": investor.last_activity_at,
                       "maturities": maturities, "consents": consents, "tags": tags})
    session.flush()
    return people


def local_day(at: datetime) -> date:
    return at.astimezone(SHANGHAI).date()


REFERENCE = {
    "channel in": (({"field": "channel", "op": "in", "value": ["baidu_sem", "organic"]}),
                   lambda p: p["code"] in ("baidu_sem", "organic")),
    "channel not_in": (({"field": "channel", "op": "not_in", "value": ["baidu_sem"]}),
                       lambda p: p["code"] != "baidu_sem"),
    "registered_at": (({"field": "registered_at", "op": "between", "value": ["2026-11-20", "2026-11-30"]}),
                      lambda p: date(2026, 11, 20) <= local_day(p["registered"]) <= date(2026, 11, 30)),
    "registered_days_ago": (({"field": "registered_days_ago", "op": "between", "value": [0, 7]}),
                            lambda p: 0 <= (TODAY - local_day(p["registered"])).days <= 7),
    "milestone reached within": (
        ({"field": "milestone", "op": "reached", "value": "first_investment", "within_days": 7}),
        lambda p: p["first"] is not None and p["first"] - p["registered"] <= timedelta(days=7)),
    "milestone not reached": (({"field": "milestone", "op": "not_reached", "value": "first_investment"}),
                              lambda p: p["first"] is None),
    "investment_count": (({"field": "investment_count", "op": "between", "value": [1, 3]}),
                         lambda p: 1 <= p["count"] <= 3),
    "holdings": (({"field": "holdings", "op": "gte", "value": "1000.00"}), lambda p: p["holdings"] >= 100_000),
    "investment_total": (({"field": "investment_total", "op": "lte", "value": "50000.00"}),
                         lambda p: p["total"] <= 5_000_000),
    "maturity_within_days": (
        ({"field": "maturity_within_days", "op": "lte", "value": 7}),
        lambda p: any(s == "active" and TODAY <= m <= TODAY + timedelta(days=7) for m, s in p["maturities"])),
    "inactive_days": (({"field": "inactive_days", "op": "gte", "value": 10}),
                      lambda p: (p["last"] or p["registered"]) < NOW - timedelta(days=10)),
    "consent": (({"field": "consent", "op": "has", "value": "sms"}), lambda p: p["consents"].get("sms") is True),
    "tag": (({"field": "tag", "op": "has", "value": "vip"}), lambda p: "vip" in p["tags"]),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_each_condition_selects_what_the_reference_reading_selects(session, population, name):
    condition, predicate = REFERENCE[name]
    expected = sorted(p["id"] for p in population if predicate(p))
    got = [row[0] for row in session.execute(members_query(audience(condition), now=NOW))]
    assert got == expected
    assert 0 < len(expected) < len(population), "the sample should split the population"
    assert count(audience(condition), session=session, now=NOW) == len(expected)


def test_conditions_combine_with_and(session, population):
    names = ("channel not_in", "consent", "milestone not reached")
    conditions = [REFERENCE[n][0] for n in names]
    expected = sorted(p["id"] for p in population if all(REFERENCE[n][1](p) for n in names))
    assert [r[0] for r in session.execute(members_query(audience(*conditions), now=NOW))] == expected


def test_an_empty_audience_is_every_registered_investor(session, population):
    make_investor(session, registered_at=None)  # known only from a later event: no registration to count from
    assert count(audience(), session=session, now=NOW) == len(population)


def test_streaming_yields_every_member_once_in_chunks_and_resumes_after_an_id(session, population):
    everyone = sorted(p["id"] for p in population)
    chunks = list(stream(audience(), session=session, now=NOW, chunk=7))
    assert [len(c) for c in chunks] == [7] * 8 + [4]
    assert [m.investor_id for c in chunks for m in c] == everyone
    resumed = [m.investor_id for c in stream(audience(), session=session, now=NOW, after_id=everyone[29], chunk=7)
               for m in c]
    assert resumed == everyone[30:]


def test_the_holdout_is_stable_and_about_its_percentage():
    users = [f"u_{i}" for i in range(20_000)]
    held = [u for u in users if in_holdout(7, u, 10)]
    assert 1_800 < len(held) < 2_200
    assert held == [u for u in users if in_holdout(7, u, 10)]
    assert held != [u for u in users if in_holdout(8, u, 10)]  # another campaign draws another holdout
    assert not any(in_holdout(7, u, 0) for u in users[:1000])
    assert set(held) <= {u for u in users if in_holdout(7, u, 20)}  # a larger holdout keeps the smaller's members
