"""Referral records are order-free (property test): the same events in any arrival order and batching give the
same records, and a replay over the log gives them again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from growth.db import get_db
from growth.events.processor import drain, reset_projections
from growth.investors.models import Investor
from growth.investors.rules import referral_code_for
from growth.projections import projections_of
from growth.referrals.models import Referral
from tests.events import post_events
from tests.projection_state import wipe

BASE = datetime(2026, 8, 3, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai: registrations straddle business days
USERS = ("A", "B", "C", "D", "E")
PHONES = ("+8613800138000", "+8613900139000", "+8617012345678", "+8616512345678", "+8613700137000")
IPS = ("10.2.3.4", "10.2.3.99", "10.9.9.9", "2001:db8::1", "2001:db8::2")
DEVICES = ("dev1", "dev2", "dev3")


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Draw registrations (with referral codes that may form chains, fan-outs and cycles) and investments."""
    specs: list[tuple[str, str, dict[str, Any] | None, dict[str, Any]]] = []
    for uid in USERS:
        for _ in range(draw(st.integers(0 if uid == "E" else 1, 2))):
            data: dict[str, Any] = {}
            referrer = draw(st.sampled_from([None, *[u for u in USERS if u != uid]]))
            if referrer:
                data["referral_code"] = referral_code_for(referrer)
            if draw(st.booleans()):
                data["ip"] = draw(st.sampled_from(IPS))
            if draw(st.booleans()):
                data["device_id"] = draw(st.sampled_from(DEVICES))
            user = {"phone": draw(st.sampled_from(PHONES))} if draw(st.booleans()) else {}
            specs.append(("user.registered", uid, data, user))
    for uid in USERS[1:]:
        for n in range(draw(st.integers(0, 2))):
            term = draw(st.sampled_from([7, 30, 90]))
            amount = draw(st.sampled_from(["999.99", "1000.00", "5000.00"]))
            specs.append(("investment.created", uid, {
                "investment_id": f"{uid}{n}", "amount": amount,
                "product": {"id": f"p{term}", "name": f"{term}天标", "term_days": term, "annual_rate": "0.0850"}}, {}))
            if draw(st.booleans()):
                specs.append(("investment.redeemed", uid, {"investment_id": f"{uid}{n}", "amount": amount}, {}))
    offsets = draw(st.lists(st.integers(0, 45 * 24 * 60), min_size=len(specs), max_size=len(specs)))
    return [{"id": f"evt_{n}", "type": kind, "occurred_at": (BASE + timedelta(minutes=m)).isoformat(),
             "user": {"id": uid, **user}, **({"data": data} if data is not None else {})}
            for n, ((kind, uid, data, user), m) in enumerate(zip(specs, offsets, strict=True))]


def records(app) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Return every referral record keyed by the referee's platform id, investor ids replaced by platform ids."""
    with get_db(app).session_scope() as s:
        uid = dict(s.execute(select(Investor.id, Investor.platform_user_id)).all())
        out = {}
        for r in s.scalars(select(Referral)):
            row = {c.key: getattr(r, c.key) for c in Referral.__table__.columns}
            row["referee_id"], row["referrer_id"] = uid[r.referee_id], uid[r.referrer_id]
            for flag in row["flags"]:
                if "members" in flag["detail"]:
                    flag["detail"]["members"] = sorted(uid[m] for m in flag["detail"]["members"])
            out[row["referee_id"]] = row
        return out


def run(app, client, events: list[dict[str, Any]], batch: int) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    wipe(app, investors=True)
    response = post_events(client, events)
    assert response.json == {"accepted": len(events), "duplicates": 0, "rejected": []}
    assert drain(app, limit=batch) == len(events)
    return records(app)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_any_arrival_order_and_batching_gives_the_same_referral_records(app, client, data):
    events = data.draw(histories(), label="history")
    first = run(app, client, data.draw(st.permutations(events)), data.draw(st.integers(1, 4)))
    second = run(app, client, data.draw(st.permutations(events)), data.draw(st.integers(1, 4)))
    assert first == second
    with get_db(app).session_scope(write=True) as s:
        reset_projections(session=s, projections=projections_of(app))
    drain(app, limit=1000)
    assert records(app) == second
