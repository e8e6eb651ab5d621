"""The platform webhook adapter against a real HTTP receiver that verifies with `standardwebhooks`."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook

from channels.adapters.port import AdapterRegistry, Channel, MessageClass, Outcome, Outgoing
from channels.adapters.webhook import (
    PlatformWebhookAdapter,
    WebhookSettings,
    build_webhook_adapter,
    register_webhook,
    retry_after_seconds,
    signed_headers,
)
from tests.fakes.smtp import free_port
from tests.fakes.webhook import FakeWebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
REWARD = {"id": "rw_42", "kind": "voucher", "status": "granted", "amount": "50.00", "campaign_id": 7,
          "conditions": {"min_investment": "5000.00", "min_term_days": 30}, "note": "新手礼包"}


@pytest.fixture
def receiver() -> Iterator[FakeWebhookReceiver]:
    fake = FakeWebhookReceiver(SECRET).start()
    yield fake
    fake.stop()


def adapter_for(url: str, *, timeout: float = 5.0, secret: str = SECRET) -> PlatformWebhookAdapter:
    return build_webhook_adapter({"platform_webhook_url": url, "platform_webhook_secret": secret,
                                  "platform_webhook_timeout": timeout})


def outgoing(message_id: str = "msg_77", **kw: object) -> Outgoing:
    fields: dict = {"message_id": message_id, "channel": Channel.WEBHOOK, "message_class": MessageClass.SERVICE,
                    "to": "platform", "data": {"type": "reward.granted", "data": REWARD}}
    fields.update(kw)
    return Outgoing(**fields)


def test_a_delivery_is_signed_so_the_official_library_verifies_it(receiver: FakeWebhookReceiver) -> None:
    result = adapter_for(receiver.url).send(outgoing())

    assert (result.outcome, result.code, result.provider_id) == (Outcome.SENT, "200", "msg_77")
    [delivery] = receiver.deliveries
    assert delivery.path == "/hooks/growth"
    assert delivery.verified == {"type": "reward.granted", "data": REWARD}
    assert delivery.headers["webhook-id"] == "msg_77"
    assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 60
    assert delivery.headers["webhook-signature"].startswith("v1,")
    assert delivery.headers["content-type"] == "application/json"
    assert json.loads(delivery.body) == {"type": "reward.granted", "data": REWARD}


def test_a_receiver_with_another_secret_cannot_verify_it(receiver: FakeWebhookReceiver) -> None:
    other = "whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()
    result = adapter_for(receiver.url, secret=other).send(outgoing())
    assert receiver.deliveries[0].verified is None
    assert result.outcome is Outcome.FAILED  # the receiver says 401


def test_a_500_then_200_is_a_retry_then_sent_with_the_same_webhook_id(receiver: FakeWebhookReceiver) -> None:
    receiver.answer(500)
    adapter = adapter_for(receiver.url)

    first = adapter.send(outgoing("msg_retry"))
    second = adapter.send(outgoing("msg_retry"))

    assert (first.outcome, first.code) == (Outcome.RETRY, "500")
    assert (second.outcome, second.code) == (Outcome.SENT, "200")
    assert [d.headers["webhook-id"] for d in receiver.deliveries] == ["msg_retry", "msg_retry"]
    assert all(d.verified is not None for d in receiver.deliveries)
    assert receiver.deliveries[0].body == receiver.deliveries[1].body


def test_different_deliveries_carry_different_webhook_ids(receiver: FakeWebhookReceiver) -> None:
    adapter = adapter_for(receiver.url)
    adapter.send(outgoing("msg_a"))
    adapter.send(outgoing("msg_b"))
    assert [d.headers["webhook-id"] for d in receiver.deliveries] == ["msg_a", "msg_b"]


@pytest.mark.parametrize(("status", "outcome"), [
    (200, Outcome.SENT), (201, Outcome.SENT), (202, Outcome.SENT), (204, Outcome.SENT),
    (500, Outcome.RETRY), (502, Outcome.RETRY), (503, Outcome.RETRY), (408, Outcome.RETRY), (429, Outcome.RETRY),
    (400, Outcome.FAILED), (401, Outcome.FAILED), (404, Outcome.FAILED), (410, Outcome.FAILED),
    (422, Outcome.FAILED), (301, Outcome.FAILED),
])
def test_each_status_maps_to_its_outcome(receiver: FakeWebhookReceiver, status: int, outcome: Outcome) -> None:
    receiver.answer(status)
    result = adapter_for(receiver.url).send(outgoing())
    assert (result.outcome, result.code) == (outcome, str(status))


def test_a_429_retry_after_in_seconds_is_honoured(receiver: FakeWebhookReceiver) -> None:
    receiver.answer(429, retry_after="120")
    result = adapter_for(receiver.url).send(outgoing())
    assert (result.outcome, result.retry_after) == (Outcome.RETRY, 120.0)


def test_a_503_retry_after_as_an_http_date_is_honoured(receiver: FakeWebhookReceiver) -> None:
    now = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)
    receiver.answer(503, retry_after="Thu, 03 Dec 2026 04:05:00 GMT")
    adapter = PlatformWebhookAdapter(WebhookSettings(receiver.url, SECRET), clock=lambda: now)
    # the receiver checks the timestamp against its own clock, so only the mapping is asserted here
    result = adapter.send(outgoing())
    assert (result.outcome, result.retry_after) == (Outcome.RETRY, 300.0)


def test_a_receiver_that_answers_too_late_means_retry(receiver: FakeWebhookReceiver) -> None:
    receiver.delay = 1.0
    result = adapter_for(receiver.url, timeout=0.3).send(outgoing())
    assert (result.outcome, result.code) == (Outcome.RETRY, "timeout")


def test_a_receiver_that_is_not_there_means_retry() -> None:
    result = adapter_for(f"http://127.0.0.1:{free_port()}/hooks").send(outgoing())
    assert (result.outcome, result.code) == (Outcome.RETRY, "connection")


def test_a_body_that_is_not_type_and_data_fails_without_a_request(receiver: FakeWebhookReceiver) -> None:
    result = adapter_for(receiver.url).send(outgoing(data={"type": "reward.granted", "extra": 1}))
    assert result.outcome is Outcome.FAILED
    assert receiver.deliveries == []


def test_signing_reads_an_aware_time_in_any_zone_as_the_same_instant() -> None:
    body = '{"type":"reward.granted","data":{}}'
    webhook = Webhook(SECRET)
    utc = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)
    shanghai = utc.astimezone(timezone(timedelta(hours=8)))
    assert signed_headers(webhook, "m", utc, body) == signed_headers(webhook, "m", shanghai, body)
    assert signed_headers(webhook, "m", shanghai, body)["webhook-timestamp"] == str(int(utc.timestamp()))


@pytest.mark.parametrize(("value", "seconds"), [
    ("30", 30.0), (None, None), ("", None), ("soon", None), ("Thu, 03 Dec 2026 03:59:00 GMT", 0.0),
])
def test_retry_after_parses_seconds_and_dates(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, datetime(2026, 12, 3, 4, 0, tzinfo=UTC)) == seconds


@pytest.mark.parametrize("secret", [
    "", "abc", "whsec_", "whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode(),
])
def test_a_malformed_secret_is_refused_when_the_adapter_is_built(secret: str) -> None:
    with pytest.raises(ValueError):
        adapter_for("http://127.0.0.1:1/", secret=secret)


def test_the_secret_never_shows_in_the_settings_repr() -> None:
    assert SECRET[6:] not in repr(WebhookSettings("http://x/", SECRET))


def test_the_adapter_is_registered_as_the_standard_webhook_provider() -> None:
    registry = AdapterRegistry()
    register_webhook(registry)
    settings = {"platform_webhook_url": "https://platform.example.com/hooks", "platform_webhook_secret": SECRET}
    adapter = registry.build(Channel.WEBHOOK, "standard", settings)
    assert isinstance(adapter, PlatformWebhookAdapter)
    assert (adapter.channel, adapter.provider) == (Channel.WEBHOOK, "standard")
