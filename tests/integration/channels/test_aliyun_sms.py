"""The Aliyun SMS adapter against a fake dysmsapi over real HTTP: request format, signature, every mapped code."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from channels.adapters.aliyun_sms import AliyunSms, canonical_query, sign
from channels.adapters.port import AdapterRegistry, Channel, MessageClass, Outcome, Outgoing
from channels.adapters.sms import register_sms
from channels.adapters.sms_settings import SmsSettings
from tests.fakes.aliyun_sms import FakeAliyunSms


@pytest.fixture
def fake() -> Iterator[FakeAliyunSms]:
    server = FakeAliyunSms().start()
    yield server
    server.stop()


def settings_for(fake: FakeAliyunSms, **overrides: object) -> SmsSettings:
    values: dict = dict(provider="aliyun", endpoint=fake.endpoint, protocol="http", access_key_id=fake.access_key_id,
                        access_key_secret=fake.secret, sign_name="投资人增长", timeout=2.0)
    values.update(overrides)
    return SmsSettings(**values)


def message(**overrides: object) -> Outgoing:
    values: dict = dict(message_id="msg-0001", channel=Channel.SMS, message_class=MessageClass.MARKETING,
                        to="13800138000", text="张三您好，50元投资红包已到账。回T退订", template_code="SMS_2026120101",
                        params={"name": "张三", "amount": "50.00"})
    values.update(overrides)
    return Outgoing(**values)


def test_an_accepted_message_is_sent_with_the_bizid_as_provider_id(fake: FakeAliyunSms) -> None:
    result = AliyunSms(settings_for(fake)).send(message())

    assert result.outcome is Outcome.SENT
    assert result.code == "OK"
    assert result.provider_id == "100000^0"
    assert result.pause_channel is False


def test_the_request_carries_the_sendsms_parameters_and_the_rpc_common_parameters(fake: FakeAliyunSms) -> None:
    AliyunSms(settings_for(fake)).send(message(to="+8613800138000"))

    [params] = fake.sent
    assert params["Action"] == "SendSms"
    assert params["Version"] == "2017-05-25"
    assert params["Format"] == "JSON"
    assert params["SignatureMethod"] == "HMAC-SHA1"
    assert params["SignatureVersion"] == "1.0"
    assert params["AccessKeyId"] == "LTAI-test-key"
    assert params["PhoneNumbers"] == "13800138000"
    assert params["SignName"] == "投资人增长"
    assert params["TemplateCode"] == "SMS_2026120101"
    assert json.loads(params["TemplateParam"]) == {"name": "张三", "amount": "50.00"}
    assert params["OutId"] == "msg-0001"
    assert fake.received[0].method == "POST"


def test_a_template_without_parameters_is_sent_without_templateparam(fake: FakeAliyunSms) -> None:
    result = AliyunSms(settings_for(fake)).send(message(params={}))

    assert result.outcome is Outcome.SENT
    assert "TemplateParam" not in fake.sent[0]


def test_every_call_uses_a_fresh_signature_nonce(fake: FakeAliyunSms) -> None:
    adapter = AliyunSms(settings_for(fake))

    results = [adapter.send(message()) for _ in range(3)]

    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert len({p["SignatureNonce"] for p in fake.sent}) == 3


def test_a_wrong_secret_is_refused_by_the_fake_and_fails_without_leaking_the_number(fake: FakeAliyunSms) -> None:
    result = AliyunSms(settings_for(fake, access_key_secret="not-the-secret")).send(message())

    assert result.outcome is Outcome.FAILED
    assert result.code == "SignatureDoesNotMatch"
    assert fake.sent == []
    assert "13800138000" not in result.detail
    assert "8000" in result.detail


def test_an_unknown_access_key_fails(fake: FakeAliyunSms) -> None:
    result = AliyunSms(settings_for(fake, access_key_id="LTAI-other")).send(message())

    assert (result.outcome, result.code) == (Outcome.FAILED, "InvalidAccessKeyId.NotFound")


@pytest.mark.parametrize(("code", "outcome", "pause"), [
    ("isv.BUSINESS_LIMIT_CONTROL", Outcome.RETRY, False),
    ("isp.SYSTEM_ERROR", Outcome.RETRY, False),
    ("isp.RAM_PERMISSION_DENY", Outcome.RETRY, False),
    ("Throttling.User", Outcome.RETRY, False),
    ("isv.MOBILE_NUMBER_ILLEGAL", Outcome.UNREACHABLE, False),
    ("isv.AMOUNT_NOT_ENOUGH", Outcome.FAILED, True),
    ("isv.BLACK_KEY_CONTROL_LIMIT", Outcome.FAILED, False),
    ("isv.SMS_TEMPLATE_ILLEGAL", Outcome.FAILED, False),
])
def test_each_aliyun_code_maps_to_its_outcome(fake: FakeAliyunSms, code: str, outcome: Outcome, pause: bool) -> None:
    fake.queue(code)

    result = AliyunSms(settings_for(fake)).send(message())

    assert (result.outcome, result.code, result.pause_channel) == (outcome, code, pause)
    assert result.provider_id == ""
    assert result.detail


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_without_a_code_is_retried(fake: FakeAliyunSms, status: int) -> None:
    fake.queue(status)

    result = AliyunSms(settings_for(fake)).send(message())

    assert (result.outcome, result.code) == (Outcome.RETRY, f"HTTP {status}")


def test_a_client_error_without_a_code_fails(fake: FakeAliyunSms) -> None:
    fake.queue(404)

    assert AliyunSms(settings_for(fake)).send(message()).outcome is Outcome.FAILED


def test_a_provider_slower_than_the_timeout_is_retried(fake: FakeAliyunSms) -> None:
    fake.delay = 1.0

    result = AliyunSms(settings_for(fake, timeout=0.2)).send(message())

    assert (result.outcome, result.code) == (Outcome.RETRY, "timeout")


def test_a_refused_connection_is_retried(fake: FakeAliyunSms) -> None:
    adapter = AliyunSms(settings_for(fake))
    fake.stop()

    result = adapter.send(message())

    assert (result.outcome, result.code) == (Outcome.RETRY, "connection")


def test_the_registry_builds_the_adapter_from_the_environment_names(fake: FakeAliyunSms) -> None:
    registry = AdapterRegistry()
    register_sms(registry)

    adapter = registry.build(Channel.SMS, "aliyun", {
        "GROWTH_SMS_PROVIDER": "aliyun", "GROWTH_SMS_ENDPOINT": fake.endpoint, "GROWTH_SMS_PROTOCOL": "http",
        "GROWTH_SMS_ACCESS_KEY_ID": fake.access_key_id, "GROWTH_SMS_ACCESS_KEY_SECRET": fake.secret,
        "GROWTH_SMS_SIGN_NAME": "投资人增长"})

    assert adapter.send(message()).outcome is Outcome.SENT
    assert registry.providers(Channel.SMS) == ["aliyun", "console", "tencent"]


def test_the_signature_matches_aliyuns_documented_example() -> None:
    # Aliyun's RPC signature documentation example (DescribeRegions, secret "testsecret").
    params = {"AccessKeyId": "testid", "Action": "DescribeRegions", "Format": "XML",
              "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
              "SignatureVersion": "1.0", "Timestamp": "2016-02-23T12:46:24Z", "Version": "2014-05-26"}

    assert canonical_query(params).startswith("AccessKeyId=testid&Action=DescribeRegions&Format=XML")
    assert sign("GET", params, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_values_are_encoded_the_rfc_3986_way() -> None:
    assert canonical_query({"b": "a b*~", "a": "中"}) == "a=%E4%B8%AD&b=a%20b%2A~"


class KeepAliveServer:
    """A bare HTTP/1.1 server on 127.0.0.1 answering Aliyun's OK; counts connections and requests.

    With `drop_idle`, it closes each connection right after answering, while the client still holds it
    as kept alive: what a provider's load balancer does to idle connections.
    """

    def __init__(self, *, drop_idle: bool) -> None:
        self.drop_idle = drop_idle
        self.connections = 0
        self.requests: list[bytes] = []
        self.answered = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
                self.requests.append(reader.read(length))
                body = json.dumps({"Code": "OK", "Message": "OK", "BizId": f"{len(self.requests)}^0",
                                   "RequestId": "R"}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                self.answered.set()
                if self.drop_idle:
                    conn.shutdown(socket.SHUT_RDWR)
                    return

    def close(self) -> None:
        self._listener.close()


def keep_alive_settings(server: KeepAliveServer) -> SmsSettings:
    return SmsSettings(provider="aliyun", endpoint=server.endpoint, protocol="http", access_key_id="k",
                       access_key_secret="s", sign_name="投资人增长", timeout=2.0)


def test_sends_from_one_thread_share_one_kept_alive_connection() -> None:
    server = KeepAliveServer(drop_idle=False)
    adapter = AliyunSms(keep_alive_settings(server))
    try:
        results = [adapter.send(message(message_id=f"m{i}")) for i in range(3)]
    finally:
        adapter.close()
        server.close()

    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert (server.connections, len(server.requests)) == (1, 3)


def test_a_connection_the_server_dropped_while_idle_is_opened_again_not_sent_into() -> None:
    server = KeepAliveServer(drop_idle=True)
    adapter = AliyunSms(keep_alive_settings(server))
    try:
        first = adapter.send(message(message_id="m1"))
        time.sleep(0.2)  # the server has closed the connection the adapter keeps
        second = adapter.send(message(message_id="m2"))
    finally:
        adapter.close()
        server.close()

    assert (first.outcome, second.outcome) == (Outcome.SENT, Outcome.SENT)
    assert (server.connections, len(server.requests)) == (2, 2)


def test_the_form_body_is_the_canonical_query_with_the_signature_appended(fake: FakeAliyunSms) -> None:
    adapter = AliyunSms(settings_for(fake), nonce=lambda: "nonce-1",
                        clock=lambda: datetime(2026, 12, 3, 8, 0, tzinfo=UTC))

    body = adapter.request_body(message(params={"name": "张 三", "amount": "50.00"})).decode()

    params = adapter.request_params(message(params={"name": "张 三", "amount": "50.00"}))
    signature = params.pop("Signature")
    assert body == f"{canonical_query(params)}&Signature={quote(signature, safe='-_.~')}"
    assert params["TemplateParam"] == '{"name":"张 三","amount":"50.00"}'
    assert adapter.send(message(params={"name": "张 三", "amount": "50.00"})).outcome is Outcome.SENT
