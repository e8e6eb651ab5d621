"""The investor projection on a real database: profile, milestones, investments, totals, consent, signals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from channels.services import consent_of
from growth import signals
from growth.db import get_db
from growth.events.models import PlatformEvent, ProcessorCursor
from growth.events.processor import CURSOR, drain
from growth.investors.models import FundsMovement, Investment, Investor
from growth.projections import Batch
from tests.events import event, investment, post_events

T0 = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)

ALL_SIGNALS = {
    "investor_registered": signals.investor_registered,
    "milestone_reached": signals.milestone_reached,
    "investment_created": signals.investment_created,
    "investment_redeemed": signals.investment_redeemed,
    "investment_matured": signals.investment_matured,
    "consent_changed": signals.consent_changed,
}


def ingest(app, client, events: list[dict[str, Any]], **drain_kw: Any) -> int:  # type: ignore[no-untyped-def]
    """Post events signed like the platform, then process them; return how many were processed."""
    response = post_events(client, events)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["rejected"] == [], response.json
    return drain(app, **drain_kw)


def load(session, uid: str) -> Investor:  # type: ignore[no-untyped-def]
    """Return an investor as committed now (a new transaction, so other sessions' commits show)."""
    session.rollback()
    return session.scalars(select(Investor).where(Investor.platform_user_id == uid)).one()


def investments_of(session, uid: str) -> dict[str, Investment]:  # type: ignore[no-untyped-def]
    inv = load(session, uid)
    return {i.investment_id: i for i in session.scalars(select(Investment).where(Investment.investor_id == inv.id))}


def deposit(uid: str, at: datetime, deposit_id: str, amount: str) -> dict[str, Any]:
    return event("funds.deposited", uid, at, {"deposit_id": deposit_id, "amount": amount})


def withdrawal(uid: str, at: datetime, withdrawal_id: str, amount: str) -> dict[str, Any]:
    return event("funds.withdrawn", uid, at, {"withdrawal_id": withdrawal_id, "amount": amount})


def redeemed(uid: str, at: datetime, iid: str, amount: str) -> dict[str, Any]:
    return event("investment.redeemed", uid, at, {"investment_id": iid, "amount": amount})


def matured(uid: str, at: datetime, iid: str, amount: str, interest: str = "0.00") -> dict[str, Any]:
    return event("investment.matured", uid, at, {"investment_id": iid, "amount": amount, "interest": interest})


def consent(uid: str, at: datetime, channel: str, granted: bool) -> dict[str, Any]:
    return event("user.consent_changed", uid, at, {"channel": channel, "granted": granted})


@pytest.fixture
def received(app) -> Iterator[list[tuple[str, object, dict[str, Any]]]]:  # type: ignore[no-untyped-def]
    """Record every growth signal sent while the test runs: (signal name, sender, kwargs)."""
    got: list[tuple[str, object, dict[str, Any]]] = []
    receivers = []
    for name, sig in ALL_SIGNALS.items():
        def receiver(sender: object, _name: str = name, **kwargs: Any) -> None:
            got.append((_name, sender, kwargs))
        sig.connect(receiver)
        receivers.append((sig, receiver))
    yield got
    for sig, receiver in receivers:
        sig.disconnect(receiver)


# --- profile -------------------------------------------------------------------------------------


def test_each_profile_field_takes_the_value_of_its_latest_event_whatever_the_arrival_order(app, client, session):
    newest_first = [
        event("user.kyc_verified", "u1", T0 + 3 * H, phone="139 0013 9000"),
        event("user.card_bound", "u1", T0 + 2 * H, name="张三丰", email="new@example.com"),
    ]
    older = [
        event("user.registered", "u1", T0, phone="13800138000", name="张三", email="old@example.com",
              wechat_openid="oOld"),
        event("funds.deposited", "u1", T0 - H, {"deposit_id": "d1", "amount": "10.00"}, name="最早的名字",
              wechat_openid="oEarliest", phone="+8613700137000"),
    ]
    ingest(app, client, newest_first)
    ingest(app, client, older)

    inv = load(session, "u1")
    assert inv.phone == "+8613900139000"  # latest, normalised to E.164
    assert inv.phone_at == T0 + 3 * H
    assert (inv.name, inv.name_at) == ("张三丰", T0 + 2 * H)
    assert (inv.email, inv.email_at) == ("new@example.com", T0 + 2 * H)
    assert (inv.wechat_openid, inv.wechat_openid_at) == ("oOld", T0)


def test_a_bare_mainland_phone_is_stored_in_e164_form(app, client, session):
    ingest(app, client, [event("user.registered", "u1", T0, phone="13800138000")])
    assert load(session, "u1").phone == "+8613800138000"


def test_an_event_without_user_fields_leaves_the_profile_alone(app, client, session):
    ingest(app, client, [event("user.registered", "u1", T0, phone="13800138000", name="张三")])
    ingest(app, client, [event("user.kyc_verified", "u1", T0 + D)])
    inv = load(session, "u1")
    assert (inv.phone, inv.name) == ("+8613800138000", "张三")
    assert inv.last_activity_at == T0 + D


# --- milestones ----------------------------------------------------------------------------------


def test_each_milestone_is_the_earliest_event_of_its_kind_across_batches(app, client, session):
    later = [
        event("user.registered", "u1", T0 + 5 * D),
        event("user.kyc_verified", "u1", T0 + 6 * D),
        event("user.card_bound", "u1", T0 + 7 * D),
        deposit("u1", T0 + 8 * D, "d2", "100.00"),
        investment("u1", T0 + 9 * D, "i3"),
    ]
    earlier = [
        event("user.registered", "u1", T0),
        event("user.kyc_verified", "u1", T0 + 1 * D),
        event("user.card_bound", "u1", T0 + 2 * D),
        deposit("u1", T0 + 3 * D, "d1", "100.00"),
        investment("u1", T0 + 4 * D, "i1"),
        investment("u1", T0 + 4 * D + H, "i2"),
    ]
    ingest(app, client, later)
    inv = load(session, "u1")
    assert inv.registered_at == T0 + 5 * D
    assert inv.repeat_investment_at is None

    ingest(app, client, earlier)
    inv = load(session, "u1")
    assert inv.registered_at == T0
    assert inv.kyc_verified_at == T0 + D
    assert inv.card_bound_at == T0 + 2 * D
    assert inv.first_deposit_at == T0 + 3 * D
    assert inv.first_investment_at == T0 + 4 * D
    assert inv.repeat_investment_at == T0 + 4 * D + H
    assert inv.investment_count == 3


def test_the_repeat_investment_is_the_second_distinct_investment_not_a_redelivered_one(app, client, session):
    ingest(app, client, [investment("u1", T0 + D, "i1", amount="1000.00")])
    # The platform sends the same investment again under a new event id: still one investment.
    ingest(app, client, [investment("u1", T0 + 2 * D, "i1", amount="1000.00")])
    inv = load(session, "u1")
    assert inv.first_investment_at == T0 + D
    assert inv.repeat_investment_at is None
    assert inv.investment_count == 1
    assert inv.investment_total_fen == 100000

    ingest(app, client, [investment("u1", T0 + 3 * D, "i2", amount="500.00")])
    inv = load(session, "u1")
    assert inv.repeat_investment_at == T0 + 3 * D
    assert inv.investment_count == 2
    assert inv.investment_total_fen == 150000


def test_a_redelivered_investment_that_is_earlier_moves_its_start_and_the_first_investment(app, client, session):
    ingest(app, client, [investment("u1", T0 + 2 * D, "i1"), investment("u1", T0 + 3 * D, "i2")])
    ingest(app, client, [investment("u1", T0 + D, "i1")])
    inv = load(session, "u1")
    assert (inv.first_investment_at, inv.repeat_investment_at) == (T0 + D, T0 + 3 * D)
    assert investments_of(session, "u1")["i1"].started_at == T0 + D


def test_two_created_events_of_one_investment_in_one_batch_count_once(app, client, session):
    ingest(app, client, [investment("u1", T0 + D, "i1"), investment("u1", T0 + 2 * D, "i1")])
    inv = load(session, "u1")
    assert inv.investment_count == 1
    assert inv.repeat_investment_at is None


# --- investments and holdings --------------------------------------------------------------------


def test_holdings_follow_investments_through_creation_redemption_and_maturity(app, client, session):
    ingest(app, client, [
        investment("u1", T0, "a", amount="1000.00", term_days=30, rate="0.0850"),
        investment("u1", T0 + H, "b", amount="2000.00"),
        investment("u1", T0 + 2 * H, "c", amount="3000.50"),
    ])
    inv = load(session, "u1")
    assert inv.holdings_fen == 600050
    assert inv.investment_total_fen == 600050

    ingest(app, client, [redeemed("u1", T0 + D, "b", "2000.00")])
    assert load(session, "u1").holdings_fen == 400050

    ingest(app, client, [matured("u1", T0 + 30 * D, "a", "1000.00", interest="6.99")])
    inv = load(session, "u1")
    assert inv.holdings_fen == 300050
    assert inv.investment_total_fen == 600050  # what was invested does not shrink
    rows = investments_of(session, "u1")
    assert {k: r.status for k, r in rows.items()} == {"a": "matured", "b": "redeemed", "c": "active"}
    a = rows["a"]
    assert (a.amount_fen, a.term_days, a.annual_rate_bp) == (100000, 30, 850)
    assert (a.matured_principal_fen, a.interest_fen, a.matured_at) == (100000, 699, T0 + 30 * D)
    # T0 is 10:00 in Shanghai on 2026-10-01; the term runs in business days there.
    assert a.maturity_date == date(2026, 10, 31)
    assert (rows["b"].redeemed_fen, rows["b"].redeemed_at) == (200000, T0 + D)


def test_maturity_date_counts_the_term_from_the_shanghai_date_of_the_investment(app, client, session):
    late_evening_utc = datetime(2026, 10, 1, 17, 0, tzinfo=UTC)  # already 2 October in Shanghai
    ingest(app, client, [investment("u1", late_evening_utc, "i1", term_days=7)])
    assert investments_of(session, "u1")["i1"].maturity_date == date(2026, 10, 9)


def test_an_investment_matured_before_it_was_created_is_complete_once_the_creation_arrives(app, client, session):
    ingest(app, client, [matured("u1", T0 + 30 * D, "i1", "1000.00", interest="5.00")])
    inv = load(session, "u1")
    assert (inv.investment_count, inv.first_investment_at, inv.holdings_fen) == (0, None, 0)
    assert investments_of(session, "u1")["i1"].status == "matured"

    ingest(app, client, [investment("u1", T0, "i1", amount="1000.00")])
    inv = load(session, "u1")
    assert (inv.investment_count, inv.first_investment_at, inv.investment_total_fen) == (1, T0, 100000)
    assert inv.holdings_fen == 0  # it is matured: nothing is held any more
    row = investments_of(session, "u1")["i1"]
    assert (row.status, row.amount_fen, row.started_at, row.interest_fen) == ("matured", 100000, T0, 500)


def test_a_redemption_that_arrives_before_its_investment_keeps_it_out_of_holdings(app, client, session):
    ingest(app, client, [redeemed("u1", T0 + D, "i1", "1000.00")])
    ingest(app, client, [investment("u1", T0, "i1", amount="1000.00"), investment("u1", T0 + H, "i2",
                                                                                  amount="300.00")])
    inv = load(session, "u1")
    assert inv.holdings_fen == 30000
    assert investments_of(session, "u1")["i1"].status == "redeemed"


def test_investment_events_before_the_registration_make_the_investor_and_wait_for_it(app, client, session):
    ingest(app, client, [investment("u1", T0 + D, "i1")])
    inv = load(session, "u1")
    assert inv.registered_at is None and inv.first_investment_at == T0 + D
    ingest(app, client, [event("user.registered", "u1", T0, {"channel_code": "baidu_sem"})])
    inv = load(session, "u1")
    assert (inv.registered_at, inv.first_investment_at) == (T0, T0 + D)
    assert session.scalar(select(func.count()).select_from(Investor)) == 1


# --- deposits and withdrawals --------------------------------------------------------------------


def test_a_deposit_or_withdrawal_delivered_twice_is_counted_once(app, client, session):
    ingest(app, client, [
        deposit("u1", T0, "d1", "100.00"),
        deposit("u1", T0, "d1", "100.00"),  # same deposit, another event id, same batch
        withdrawal("u1", T0 + D, "w1", "30.00"),
    ])
    ingest(app, client, [
        deposit("u1", T0 + H, "d1", "100.00"),  # again, in a later batch
        deposit("u1", T0 + 2 * H, "d2", "50.50"),
        withdrawal("u1", T0 + D, "w1", "30.00"),
        withdrawal("u1", T0 + 2 * D, "w2", "20.00"),
    ])
    inv = load(session, "u1")
    assert inv.deposit_total_fen == 15050
    assert inv.withdrawal_total_fen == 5000
    assert inv.first_deposit_at == T0
    kinds = session.execute(select(FundsMovement.kind, func.count()).group_by(FundsMovement.kind)).all()
    assert dict(kinds) == {"deposit": 2, "withdrawal": 2}


def test_a_deposit_id_and_a_withdrawal_id_that_look_alike_are_different_movements(app, client, session):
    ingest(app, client, [deposit("u1", T0, "x1", "100.00"), withdrawal("u1", T0 + H, "x1", "40.00")])
    inv = load(session, "u1")
    assert (inv.deposit_total_fen, inv.withdrawal_total_fen) == (10000, 4000)


# --- consent -------------------------------------------------------------------------------------


def test_the_latest_consent_statement_of_each_channel_wins_whatever_the_arrival_order(app, client, session):
    ingest(app, client, [consent("u1", T0 + 2 * H, "sms", True), consent("u1", T0 + 3 * H, "email", False)])
    ingest(app, client, [consent("u1", T0 + H, "sms", False), consent("u1", T0 + H, "email", True),
                         consent("u1", T0 + 4 * H, "wechat", True)])
    inv = load(session, "u1")
    assert {ch: v["granted"] for ch, v in consent_of(session=session, investor_id=inv.id).items()} == {
        "sms": True, "email": False, "wechat": True}

    ingest(app, client, [consent("u1", T0 + 5 * H, "sms", False)])
    assert consent_of(session=session, investor_id=load(session, "u1").id)["sms"]["granted"] is False


def test_consent_statements_with_microsecond_times_are_ordered_by_time(app, client, session):
    ingest(app, client, [consent("u1", T0 + timedelta(microseconds=500000), "sms", True)])
    ingest(app, client, [consent("u1", T0, "sms", False)])
    assert consent_of(session=session, investor_id=load(session, "u1").id)["sms"]["granted"] is True


# --- signals -------------------------------------------------------------------------------------


def _plain(value: object) -> bool:
    return isinstance(value, (int, str, bool)) and not isinstance(value, float)


def test_signals_are_sent_after_commit_and_carry_ids_only(app, client, session, received):
    seen_committed: list[bool] = []

    def check_committed(sender: object, **kwargs: Any) -> None:
        # A new session sees the investor only if the batch had committed before the signal.
        with get_db(app).session_scope() as s:
            seen_committed.append(s.get(Investor, kwargs["investor_id"]) is not None)

    signals.milestone_reached.connect(check_committed)
    try:
        ingest(app, client, [
            event("user.registered", "u1", T0),
            event("user.kyc_verified", "u1", T0 + H),
            investment("u1", T0 + 2 * H, "i1"),
            matured("u1", T0 + 30 * D, "i1", "1000.00"),
            consent("u1", T0 + H, "sms", True),
        ])
    finally:
        signals.milestone_reached.disconnect(check_committed)
    assert seen_committed and all(seen_committed)

    inv = load(session, "u1")
    row = investments_of(session, "u1")["i1"]
    got = [(name, kwargs) for name, _sender, kwargs in received]
    assert sorted(got, key=repr) == sorted([
        ("investor_registered", {"investor_id": inv.id}),
        ("milestone_reached", {"investor_id": inv.id, "milestone": "registered"}),
        ("milestone_reached", {"investor_id": inv.id, "milestone": "kyc_verified"}),
        ("milestone_reached", {"investor_id": inv.id, "milestone": "first_investment"}),
        ("investment_created", {"investor_id": inv.id, "investment_id": row.id}),
        ("investment_matured", {"investor_id": inv.id, "investment_id": row.id}),
        ("consent_changed", {"investor_id": inv.id, "channel": "sms", "granted": True}),
    ], key=repr)
    assert all(sender is app for _name, sender, _kw in received)
    assert all(_plain(v) for _name, _sender, kw in received for v in kw.values())


def test_a_milestone_is_signalled_once_even_when_an_earlier_event_moves_it(app, client, session, received):
    ingest(app, client, [event("user.registered", "u1", T0 + D), investment("u1", T0 + 2 * D, "i1")])
    received.clear()
    ingest(app, client, [event("user.registered", "u1", T0), investment("u1", T0 + H, "i2")])
    inv = load(session, "u1")
    i2 = investments_of(session, "u1")["i2"]
    assert [(n, kw) for n, _s, kw in received] == [
        ("milestone_reached", {"investor_id": inv.id, "milestone": "repeat_investment"}),
        ("investment_created", {"investor_id": inv.id, "investment_id": i2.id}),
    ]


def test_a_redemption_is_signalled_once_and_a_redelivery_signals_nothing(app, client, session, received):
    ingest(app, client, [investment("u1", T0, "i1")])
    ingest(app, client, [redeemed("u1", T0 + D, "i1", "1000.00")])
    ingest(app, client, [redeemed("u1", T0 + 2 * D, "i1", "1000.00"), investment("u1", T0 + H, "i1")])
    names = [n for n, _s, _kw in received]
    assert names.count("investment_redeemed") == 1
    assert names.count("investment_created") == 1


def test_a_batch_that_fails_sends_no_signal_and_changes_nothing(app, client, session, received, monkeypatch):
    original = Batch.run

    def run_then_fail(self: Batch, events: Any) -> None:
        original(self, events)
        assert self.emissions  # the work, and its signals, were collected before the failure
        raise RuntimeError("database went away")

    assert post_events(client, [event("user.registered", "u1", T0), investment("u1", T0 + H, "i1")]).json[
        "accepted"] == 2
    monkeypatch.setattr(Batch, "run", run_then_fail)
    with pytest.raises(RuntimeError):
        drain(app)
    assert received == []
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Investor)) == 0
    assert session.scalar(select(func.count()).select_from(Investment)) == 0

    monkeypatch.setattr(Batch, "run", original)
    assert drain(app) == 2
    assert sorted(n for n, _s, _kw in received) == [
        "investment_created", "investor_registered", "milestone_reached", "milestone_reached"]


