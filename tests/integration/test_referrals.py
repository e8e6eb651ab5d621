"""The referral records through the processor: qualification, hold and rejection with frozen time, every fraud
rule positive and negative, staff reviews, the confirmation feed, replays and settings changes (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import func, select

from growth import signals
from growth.cli import cli
from growth.db import get_db
from growth.errors import Conflict, DomainError
from growth.events.processor import drain
from growth.investors.models import Investor
from growth.investors.rules import referral_code_for
from growth.referrals import services
from growth.referrals.jobs import confirm_due_referrals, defaults_of, task_confirm
from growth.referrals.models import Referral, ReferralConfirmation
from tests.events import event, investment, post_events

T0 = datetime(2026, 10, 5, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
D = timedelta(days=1)
H = timedelta(hours=1)


def register(uid: str, at: datetime, *, referrer: str | None = None, phone: str | None = None,
             device: str | None = None, ip: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if referrer:
        data["referral_code"] = referral_code_for(referrer)
    if device:
        data["device_id"] = device
    if ip:
        data["ip"] = ip
    n = sum(map(ord, uid))
    return event("user.registered", uid, at, data, phone=phone or f"+86138{n:08d}")


def referral(app, uid: str) -> Referral | None:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        investor_id = s.scalar(select(Investor.id).where(Investor.platform_user_id == uid))
        return s.get(Referral, investor_id) if investor_id else None


def ingest(app, client, events: list[dict[str, Any]], batch: int = 1000) -> None:  # type: ignore[no-untyped-def]
    response = post_events(client, events)
    assert response.json["rejected"] == [], response.json
    drain(app, limit=batch)


def confirm(app, now: datetime) -> list[int]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return confirm_due_referrals(session=s, now=now, defaults=defaults_of(app))


def pair(app, client, *, referee: dict[str, Any] | None = None, referrer: dict[str, Any] | None = None,  # type: ignore[no-untyped-def]
         invest: tuple[str, int] | None = ("1000.00", 30), extra: list[dict[str, Any]] | None = None) -> Referral:
    """Register A (the referrer) and B (referred by A), B invests a day later; return B's referral."""
    events = [register("A", T0, **{"ip": "198.51.100.7", "device": "devA", **(referrer or {})}),
              register("B", T0 + H, referrer="A", **{"ip": "203.0.113.9", "device": "devB", **(referee or {})})]
    if invest:
        events.append(investment("B", T0 + D, "B-1", amount=invest[0], term_days=invest[1]))
    ingest(app, client, events + (extra or []))
    found = referral(app, "B")
    assert found is not None
    return found


# --- qualification, hold, confirmation ------------------------------------------------------------------


def test_a_qualifying_first_investment_is_held_then_confirmed_once_when_the_hold_ends(app, client):
    sent: list[dict[str, Any]] = []

    def receiver(_sender: object, **kw: Any) -> None:
        sent.append(kw)

    r = pair(app, client)
    assert (r.status, r.qualified_at, r.hold_ends_at) == ("qualified", T0 + D, T0 + 31 * D)
    assert r.first_investment_fen == 100_000 and r.flags == []
    signals.referral_confirmed.connect(receiver)
    try:
        assert confirm(app, T0 + 31 * D - timedelta(seconds=1)) == []
        assert sent == []
        ids = confirm(app, T0 + 31 * D)
        assert len(ids) == 1
        assert confirm(app, T0 + 40 * D) == []  # safe to run twice
    finally:
        signals.referral_confirmed.disconnect(receiver)
    r = referral(app, "B")
    assert r is not None and (r.status, r.confirmed_at, r.confirmed_how) == ("confirmed", T0 + 31 * D, "automatic")
    with get_db(app).session_scope() as s:
        feed = services.confirmations_after(s, 0)
        assert [(c.id, c.referee_id, c.referrer_id, c.how) for c in feed] == [
            (ids[0], r.referee_id, r.referrer_id, "automatic")]
        assert services.confirmations_after(s, ids[0]) == []
    assert sent == [{"confirmation_id": ids[0], "referee_id": r.referee_id, "referrer_id": r.referrer_id}]


def test_a_redemption_before_the_hold_ends_rejects_the_referral_and_nothing_is_confirmed(app, client):
    r = pair(app, client, extra=[event("investment.redeemed", "B", T0 + 20 * D,
                                       {"investment_id": "B-1", "amount": "1000.00"})])
    assert (r.status, r.rejected_reason) == ("rejected", "redeemed_early")
    assert confirm(app, T0 + 60 * D) == []


def test_a_maturity_is_not_an_early_redemption(app, client):
    r = pair(app, client, extra=[event("investment.matured", "B", T0 + 31 * D,
                                       {"investment_id": "B-1", "amount": "1000.00", "interest": "6.00"})])
    assert r.status == "qualified"


