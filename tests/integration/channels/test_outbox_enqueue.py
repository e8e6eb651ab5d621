"""Enqueueing: one message per idempotency key, in the caller's transaction, on both databases."""

from __future__ import annotations

from sqlalchemy import func, select

from channels.adapters.port import Channel, MessageClass
from channels.models import OutboxMessage
from channels.outbox import NewMessage, enqueue, enqueue_many
from growth.timeutil import utcnow
from tests.factories import make_investor


def _message(investor_id: int, cause: str = "evt-1", channel: Channel = Channel.SMS) -> NewMessage:
    return NewMessage(sender="campaign", campaign_id=7, cause=cause, channel=channel,
                      message_class=MessageClass.MARKETING, investor_id=investor_id, user_id=f"u{investor_id}",
                      content={"text": "您好，回T退订"})


def test_the_same_cause_enqueued_twice_makes_one_message(app, session, db_kind):
    investor = make_investor(session)
    now = utcnow()
    first = enqueue(_message(investor.id), session=session, now=now)
    second = enqueue(_message(investor.id), session=session, now=now)
    session.commit()
    assert first is not None and second is None
    assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
    row = session.get(OutboxMessage, first)
    assert (row.status, row.attempts, row.channel, row.user_id) == ("queued", 0, "sms", f"u{investor.id}")


def test_bulk_enqueue_skips_keys_already_queued_and_reports_them(app, session, db_kind):
    investors = [make_investor(session) for _ in range(5)]
    now = utcnow()
    enqueue(_message(investors[0].id), session=session, now=now)
    result = enqueue_many((_message(i.id) for i in investors), session=session, now=now, chunk=2)
    session.commit()
    assert (len(result.ids), result.existing) == (4, 1)
    assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 5


def test_an_enqueue_rolled_back_with_its_cause_leaves_nothing(app, session, db_kind):
    investor = make_investor(session)
    session.commit()
    enqueue(_message(investor.id), session=session, now=utcnow())
    session.rollback()
    assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_a_message_no_worker_could_send_is_refused_before_anything_is_queued(app, session):
    investor = make_investor(session)
    bad = NewMessage(sender="crm", cause="x", channel=Channel.WECHAT, message_class=MessageClass.SERVICE,
                     investor_id=investor.id, content={"text": "hi"})
    try:
        enqueue(bad, session=session, now=utcnow())
    except ValueError as exc:
        assert "template message" in str(exc)
    else:
        raise AssertionError("a WeChat message without a kind was queued")


def test_a_template_filled_by_the_database_keeps_every_value_as_text_exactly(app, session, db_kind):
    from sqlalchemy import literal

    from channels.outbox import json_template

    template = {"type": "reward.granted", "data": {"data": {"id": "-", "note": "不变 \"quoted\" \\ /"}}, "n": [1, 2]}
    awkward = 'rw_1 "q" \\ \n\t 中文 \u2028 {"x": 1}'
    document = json_template(db_kind, template, {("data", "data", "id"): literal(awkward),
                                                 ("data", "data", "user_id"): literal("u_42")})
    got = session.scalar(select(document))
    assert got == {"type": "reward.granted", "data": {"data": {"id": awkward, "note": "不变 \"quoted\" \\ /",
                                                               "user_id": "u_42"}}, "n": [1, 2]}
