"""Order-free projection (property test): any arrival order and any batching give one final state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from growth.db import get_db
from growth.events.processor import drain, reset_projections
from growth.investors.rules import referral_code_for
from growth.projections import projections_of
from tests.events import post_events
from tests.projection_state import snapshot, wipe

USER = "u_main"
REFERRER = "u_ref"
BASE = datetime(2026, 8, 1, 0, 0, tzinfo=UTC)
SPAN_MS = 90 * 24 * 3600 * 1000  # timestamps are spread over 90 days, to the millisecond

PHONES = ("13800138000", "+8613800138000", "139 0013 9000", "+8613700137000")
NAMES = ("张三", "李四", "王五")
EMAILS = ("a@example.com", "b@example.com")
OPENIDS = ("oA", "oB")
AMOUNTS = ("100.00", "2500.50", "0.01", "10000.00")


def _profile() -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries({}, optional={
        "phone": st.sampled_from(PHONES), "name": st.sampled_from(NAMES),
        "email": st.sampled_from(EMAILS), "wechat_openid": st.sampled_from(OPENIDS),
    })


def _registration_data() -> st.SearchStrategy[dict[str, str]]:
    codes = st.sampled_from([referral_code_for(REFERRER), REFERRER, "NOSUCHCODE"])
    return st.one_of(
        st.just({}),
        st.fixed_dictionaries({"channel_code": st.sampled_from(["baidu_sem", "wdzj"])}),
        st.fixed_dictionaries({"referral_code": codes}),
        st.fixed_dictionaries({"click_id": st.just("clk_unknown"), "referral_code": codes}),
        st.fixed_dictionaries({"channel_code": st.just("toutiao"), "referral_code": codes},
                              optional={"device_id": st.just("dev1"), "ip": st.just("10.0.0.1")}),
    )


@st.composite
def histories(draw: st.DrawFn, *, distinct: bool = True) -> list[dict[str, Any]]:
    """Draw one investor's history (and maybe their referrer's), each event at a distinct time unless told."""
    specs: list[tuple[str, str, dict[str, Any] | None]] = []
    for _ in range(draw(st.integers(1, 2))):
        specs.append(("user.registered", USER, draw(_registration_data())))
    for kind in ("user.kyc_verified", "user.card_bound"):
        specs += [(kind, USER, None)] * draw(st.integers(0, 2))
    for n in range(draw(st.integers(0, 3))):
        data = {"deposit_id": f"d{n}", "amount": draw(st.sampled_from(AMOUNTS))}
        specs += [("funds.deposited", USER, data)] * draw(st.integers(1, 2))  # 2: redelivered, new event id
    for n in range(draw(st.integers(0, 2))):
        data = {"withdrawal_id": f"w{n}", "amount": draw(st.sampled_from(AMOUNTS))}
        specs += [("funds.withdrawn", USER, data)] * draw(st.integers(1, 2))
    for n in range(draw(st.integers(1, 4))):
        iid, amount = f"i{n}", draw(st.sampled_from(AMOUNTS))
        term = draw(st.sampled_from([7, 30, 90]))
        created = {"investment_id": iid, "amount": amount, "reward_ids": draw(st.lists(st.sampled_from(["r1", "r2"]),
                                                                                           unique=True)),
                   "product": {"id": f"p{term}", "name": f"{term}天标", "term_days": term, "annual_rate": "0.0850"}}
        specs += [("investment.created", USER, created)] * draw(st.integers(1, 2))
        ending = draw(st.sampled_from(["none", "none", "redeemed", "matured", "both"]))
        if ending in ("redeemed", "both"):
            specs += [("investment.redeemed", USER, {"investment_id": iid, "amount": amount})] * draw(st.integers(1, 2))
        if ending in ("matured", "both"):
            data = {"investment_id": iid, "amount": amount, "interest": draw(st.sampled_from(["0.00", "12.34"]))}
            specs += [("investment.matured", USER, data)] * draw(st.integers(1, 2))
    for _ in range(draw(st.integers(0, 4))):
        data = {"channel": draw(st.sampled_from(["sms", "email", "wechat"])), "granted": draw(st.booleans())}
        specs.append(("user.consent_changed", USER, data))
    if draw(st.booleans()):
        specs.append(("user.registered", REFERRER, {}))
        if draw(st.booleans()):
            specs.append(("user.kyc_verified", REFERRER, None))

    n = len(specs)
    if distinct:
        offsets = draw(st.lists(st.integers(0, SPAN_MS), min_size=n, max_size=n, unique=True))
    else:  # a handful of instants, so many events share one: the tie-breaks must be order-free too
        offsets = draw(st.lists(st.sampled_from([0, 1000, 2000, 3000]), min_size=n, max_size=n))
    events = []
    for n, ((kind, uid, data), ms) in enumerate(zip(specs, offsets, strict=True)):
        body: dict[str, Any] = {"id": f"evt_{n}", "type": kind,
                                "occurred_at": (BASE + timedelta(milliseconds=ms)).isoformat(),
                                "user": {"id": uid, **draw(_profile())}}
        if data is not None:
            body["data"] = data
        events.append(body)
    return events


def _ingest(app, client, events: list[dict[str, Any]], batch: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = post_events(client, events)
    assert response.json == {"accepted": len(events), "duplicates": 0, "rejected": []}
    assert drain(app, limit=batch) == len(events)
    return snapshot(app)


def _check_two_orders(app, client, data: st.DataObject, events: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    first = data.draw(st.permutations(events), label="first order")
    second = data.draw(st.permutations(events), label="second order")
    batch_a = data.draw(st.integers(1, 5), label="first batch size")
    batch_b = data.draw(st.integers(1, 5), label="second batch size")

    # Start each order from an empty database (investor rows too), as a separate installation would.
    wipe(app, investors=True)
    state_a = _ingest(app, client, first, batch_a)
    wipe(app, investors=True)
    state_b = _ingest(app, client, second, batch_b)

    assert state_a["investors"][USER]["registered_at"] is not None
    assert state_a == state_b

    # A replay over the same log, in one batch, keeping the investor rows, agrees too.
    with get_db(app).session_scope(write=True) as s:
        reset_projections(session=s, projections=projections_of(app))
    drain(app, limit=1000)
    assert snapshot(app) == state_b


SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@SETTINGS
@given(data=st.data())
def test_two_arrival_orders_in_small_batches_give_the_same_state(app, client, data):
    _check_two_orders(app, client, data, data.draw(histories(), label="history"))


@SETTINGS
@given(data=st.data())
def test_events_sharing_one_instant_give_the_same_state_in_any_order(app, client, data):
    _check_two_orders(app, client, data, data.draw(histories(distinct=False), label="history"))
