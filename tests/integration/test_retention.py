"""The `data-retention` job: old payloads and bodies lose personal data the log no longer needs, new ones keep
it, and a replay afterwards rebuilds the same investors (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from campaigns import scheduler
from channels.models import OutboxMessage
from channels.services import retry_messages
from growth.crypto import keyring
from growth.db import get_db
from growth.events.models import PlatformEvent
from growth.events.processor import drain, reset_projections
from growth.events.rules import load_payload
from growth.investors.models import Investor
from growth.privacy.jobs import RetentionSettings, apply_retention
from growth.projections import projections_of
from tests.events import event, investment, post_events
from tests.factories import make_message

NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=400)  # older than the 365 days payloads keep personal data
T0 = datetime(2025, 10, 1, 2, 0, tzinfo=UTC)


def _payloads(app: Flask) -> dict[str, dict[str, Any]]:
    with get_db(app).session_scope() as s:
        return {eid: load_payload(p, keyring())
                for eid, p in s.execute(select(PlatformEvent.event_id, PlatformEvent.payload))}


def _investors(app: Flask) -> dict[str, dict[str, Any]]:
    with get_db(app).session_scope() as s:
        return {row["platform_user_id"]: dict(row) for row in s.execute(select(Investor.__table__)).mappings()}


@pytest.fixture
def logged(app: Flask, client: Any) -> dict[str, str]:
    """Two investors' histories: most of it received long ago, the last event recently."""
    old = [
        event("user.registered", "u_a", T0, {"channel_code": "baidu_sem", "click_id": "c-9", "device_id": "dev-a",
                                             "ip": "198.51.100.7"}, event_id="a-reg", phone="13800000001",
              name="张三", email="old@example.com"),
        event("user.kyc_verified", "u_a", T0 + timedelta(days=1), event_id="a-kyc", phone="+8613800000002",
              name="张三"),
        investment("u_a", T0 + timedelta(days=2), "inv-a1", event_id="a-inv"),
        event("user.registered", "u_b", T0, {"referral_code": "nobody"}, event_id="b-reg", phone="+8613900000003",
              wechat_openid="oB"),
        event("user.registered", "u_b", T0 + timedelta(hours=1), {"channel_code": "wechat_ads"}, event_id="b-reg2",
              phone="+8613900000004"),
    ]
    new = [event("funds.deposited", "u_a", T0 + timedelta(days=3), {"deposit_id": "d1", "amount": "10.00"},
                 event_id="a-dep", email="new@example.com")]
    assert post_events(client, old + new).get_json()["accepted"] == 6
    with get_db(app).session_scope(write=True) as s:
        s.execute(update(PlatformEvent).where(PlatformEvent.event_id != "a-dep").values(received_at=LONG_AGO))
        s.execute(update(PlatformEvent).where(PlatformEvent.event_id == "a-dep")
                  .values(received_at=NOW - timedelta(days=10)))
    drain(app)
    return {}


def test_old_payloads_lose_superseded_personal_values_and_keep_what_the_processor_needs(app, logged):
    run = apply_retention(get_db(app), now=NOW, settings=RetentionSettings(message_body_days=0))

    p = _payloads(app)
    assert "phone" not in p["a-reg"]["user"] and "email" not in p["a-reg"]["user"]  # replaced by later values
    assert p["a-reg"]["user"]["name"] == "张三"  # still the investor's name
    assert p["a-reg"]["data"] == {"channel_code": "baidu_sem", "click_id": "c-9", "device_id": "dev-a",
                                  "ip": "198.51.100.7"}  # attribution and the referral checks read these
    assert p["a-kyc"]["user"]["phone"] == "+8613800000002"  # the phone the investor has now
    assert p["a-dep"]["user"]["email"] == "new@example.com"  # recent: untouched
    assert "phone" not in p["b-reg"]["user"] and p["b-reg"]["user"]["wechat_openid"] == "oB"
    assert p["b-reg2"]["user"]["phone"] == "+8613900000004"
    assert run.events == 2 and not run.more  # a-reg and b-reg


