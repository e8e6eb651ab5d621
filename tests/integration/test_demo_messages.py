"""The demo's delivery history goes through the real outbox and delivery checks, on the console provider."""

from __future__ import annotations

from sqlalchemy import func, select

from channels.models import OutboxMessage
from growth.demo import load_demo


def test_the_demo_leaves_a_week_of_messages_in_every_kind_of_outcome_and_loads_once(app, session):
    summary = load_demo(app, investors=300, seed=7)

    # The demo's rewards queue platform webhooks too; the delivery history is the messages to people.
    to_people = OutboxMessage.channel != "webhook"
    counts = dict(session.execute(select(OutboxMessage.status, func.count()).where(to_people)
                                  .group_by(OutboxMessage.status)).all())
    assert summary.messages_written == sum(counts.values()) > 0
    assert {"delivered", "skipped_no_consent", "capped", "failed", "deferred"} <= set(counts)
    assert session.scalar(select(func.count()).select_from(OutboxMessage)
                          .where(OutboxMessage.provider.is_not(None), OutboxMessage.provider != "console",
                                 OutboxMessage.channel == "sms")) == 0
    again = load_demo(app, investors=300, seed=7)
    assert again.already_loaded
    session.commit()
    assert session.scalar(select(func.count()).select_from(OutboxMessage).where(to_people)) == sum(counts.values())
