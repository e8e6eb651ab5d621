"""The ledger's scheduled jobs: expiry and payments on the elected scheduler, one reminder per reward before expiry."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from campaigns.scheduler import run_scheduler
from channels.models import OutboxMessage
from channels.template_library import TemplateDraft, create_template
from channels.templates import NAME_SLOT
from growth.db import get_db
from growth.events.processor import drain
from growth.rewards import jobs, reminders
from growth.rewards.models import Reward
from growth.rewards.rules import Terms
from growth.timeutil import local_date
from tests.events import investment, post_events
from tests.integration.rewards.helpers import T0, D, give, register

RATE_BOOST = Terms(annual_rate_bp=100, max_days=30, valid_days=10)


def remind(app: Flask, now: datetime) -> None:
    with app.app_context(), get_db(app).session_scope(write=True) as s:
        jobs.task_remind(s, now)


def reminders_sent(app: Flask) -> list[OutboxMessage]:
    with get_db(app).session_scope() as s:
        rows = list(s.scalars(select(OutboxMessage).where(OutboxMessage.sender == reminders.SENDER)
                              .order_by(OutboxMessage.cause)))
        s.expunge_all()
    return rows


def status_of(app: Flask, reward_id: int) -> str:
    with get_db(app).session_scope() as s:
        reward = s.get(Reward, reward_id)
        assert reward is not None
        return reward.status


def test_a_reward_about_to_expire_gets_one_marketing_reminder_however_often_the_job_runs(app, client):
    ids = register(app, client, "u1", "u2")
    voucher = give(app, ids["u1"], key="v")  # valid 30 days from T0
    boost = give(app, ids["u2"], "rate_boost", RATE_BOOST, key="rb", at=T0 + 18 * D)  # ends with the voucher
    for hour in range(3):  # three runs, an hour apart
        remind(app, T0 + 28 * D + hour * D / 24)
    sent = reminders_sent(app)
    assert sorted((m.investor_id, m.cause) for m in sent) == sorted(
        [(ids["u1"], reminders.cause_of(voucher)), (ids["u2"], reminders.cause_of(boost))])
    assert {(m.channel, m.message_class, m.status) for m in sent} == {("sms", "marketing", "queued")}
    with get_db(app).session_scope() as s:
        reward = s.get(Reward, voucher)
        assert reward is not None and reward.expires_at is not None
        last_day = local_date(reward.expires_at - timedelta(microseconds=1)).isoformat()
        # The run's query finds nothing left: the reminder's key is the one the query looks for.
        assert reminders.due(session=s, now=T0 + 28 * D, within=3 * D, limit=10) == []
    texts = {m.investor_id: m.content["text"] for m in sent}
    assert "50.00" in texts[ids["u1"]] and last_day in texts[ids["u1"]] and "回T退订" in texts[ids["u1"]]
    assert "1.00%" in texts[ids["u2"]]
    assert all(text.startswith(f"{NAME_SLOT}您好") for text in texts.values())  # delivery fills the name in


def test_expired_used_and_distant_rewards_get_no_reminder(app, client):
    ids = register(app, client, "u1")
    expired = give(app, ids["u1"], key="expired", at=T0 - 5 * D)
    used = give(app, ids["u1"], key="used")
    give(app, ids["u1"], key="distant", at=T0 + 20 * D)  # ends in 22 days
    give(app, ids["u1"], "cash", Terms(amount_fen=500), key="cash")  # never expires
    assert post_events(client, [investment("u1", T0 + D, "i1", amount="6000.00", term_days=30,
                                           reward_ids=[f"rw_{used}"])]).json["rejected"] == []
    drain(app)
    with get_db(app).session_scope(write=True) as s:
        jobs.task_expire(s, T0 + 27 * D)
    assert status_of(app, expired) == "expired" and status_of(app, used) == "redeemed"
    remind(app, T0 + 28 * D)
    assert reminders_sent(app) == []


@pytest.mark.parametrize("app_config", [{"CHANNEL_ENV": {"GROWTH_REWARD_EXPIRY_REMINDER_DAYS": "0"}}])
def test_no_reminder_is_queued_when_the_days_setting_is_zero(app, client):
    ids = register(app, client, "u1")
    give(app, ids["u1"], key="v")
    remind(app, T0 + 29 * D)
    assert reminders_sent(app) == []


@pytest.mark.parametrize("app_config", [{"CHANNEL_ENV": {"GROWTH_REWARD_EXPIRY_REMINDER_DAYS": "5",
                                                         "GROWTH_REWARD_EXPIRY_REMINDER_TEMPLATE": "到期提醒"}}])
def test_the_days_and_the_library_template_come_from_the_settings(app, client):
    ids = register(app, client, "u1")
    give(app, ids["u1"], key="v")
    with app.app_context(), get_db(app).session_scope(write=True) as s:
        create_template(TemplateDraft("到期提醒", "sms", "marketing",
                                      body="{{ reward.kind_label }}{{ reward.amount }}元快到期了。回T退订",
                                      provider_template="SMS_001", params={"amount": "{{ reward.amount }}"}),
                        session=s, now=T0)
    remind(app, T0 + 26 * D)  # four and a half days ahead: due with this setting, not with the default 3
    [message] = reminders_sent(app)
    assert message.content["template_code"] == "SMS_001"
    assert message.content["params"] == {"amount": "50.00"}
    assert message.content["text"].endswith("50.00元快到期了。回T退订")


def until(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.parametrize("app_config", [{"REWARD_EXPIRY_JOB_SECONDS": 0.2, "REFERRAL_JOB_SECONDS": 0.2}])
def test_the_elected_scheduler_expires_rewards_as_a_system_job(app, client):
    ids = register(app, client, "u1")
    voucher = give(app, ids["u1"], key="v", at=datetime.now(UTC) - 40 * D)  # ended ten days ago
    stop = threading.Event()
    thread = threading.Thread(target=run_scheduler, args=(app, stop), daemon=True)
    thread.start()
    try:
        until(lambda: status_of(app, voucher) == "expired", 30)
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert status_of(app, voucher) == "expired"
    with get_db(app).session_scope() as s:
        webhooks = [m.content["data"]["type"] for m in s.scalars(select(OutboxMessage)
                                                                  .where(OutboxMessage.channel == "webhook"))]
    assert sorted(webhooks) == ["reward.expired", "reward.granted"]