def test_a_replay_after_retention_rebuilds_the_same_investors(app, logged):
    before = _investors(app)
    apply_retention(get_db(app), now=NOW, settings=RetentionSettings(message_body_days=0))
    with get_db(app).session_scope(write=True) as s:
        reset_projections(session=s, projections=projections_of(app))
    drain(app)

    assert _investors(app) == before


def test_retention_goes_in_small_resumable_batches_and_a_second_run_changes_nothing(app, logged):
    small = RetentionSettings(message_body_days=0, batch_size=2, max_batches=1)
    first = apply_retention(get_db(app), now=NOW, settings=small)
    assert first.more  # one batch of two: the rest waits for the next run
    while apply_retention(get_db(app), now=NOW, settings=small).more:
        pass
    stripped = _payloads(app)
    assert apply_retention(get_db(app), now=NOW, settings=RetentionSettings(message_body_days=0)).events == 0
    assert _payloads(app) == stripped
    assert "phone" not in stripped["a-reg"]["user"]


def test_zero_days_keeps_everything(app, logged):
    before = _payloads(app)
    run = apply_retention(get_db(app), now=NOW, settings=RetentionSettings(event_payload_days=0, message_body_days=0))
    assert (run.events, run.messages) == (0, 0)
    assert _payloads(app) == before


def test_events_not_yet_processed_are_left_for_later(app, client):
    post_events(client, [event("user.registered", "u_c", T0, event_id="c-reg", phone="+8613700000001"),
                         event("user.kyc_verified", "u_c", T0 + timedelta(days=1), event_id="c-kyc",
                               phone="+8613700000009")])
    with get_db(app).session_scope(write=True) as s:
        s.execute(update(PlatformEvent).values(received_at=LONG_AGO))
    assert apply_retention(get_db(app), now=NOW, settings=RetentionSettings(message_body_days=0)).events == 0
    drain(app)
    assert apply_retention(get_db(app), now=NOW, settings=RetentionSettings(message_body_days=0)).events == 1
    assert "phone" not in _payloads(app)["c-reg"]["user"]


def test_old_message_bodies_are_stripped_once_done_and_new_or_waiting_ones_kept(app, session):
    old = NOW - timedelta(days=181)
    body = {"text": "张三您好，回T退订", "template_code": "SMS_9", "params": {"name": "张三"}}
    sent = make_message(session, created_at=old, status="sent", content=body, recipient_masked="138****0001").id
    dead = make_message(session, created_at=old, status="dead", channel="email",
                        content={"subject": "月报", "text": "张三"}).id
    waiting = make_message(session, created_at=old, status="queued", content=body).id
    webhook = make_message(session, created_at=old, status="sent", channel="webhook",
                           content={"data": {"amount": "5.00"}}).id
    recent = make_message(session, created_at=NOW - timedelta(days=10), status="sent", content=body).id
    session.commit()

    run = apply_retention(get_db(app), now=NOW, settings=RetentionSettings(event_payload_days=0))

    assert run.messages == 2
    session.expire_all()
    content = {i: session.get_one(OutboxMessage, i).content for i in (sent, dead, waiting, webhook, recent)}
    assert content[sent] == {"template_code": "SMS_9", "redacted": "retention"}
    assert content[dead] == {"redacted": "retention"}
    assert content[waiting] == content[recent] == body
    assert content[webhook] == {"data": {"amount": "5.00"}}
    assert session.get_one(OutboxMessage, sent).status == "sent"  # the delivery log keeps the row
    # Nothing left to send: a stripped message cannot be queued again.
    assert retry_messages(session=session, now=NOW, ids=[dead]) == 0


def test_the_elected_scheduler_runs_retention_as_a_system_job(app):
    assert scheduler._SYSTEM["data-retention"] == (app.config["RETENTION_JOB_SECONDS"], "data-retention")
    assert scheduler._TASKS["data-retention"][1] is False  # its batches open their own write transactions
