"""The Tencent Cloud SMS adapter against a fake API 3.0 over real HTTP: TC3 signing, request body, every mapped code."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from channels.adapters.port import AdapterRegistry, Channel, MessageClass, Outcome, Outgoing
from channels.adapters.sms import register_sms
from channels.adapters.sms_settings import SmsSettings
from channels.adapters.tencent_sms import TencentSms, template_param_set, tencent_phone
from tests.fakes.tencent_sms import FakeTencentSms


@pytest.fixture
def fake() -> Iterator[FakeTencentSms]:
    server = FakeTencentSms().start()
    yield server
    server.stop()


def settings_for(fake: FakeTencentSms, **overrides: object) -> SmsSettings:
    values: dict = dict(provider="tencent", endpoint=fake.endpoint, protocol="http", access_key_id=fake.secret_id,
                        access_key_secret=fake.secret_key, app_id="1400000001", region="ap-shanghai",
                        sign_name="投资人增长", timeout=2.0)
    values.update(overrides)
    return SmsSettings(**values)


def message(**overrides: object) -> Outgoing:
    values: dict = dict(message_id="msg-0002", channel=Channel.SMS, message_class=MessageClass.SERVICE,
                        to="13800138000", text="您的50元红包已到账", template_code="1234567",
                        params={"1": "张三", "2": "50.00"})
    values.update(overrides)
    return Outgoing(**values)


def test_an_accepted_message_is_sent_with_the_serial_number_as_provider_id(fake: FakeTencentSms) -> None:
    result = TencentSms(settings_for(fake)).send(message())

    assert (result.outcome, result.code, result.provider_id) == (Outcome.SENT, "Ok", "2640:10000")
    assert result.pause_channel is False


def test_the_request_body_and_headers_are_tencents_sendsms(fake: FakeTencentSms) -> None:
    TencentSms(settings_for(fake)).send(message())

    [body] = fake.sent
    assert body == {"PhoneNumberSet": ["+8613800138000"], "SmsSdkAppId": "1400000001", "SignName": "投资人增长",
                    "TemplateId": "1234567", "TemplateParamSet": ["张三", "50.00"], "SessionContext": "msg-0002"}
    headers = fake.received[0].headers
    assert headers["x-tc-action"] == "SendSms"
    assert headers["x-tc-version"] == "2021-01-11"
    assert headers["x-tc-region"] == "ap-shanghai"
    assert headers["authorization"].startswith("TC3-HMAC-SHA256 Credential=AKID-test/")


def test_the_region_defaults_to_guangzhou(fake: FakeTencentSms) -> None:
    TencentSms(settings_for(fake, region="")).send(message())

    assert fake.received[0].headers["x-tc-region"] == "ap-guangzhou"


def test_a_wrong_secret_key_is_refused_by_the_fake_and_fails(fake: FakeTencentSms) -> None:
    result = TencentSms(settings_for(fake, access_key_secret="wrong")).send(message())

    assert (result.outcome, result.code) == (Outcome.FAILED, "AuthFailure.SignatureFailure")
    assert fake.sent == []


def test_an_unknown_secret_id_fails(fake: FakeTencentSms) -> None:
    result = TencentSms(settings_for(fake, access_key_id="AKID-other")).send(message())

    assert (result.outcome, result.code) == (Outcome.FAILED, "AuthFailure.SecretIdNotFound")


def test_a_request_signed_with_a_stale_clock_fails_as_expired(fake: FakeTencentSms) -> None:
    stale = datetime.now(UTC) - timedelta(hours=1)

    result = TencentSms(settings_for(fake), clock=lambda: stale).send(message())

    assert (result.outcome, result.code) == (Outcome.FAILED, "AuthFailure.SignatureExpire")


@pytest.mark.parametrize(("answer", "outcome", "pause"), [
    ("LimitExceeded.PhoneNumberDailyLimit", Outcome.RETRY, False),
    ("LimitExceeded.PhoneNumberThirtySecondLimit", Outcome.RETRY, False),
    (("error", "InternalError.Timeout"), Outcome.RETRY, False),
    (("error", "RequestLimitExceeded"), Outcome.RETRY, False),
    ("InvalidParameterValue.IncorrectPhoneNumber", Outcome.UNREACHABLE, False),
    ("FailedOperation.PhoneNumberInBlacklist", Outcome.UNREACHABLE, False),
    ("FailedOperation.InsufficientBalanceInSmsPackage", Outcome.FAILED, True),
    ("FailedOperation.ContainSensitiveWord", Outcome.FAILED, False),
    (("error", "UnauthorizedOperation.SmsSdkAppIdVerifyFail"), Outcome.FAILED, False),
])
def test_each_tencent_code_maps_to_its_outcome(fake: FakeTencentSms, answer: object, outcome: Outcome,
                                               pause: bool) -> None:
    fake.queue(answer)

    result = TencentSms(settings_for(fake)).send(message())

    code = answer[1] if isinstance(answer, tuple) else answer
    assert (result.outcome, result.code, result.pause_channel) == (outcome, code, pause)
    assert result.provider_id == ""
    assert "13800138000" not in result.detail


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_server_error_is_retried(fake: FakeTencentSms, status: int) -> None:
    fake.queue(status)

    assert TencentSms(settings_for(fake)).send(message()).outcome is Outcome.RETRY


def test_a_client_error_without_a_response_fails(fake: FakeTencentSms) -> None:
    fake.queue(400)

    assert TencentSms(settings_for(fake)).send(message()).outcome is Outcome.FAILED


def test_a_provider_slower_than_the_timeout_is_retried(fake: FakeTencentSms) -> None:
    fake.delay = 1.0

    result = TencentSms(settings_for(fake, timeout=0.2)).send(message())

    assert (result.outcome, result.code) == (Outcome.RETRY, "timeout")


def test_a_refused_connection_is_retried(fake: FakeTencentSms) -> None:
    adapter = TencentSms(settings_for(fake))
    fake.stop()

    result = adapter.send(message())

    assert (result.outcome, result.code) == (Outcome.RETRY, "connection")


def test_the_registry_builds_the_adapter_from_the_environment_names(fake: FakeTencentSms) -> None:
    registry = AdapterRegistry()
    register_sms(registry)

    adapter = registry.build(Channel.SMS, "tencent", {
        "GROWTH_SMS_ENDPOINT": fake.endpoint, "GROWTH_SMS_PROTOCOL": "http",
        "GROWTH_SMS_ACCESS_KEY_ID": fake.secret_id, "GROWTH_SMS_ACCESS_KEY_SECRET": fake.secret_key,
        "GROWTH_SMS_APP_ID": "1400000001", "GROWTH_SMS_REGION": "ap-guangzhou", "GROWTH_SMS_SIGN_NAME": "投资人增长"})

    assert adapter.send(message()).outcome is Outcome.SENT
    assert fake.sent[0]["SmsSdkAppId"] == "1400000001"


def test_numbered_parameters_go_in_numeric_order_others_in_their_given_order() -> None:
    assert template_param_set({"10": "j", "2": "b", "1": "a"}) == ["a", "b", "j"]
    assert template_param_set({"name": "张三", "amount": "50"}) == ["张三", "50"]
    assert template_param_set({}) == []


@pytest.mark.parametrize(("given", "e164"), [
    ("13800138000", "+8613800138000"), ("+8613800138000", "+8613800138000"), ("8613800138000", "+8613800138000"),
    ("+85261234567", "+85261234567"), (" 138-0013-8000 ", "+8613800138000"),
])
def test_phone_numbers_are_sent_in_e164(given: str, e164: str) -> None:
    assert tencent_phone(given) == e164