def test_only_the_first_investment_counts_even_when_a_later_one_would_qualify(app, client):
    r = pair(app, client, invest=("999.99", 90), extra=[investment("B", T0 + 2 * D, "B-2", amount="50000.00")])
    assert (r.status, r.rejected_reason, r.first_investment_id) == ("rejected", "not_qualifying", "B-1")


def test_a_first_investment_after_the_window_or_too_short_does_not_qualify(app, client):
    r = pair(app, client, invest=None, extra=[investment("B", T0 + H + 31 * D, "B-1", amount="5000.00")])
    assert (r.status, r.rejected_reason) == ("rejected", "not_qualifying")
    ingest(app, client, [register("C", T0, referrer="A"), investment("C", T0 + D, "C-1", term_days=7)])
    assert referral(app, "C").rejected_reason == "not_qualifying"  # type: ignore[union-attr]


def test_without_an_investment_the_referral_waits_with_its_window(app, client):
    r = pair(app, client, invest=None)
    assert (r.status, r.window_ends_at, r.qualified_at) == ("pending", T0 + H + 30 * D, None)


def test_a_late_earlier_investment_replaces_the_first_whatever_the_arrival_order(app, client):
    pair(app, client, invest=("100.00", 30))
    ingest(app, client, [investment("B", T0 + 2 * H, "B-0", amount="2000.00")])
    r = referral(app, "B")
    assert r is not None and (r.status, r.first_investment_id) == ("qualified", "B-0")


# --- fraud rules through the projection --------------------------------------------------------------------


def flag_codes(r: Referral) -> list[str]:
    return [f["code"] for f in r.flags]


def test_the_same_phone_device_or_address_blocks_the_referral(app, client):
    r = pair(app, client, referee={"phone": "+8613900000001"}, referrer={"phone": "+8613900000001"})
    assert (r.status, r.rejected_reason, flag_codes(r)) == ("rejected", "blocked", ["same_phone"])
    ingest(app, client, [register("C", T0 + H, referrer="A", device="devA"),
                         register("E", T0 + H, referrer="A", ip="198.51.100.7")])
    assert flag_codes(referral(app, "C")) == ["same_device"]  # type: ignore[arg-type]
    assert flag_codes(referral(app, "E")) == ["same_ip"]  # type: ignore[arg-type]
    assert {referral(app, u).status for u in ("C", "E")} == {"rejected"}  # type: ignore[union-attr]


def test_different_phones_devices_and_distant_addresses_raise_nothing(app, client):
    r = pair(app, client)
    assert (r.status, r.flags) == ("qualified", [])


def test_a_referrer_whose_phone_arrives_later_blocks_the_referee_then(app, client):
    pair(app, client, referee={"phone": "+8613900000002"})
    ingest(app, client, [event("user.kyc_verified", "A", T0 + 2 * D, phone="+8613900000002")])
    assert referral(app, "B").status == "rejected"  # type: ignore[union-attr]


def test_a_shared_slash_24_within_72_hours_waits_for_review_and_after_it_does_not(app, client):
    r = pair(app, client, referee={"ip": "198.51.100.77"})
    assert (r.status, flag_codes(r)) == ("in_review", ["shared_subnet"])
    ingest(app, client, [register("C", T0 + 73 * H, referrer="A", ip="198.51.100.78")])
    assert referral(app, "C").flags == []  # type: ignore[union-attr]


def test_more_than_k_referees_on_one_shanghai_day_flags_all_of_that_day(app, client):
    # 16:00 UTC is midnight in Shanghai: the sixth is on the next business day.
    day = datetime(2026, 10, 5, 16, 0, tzinfo=UTC)
    events = [register("A", T0)]
    events += [register(f"R{i}", day + i * H, referrer="A") for i in range(6)]
    events += [register("R6", day - timedelta(minutes=1), referrer="A")]  # the day before, in Shanghai
    ingest(app, client, events, batch=3)
    assert [flag_codes(referral(app, f"R{i}")) for i in range(6)] == [["too_many_referees"]] * 6  # type: ignore[arg-type]
    assert referral(app, "R6").flags == []  # type: ignore[union-attr]
    assert referral(app, "R0").flags[0]["detail"] == {"day": "2026-10-06", "count": 6, "limit": 5}  # type: ignore[union-attr]


def test_exactly_k_referees_on_one_day_are_not_flagged(app, client):
    ingest(app, client, [register("A", T0)] + [register(f"R{i}", T0 + i * H, referrer="A") for i in range(5)])
    assert all(referral(app, f"R{i}").flags == [] for i in range(5))  # type: ignore[union-attr]


def test_a_referral_cycle_flags_every_referral_in_it_and_a_chain_flags_none(app, client):
    ingest(app, client, [register("A", T0, referrer="C"), register("B", T0 + D, referrer="A"),
                         register("C", T0 + 5 * D, referrer="B"), register("E", T0 + 6 * D, referrer="C")],
           batch=1)
    for uid in ("A", "B", "C"):
        r = referral(app, uid)
        assert r is not None and (r.status, flag_codes(r)) == ("in_review", ["referral_cycle"]), uid
    assert referral(app, "E").flags == []  # type: ignore[union-attr]  # referred from inside the cycle, not part of it


