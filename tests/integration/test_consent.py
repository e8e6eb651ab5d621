"""Consent in channels: a ledger of statements per investor and channel, the latest wins, opt-out wins a tie."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from channels.models import ConsentStatement
from channels.services import consent_of, may_message, record_statement
from tests.factories import make_investor

T0 = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
H = timedelta(hours=1)


def test_a_statement_is_recorded_once_per_event_id(session):
    inv = make_investor(session)
    assert record_statement(session=session, investor_id=inv.id, channel="sms", granted=False, occurred_at=T0,
                            source="sms_reply", evidence={"reply": "TD"}, event_id="sms-reply-1")
    assert not record_statement(session=session, investor_id=inv.id, channel="sms", granted=False, occurred_at=T0,
                                source="sms_reply", evidence={"reply": "TD"}, event_id="sms-reply-1")
    assert session.scalar(select(func.count()).select_from(ConsentStatement)) == 1


def test_an_older_statement_is_kept_in_the_ledger_but_does_not_change_the_state(session):
    inv = make_investor(session)
    record_statement(session=session, investor_id=inv.id, channel="wechat", granted=True, occurred_at=T0 + H,
                     source="wechat")
    assert not record_statement(session=session, investor_id=inv.id, channel="wechat", granted=False,
                                occurred_at=T0, source="unsubscribe_link")
    assert consent_of(session=session, investor_id=inv.id) == {
        "wechat": {"granted": True, "at": T0 + H, "source": "wechat"}}
    assert may_message(session=session, investor_id=inv.id, channel="wechat")
    assert not may_message(session=session, investor_id=inv.id, channel="sms")  # never stated: no
    assert session.scalar(select(func.count()).select_from(ConsentStatement)) == 2


def test_an_opt_out_at_the_same_instant_as_a_consent_wins(session):
    inv = make_investor(session)
    record_statement(session=session, investor_id=inv.id, channel="email", granted=False, occurred_at=T0,
                     source="unsubscribe_link")
    assert not record_statement(session=session, investor_id=inv.id, channel="email", granted=True, occurred_at=T0,
                                source="platform_event")
    assert consent_of(session=session, investor_id=inv.id)["email"]["granted"] is False