def test_a_failing_signal_receiver_does_not_stop_processing(app, client, session, received):
    def broken(sender: object, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    signals.investor_registered.connect(broken)
    try:
        processed = ingest(app, client, [event("user.registered", "u1", T0), event("user.registered", "u2", T0)])
    finally:
        signals.investor_registered.disconnect(broken)
    assert processed == 2
    session.rollback()
    last = session.scalar(select(func.max(PlatformEvent.seq)))
    assert session.get(ProcessorCursor, CURSOR).position == last
    assert sum(1 for n, _s, _kw in received if n == "milestone_reached") == 2


def test_a_deposit_redelivered_with_an_earlier_time_keeps_the_earliest_delivery(app, client, session):
    ingest(app, client, [deposit("u1", T0 + 2 * H, "d1", "100.00")])
    ingest(app, client, [deposit("u1", T0 + H, "d1", "100.00"), deposit("u1", T0 + 3 * H, "d1", "100.00")])
    session.rollback()
    row = session.scalars(select(FundsMovement)).one()
    assert (row.occurred_at, row.amount_fen) == (T0 + H, 10000)
    inv = load(session, "u1")
    assert (inv.deposit_total_fen, inv.first_deposit_at) == (10000, T0 + H)


def test_a_deposit_id_reported_for_two_users_belongs_to_the_earliest_report_in_either_order(app, client, session):
    ingest(app, client, [event("user.registered", "u1", T0), event("user.registered", "u2", T0)])
    ingest(app, client, [deposit("u1", T0 + 2 * H, "d1", "100.00")])
    ingest(app, client, [deposit("u2", T0 + H, "d1", "100.00")])
    assert (load(session, "u1").deposit_total_fen, load(session, "u2").deposit_total_fen) == (0, 10000)
    ingest(app, client, [deposit("u1", T0 + 3 * H, "d1", "100.00")])  # later again: changes nothing
    assert (load(session, "u1").deposit_total_fen, load(session, "u2").deposit_total_fen) == (0, 10000)
    assert session.scalar(select(FundsMovement.investor_id)) == load(session, "u2").id
