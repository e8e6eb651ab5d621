"""The console SMS provider (the embedded default): logs with a masked phone, reports SENT, remembers a few."""

from __future__ import annotations

import logging

import pytest

from channels.adapters.console_sms import ConsoleSms
from channels.adapters.port import AdapterRegistry, Channel, MessageClass, Outcome, Outgoing
from channels.adapters.sms import register_sms
from channels.adapters.sms_settings import SmsSettings, mask_phone


def message(n: int = 1, to: str = "13800138000") -> Outgoing:
    return Outgoing(message_id=f"msg-{n}", channel=Channel.SMS, message_class=MessageClass.MARKETING, to=to,
                    text="红包已到账，回T退订")


def test_a_message_is_logged_with_only_the_last_four_digits_and_without_its_wording(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="channels.sms.console")

    result = ConsoleSms(SmsSettings(sign_name="投资人增长")).send(message())

    assert (result.outcome, result.code, result.provider_id) == (Outcome.SENT, "OK", "console-msg-1")
    assert result.delivered  # the console counts as delivered: no receipt will come
    [record] = caplog.records
    assert "*******8000" in record.getMessage()
    assert "13800138000" not in record.getMessage()
    assert "红包已到账" not in record.getMessage()  # a rendered wording may carry a name: never logged
    assert "【投资人增长】" in record.getMessage()


def test_the_console_keeps_a_bounded_list_of_what_it_sent() -> None:
    console = ConsoleSms(keep=2)

    for n in range(1, 4):
        console.send(message(n))

    assert [r.message_id for r in console.sent] == ["msg-2", "msg-3"]
    assert console.sent[-1].to == ("13800138000",)
    assert console.sent[-1].text == "红包已到账，回T退订"


@pytest.mark.parametrize(("phone", "masked"), [
    ("13800138000", "*******8000"), ("+86 138 0013 8000", "*********8000"), ("1234", "****"), ("", ""),
])
def test_phones_are_masked_to_their_last_four_digits(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


def test_console_is_the_default_provider_and_is_registered() -> None:
    registry = AdapterRegistry()
    register_sms(registry)

    adapter = registry.build(Channel.SMS, SmsSettings().provider, {})

    assert isinstance(adapter, ConsoleSms)
    assert adapter.send(message()).outcome is Outcome.SENT


def test_settings_reject_an_unknown_protocol_and_an_endpoint_with_a_scheme() -> None:
    with pytest.raises(ValueError, match="http or https"):
        SmsSettings(protocol="ftp")
    with pytest.raises(ValueError, match="host\\[:port\\]"):
        SmsSettings(endpoint="http://127.0.0.1:9000").base_url("x")


def test_settings_read_the_environment_names_and_ignore_empty_values() -> None:
    settings = SmsSettings.from_mapping({"GROWTH_SMS_PROVIDER": "tencent", "GROWTH_SMS_REGION": "ap-beijing",
                                         "GROWTH_SMS_ENDPOINT": "", "app_id": "1400", "GROWTH_OTHER": "x"})

    assert (settings.provider, settings.region, settings.endpoint, settings.app_id) == (
        "tencent", "ap-beijing", "", "1400")
    assert settings.base_url("sms.tencentcloudapi.com") == "https://sms.tencentcloudapi.com"