def test_a_virtual_operator_phone_is_flagged_and_an_ordinary_one_is_not(app, client):
    r = pair(app, client, referee={"phone": "+8617012345678"})
    assert (r.status, r.flags) == ("in_review", [{"code": "virtual_operator", "detail": {"prefix": "170"}}])
    ingest(app, client, [register("C", T0 + H, referrer="A", phone="+8613712345678")])
    assert referral(app, "C").flags == []  # type: ignore[union-attr]


# --- staff reviews, replay, settings ---------------------------------------------------------------------------


def decide(app, uid: str, decision: str, now: datetime) -> Referral:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        investor_id = s.scalar(select(Investor.id).where(Investor.platform_user_id == uid))
        settings = services.current_settings(session=s, defaults=defaults_of(app))
        return services.decide(investor_id, decision=decision, note="checked by phone", session=s,  # type: ignore[arg-type]
                               by="reviewer@example.com", now=now, settings=settings)


def test_an_approval_after_the_hold_confirms_at_once_by_staff(app, client):
    pair(app, client, referee={"phone": "+8617112345678"})
    assert confirm(app, T0 + 40 * D) == []  # flagged: the job waits for a decision
    r = decide(app, "B", "approved", T0 + 40 * D)
    assert (r.status, r.confirmed_how, r.decision, r.decided_by) == ("confirmed", "staff", "approved",
                                                                     "reviewer@example.com")


def test_an_approval_before_the_hold_ends_lets_the_job_confirm_it_later(app, client):
    pair(app, client, referee={"phone": "+8617112345678"})
    assert decide(app, "B", "approved", T0 + 2 * D).status == "qualified"
    assert len(confirm(app, T0 + 31 * D)) == 1
    r = referral(app, "B")
    assert r is not None and (r.status, r.confirmed_how) == ("confirmed", "staff")


def test_a_rejection_is_final_and_a_second_decision_is_refused(app, client):
    pair(app, client, referee={"phone": "+8617112345678"})
    assert decide(app, "B", "rejected", T0 + 2 * D).rejected_reason == "staff_rejected"
    assert confirm(app, T0 + 60 * D) == []
    with pytest.raises(Conflict):
        decide(app, "B", "approved", T0 + 3 * D)


def dump(app) -> list[tuple[Any, ...]]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        rows = s.scalars(select(Referral).order_by(Referral.referee_id)).all()
        return [tuple(getattr(r, c.key) for c in Referral.__table__.columns) for r in rows]


def test_a_replay_rebuilds_the_same_records_keeps_decisions_and_never_repeats_a_confirmation(app, client):
    pair(app, client, extra=[register("C", T0 + H, referrer="A", phone="+8616512345678"),
                             investment("C", T0 + D, "C-1"), register("E", T0 + H, referrer="A")])
    decide(app, "C", "approved", T0 + 2 * D)
    assert len(confirm(app, T0 + 31 * D)) == 2
    before = dump(app)
    assert {r[3] for r in before} == {"confirmed", "pending"}
    result = CliRunner().invoke(cli, ["events", "replay", "--yes"], obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code == 0, result.output
    assert dump(app) == before
    assert confirm(app, T0 + 90 * D) == []
    with get_db(app).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(ReferralConfirmation)) == 2


def test_a_settings_change_re_derives_every_referral_and_is_audited(app, client):
    assert pair(app, client).status == "qualified"
    with get_db(app).session_scope(write=True) as s:
        services.save_settings({"qualify_amount": "1000.01"}, session=s, defaults=defaults_of(app),
                               by="admin@example.com", now=T0)
    r = referral(app, "B")
    assert r is not None and (r.status, r.rejected_reason) == ("rejected", "not_qualifying")
    with get_db(app).session_scope(write=True) as s:
        with pytest.raises(DomainError) as err:
            services.save_settings({"hold_days": "-1"}, session=s, defaults=defaults_of(app), by="x", now=T0)
        assert err.value.field == "hold_days"


def test_a_referee_re_attributed_to_nobody_loses_the_record(app, client):
    pair(app, client)
    # An earlier registration without a code arrives late: the earliest registration decides.
    ingest(app, client, [event("user.registered", "B", T0 - D, {})])
    assert referral(app, "B") is None


def test_the_scheduled_task_confirms_what_is_due_with_the_configured_settings(app, client):
    pair(app, client)  # qualified in October 2026: its hold has ended by December
    with app.app_context(), get_db(app).session_scope(write=True) as s:
        task_confirm(s, T0 + 90 * D)
    r = referral(app, "B")
    assert r is not None and (r.status, r.confirmed_how) == ("confirmed", "automatic")
