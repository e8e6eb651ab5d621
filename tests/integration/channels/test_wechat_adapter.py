"""The WeChat adapter through the real wechatpy client against a fake WeChat API on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from channels.adapters.port import AdapterRegistry, Channel, MessageClass, Outcome, Outgoing
from channels.adapters.wechat import (
    DEFAULT_API_BASE,
    MemoryTokenStore,
    WechatAdapter,
    WechatSettings,
    register_wechat,
)
from tests.fakes.wechat import FakeWechat

TEMPLATE = "message/template/send"
MASS = "message/mass/send"


@pytest.fixture
def fake() -> Iterator[FakeWechat]:
    server = FakeWechat(appid="wx_app", secret="s3cret").start()
    yield server
    server.stop()


def settings(fake: FakeWechat, **overrides: Any) -> WechatSettings:
    values: dict[str, Any] = {"appid": "wx_app", "secret": "s3cret", "api_base": fake.api_base, "timeout": 2.0}
    values.update(overrides)
    return WechatSettings(**values)


def adapter(fake: FakeWechat, store: MemoryTokenStore | None = None, **overrides: Any) -> WechatAdapter:
    return WechatAdapter(settings(fake, **overrides), store if store is not None else MemoryTokenStore())


def template(to: str = "oOPENID_1", **overrides: Any) -> Outgoing:
    values: dict[str, Any] = {
        "wechat_kind": "template",
        "template_id": "tmpl_abc",
        "data": {"first": {"value": "王先生，红包已到账"}, "keyword1": {"value": "50.00"}},
        "url": "https://growth.example.com/r/1",
    }
    values.update(overrides)
    return Outgoing("msg-1", Channel.WECHAT, MessageClass.SERVICE, to, **values)


def mass(to: tuple[str, ...] = ("oOPENID_1", "oOPENID_2"), message_id: str = "msg-2", **overrides: Any) -> Outgoing:
    values: dict[str, Any] = {"wechat_kind": "mass", "text": "12月加息活动开始了。投资有风险，理财需谨慎"}
    values.update(overrides)
    return Outgoing(message_id, Channel.WECHAT, MessageClass.MARKETING, to, **values)


def test_a_template_message_is_sent_to_one_openid_with_a_fetched_token(fake: FakeWechat) -> None:
    result = adapter(fake).send(template())

    assert result.outcome == Outcome.SENT
    [token_call] = fake.calls("token")
    assert token_call.method == "GET"
    assert token_call.query == {"grant_type": "client_credential", "appid": "wx_app", "secret": "s3cret"}
    [call] = fake.calls(TEMPLATE)
    assert call.query["access_token"] == token_call.answer["access_token"]
    assert call.body == {
        "touser": "oOPENID_1",
        "template_id": "tmpl_abc",
        "url": "https://growth.example.com/r/1",
        "data": {"first": {"value": "王先生，红包已到账"}, "keyword1": {"value": "50.00"}},
    }
    assert result.provider_id == str(call.answer["msgid"])


def test_rendered_plain_template_values_are_sent_as_wechat_keyword_objects(fake: FakeWechat) -> None:
    data = {"first": "王先生，红包已到账", "keyword1": "50.00", "remark": {"value": "谢谢", "color": "#173177"}}

    assert adapter(fake).send(template(data=data)).outcome == Outcome.SENT

    assert fake.calls(TEMPLATE)[0].body["data"] == {
        "first": {"value": "王先生，红包已到账"},
        "keyword1": {"value": "50.00"},
        "remark": {"value": "谢谢", "color": "#173177"},
    }


def test_a_template_message_without_a_link_sends_no_url(fake: FakeWechat) -> None:
    assert adapter(fake).send(template(url="")).outcome == Outcome.SENT
    assert "url" not in fake.calls(TEMPLATE)[0].body


def test_a_mass_send_to_several_openids_is_sent_when_wechat_accepts_the_job(fake: FakeWechat) -> None:
    result = adapter(fake).send(mass(to=("oA", "oB", "oA", "oC")))

    assert result.outcome == Outcome.SENT
    [call] = fake.calls(MASS)
    assert call.body["touser"] == ["oA", "oB", "oC"]
    assert call.body["msgtype"] == "text"
    assert call.body["text"] == {"content": "12月加息活动开始了。投资有风险，理财需谨慎"}
    assert call.body["clientmsgid"] == "msg-2"  # our message id: WeChat refuses a second job with it
    assert result.provider_id == str(call.answer["msg_id"])


def test_a_mass_send_wechat_already_accepted_under_our_message_id_counts_as_sent(fake: FakeWechat) -> None:
    fake.fail(MASS, 45065)

    result = adapter(fake).send(mass())

    assert (result.outcome, result.provider_id, result.code) == (Outcome.SENT, "1000", "45065")


def test_a_mass_send_repeated_after_a_timeout_finds_the_job_wechat_already_accepted(fake: FakeWechat) -> None:
    wechat = adapter(fake, timeout=0.3)
    wechat.send(template())  # the token is there
    fake.delay = 1.0

    assert wechat.send(mass()).outcome == Outcome.RETRY  # WeChat accepted the job, the answer came too late
    fake.delay = 0.0
    result = wechat.send(mass())

    accepted, repeated = fake.calls(MASS)
    assert (result.outcome, result.code) == (Outcome.SENT, "45065")
    assert result.provider_id == str(accepted.answer["msg_id"]) == str(repeated.answer["msg_id"])


@pytest.mark.parametrize(
    "message",
    [
        mass(to=("oA",)),
        mass(to=("oA", "oA")),
        mass(to="oA"),
        mass(text=""),
        template(to=("oA", "oB")),
        template(template_id=""),
        template(wechat_kind="news"),
        Outgoing("m", Channel.SMS, MessageClass.SERVICE, "oA", wechat_kind="template", template_id="t"),
    ],
    ids=[
        "one-openid",
        "one-openid-twice",
        "mass-to-a-string",
        "mass-without-text",
        "template-to-a-list",
        "template-without-id",
        "unknown-kind",
        "not-wechat",
    ],
)
def test_a_message_wechat_cannot_take_fails_without_a_call(fake: FakeWechat, message: Outgoing) -> None:
    result = adapter(fake).send(message)

    assert result.outcome == Outcome.FAILED
    assert fake.received == []


@pytest.mark.parametrize("errcode", [42001, 40001, 40014])
@pytest.mark.parametrize("kind", ["template", "mass"])
def test_a_refused_token_is_refreshed_once_and_the_call_repeated_in_the_same_send(
    fake: FakeWechat, errcode: int, kind: str
) -> None:
    wechat = adapter(fake)
    endpoint = TEMPLATE if kind == "template" else MASS
    assert wechat.send(template() if kind == "template" else mass(message_id="first")).outcome == Outcome.SENT
    fake.expire_tokens(errcode)

    result = wechat.send(template() if kind == "template" else mass(message_id="second"))

    assert result.outcome == Outcome.SENT
    first, second = fake.calls("token")
    _, refused, repeated = fake.calls(endpoint)
    assert refused.query["access_token"] == first.answer["access_token"]
    assert refused.answer["errcode"] == errcode
    assert repeated.query["access_token"] == second.answer["access_token"]
    assert repeated.answer["errcode"] == 0


@pytest.mark.parametrize("errcode", [42001, 40001, 40014])
def test_a_token_refused_again_after_the_refresh_is_retried_later_without_a_second_refresh(
    fake: FakeWechat, errcode: int
) -> None:
    fake.fail(TEMPLATE, errcode, errcode, errcode)

    result = adapter(fake).send(template())

    assert (result.outcome, result.code) == (Outcome.RETRY, str(errcode))
    assert len(fake.calls("token")) == 2  # the first token and one refresh
    assert len(fake.calls(TEMPLATE)) == 2


@pytest.mark.parametrize(
    ("kind", "errcode", "outcome"),
    [
        ("template", 45009, Outcome.RETRY),
        ("template", -1, Outcome.RETRY),
        ("template", 43004, Outcome.UNREACHABLE),
        ("template", 40003, Outcome.UNREACHABLE),
        ("template", 40037, Outcome.FAILED),  # invalid template_id
        ("template", 47001, Outcome.FAILED),  # data format error
        ("mass", 45009, Outcome.RETRY),
        ("mass", -1, Outcome.RETRY),
        ("mass", 40003, Outcome.FAILED),  # a bad openid in a mass list fails the job, not one investor
        ("mass", 43004, Outcome.FAILED),
        ("mass", 45028, Outcome.FAILED),  # no mass-send quota left
    ],
)
def test_each_wechat_errcode_maps_to_its_outcome(fake: FakeWechat, kind: str, errcode: int, outcome: Outcome) -> None:
    fake.fail(TEMPLATE if kind == "template" else MASS, errcode)

    result = adapter(fake).send(template() if kind == "template" else mass())

    assert (result.outcome, result.code) == (outcome, str(errcode))
    assert not result.pause_channel
    assert len(fake.calls("token")) == 1  # only token errcodes refresh
    assert len(fake.received) == 2  # and nothing is repeated within the send


@pytest.mark.parametrize("status", [500, 502, 404])
def test_an_http_error_status_is_retried_later(fake: FakeWechat, status: int) -> None:
    wechat = adapter(fake)
    assert wechat.send(template()).outcome == Outcome.SENT
    fake.http_status.append(status)

    result = wechat.send(template())

    assert (result.outcome, result.code) == (Outcome.RETRY, str(status))


def test_a_timeout_is_retried_later(fake: FakeWechat) -> None:
    wechat = adapter(fake, timeout=0.3)
    assert wechat.send(template()).outcome == Outcome.SENT
    fake.delay = 1.0

    assert wechat.send(template()).outcome == Outcome.RETRY


def test_a_token_request_that_times_out_is_retried_later(fake: FakeWechat) -> None:
    fake.delay = 1.0

    result = adapter(fake, timeout=0.3).send(template())

    assert result.outcome == Outcome.RETRY
    assert fake.calls(TEMPLATE) == []


def test_an_unreachable_api_is_retried_later() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    wechat = WechatAdapter(
        WechatSettings(appid="wx_app", secret="s3cret", api_base=f"http://127.0.0.1:{port}/cgi-bin/", timeout=1),
        MemoryTokenStore(),
    )

    assert wechat.send(template()).outcome == Outcome.RETRY
    assert wechat.send(mass()).outcome == Outcome.RETRY


@pytest.mark.parametrize(("secret", "appid", "errcode"), [("wrong", "wx_app", 40125), ("s3cret", "wx_other", 40013)])
def test_a_refused_appid_or_secret_pauses_the_channel_and_keeps_the_message(
    fake: FakeWechat, secret: str, appid: str, errcode: int
) -> None:
    result = adapter(fake, secret=secret, appid=appid).send(template())

    assert (result.outcome, result.code, result.pause_channel) == (Outcome.RETRY, str(errcode), True)
    assert fake.calls(TEMPLATE) == []


def test_two_adapters_sharing_a_token_store_fetch_the_token_once(fake: FakeWechat) -> None:
    store = MemoryTokenStore()
    one, two = adapter(fake, store), adapter(fake, store)

    assert one.send(template()).outcome == Outcome.SENT
    assert two.send(mass()).outcome == Outcome.SENT
    assert two.send(template()).outcome == Outcome.SENT

    [token_call] = fake.calls("token")
    token = token_call.answer["access_token"]
    assert [r.query["access_token"] for r in fake.received if r.endpoint != "token"] == [token, token, token]


def test_concurrent_sends_finding_no_token_fetch_it_once(fake: FakeWechat) -> None:
    store = MemoryTokenStore()
    adapters = [adapter(fake, store), adapter(fake, store)]
    fake.delay = 0.2  # every answer is slow, so the sends overlap while the token is being fetched

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda i: adapters[i % 2].send(template()), range(6)))

    assert [r.outcome for r in results] == [Outcome.SENT] * 6
    assert len(fake.calls("token")) == 1


def test_adapters_with_their_own_stores_fetch_a_token_each(fake: FakeWechat) -> None:
    adapter(fake).send(template())
    adapter(fake).send(template())

    assert len(fake.calls("token")) == 2


def test_a_token_refreshed_by_one_adapter_serves_the_others_on_the_same_store(fake: FakeWechat) -> None:
    store = MemoryTokenStore()
    one, two = adapter(fake, store), adapter(fake, store)
    one.send(template())
    fake.expire_tokens(42001)

    assert one.send(template()).outcome == Outcome.SENT
    assert two.send(template()).outcome == Outcome.SENT

    assert len(fake.calls("token")) == 2
    assert fake.calls(TEMPLATE)[-1].answer["errcode"] == 0  # the second adapter used the refreshed token


def test_a_token_expired_in_the_store_is_fetched_again_before_the_call(fake: FakeWechat) -> None:
    now = [1000.0]
    store = MemoryTokenStore(margin=120, clock=lambda: now[0])
    wechat = adapter(fake, store)
    wechat.send(template())
    now[0] += 7200 - 120

    assert wechat.send(template()).outcome == Outcome.SENT

    first, second = fake.calls("token")
    assert [r.query["access_token"] for r in fake.calls(TEMPLATE)] == [
        first.answer["access_token"],
        second.answer["access_token"],
    ]
    assert all(r.answer["errcode"] == 0 for r in fake.calls(TEMPLATE))  # no refused call on the way


def test_every_call_the_token_included_goes_to_the_configured_api_base(
    fake: FakeWechat, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def recording_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        resolved.append(host)
        if host != "127.0.0.1":
            raise OSError(f"test: no traffic to {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording_getaddrinfo)
    wechat = adapter(fake)

    assert wechat.send(template()).outcome == Outcome.SENT
    fake.expire_tokens(42001)
    assert wechat.send(mass()).outcome == Outcome.SENT

    assert set(resolved) == {"127.0.0.1"}
    assert [r.endpoint for r in fake.received] == ["token", TEMPLATE, MASS, "token", MASS]


def test_the_default_api_base_is_wechats_own() -> None:
    assert WechatSettings(appid="a", secret="b").base == DEFAULT_API_BASE == "https://api.weixin.qq.com/cgi-bin/"
    assert WechatSettings(appid="a", secret="b", api_base="http://127.0.0.1:9/x").base == "http://127.0.0.1:9/x/"


def test_the_registry_builds_adapters_from_the_environments_names_sharing_one_token(fake: FakeWechat) -> None:
    registry = AdapterRegistry()
    register_wechat(registry)
    env = {
        "GROWTH_WECHAT_APPID": "wx_app",
        "GROWTH_WECHAT_SECRET": "s3cret",
        "GROWTH_WECHAT_API_BASE": fake.api_base,
        "GROWTH_WECHAT_TOKEN": "cb-token",
        "GROWTH_SMS_PROVIDER": "aliyun",
    }

    one = registry.build(Channel.WECHAT, "wechat", env)
    two = registry.build(Channel.WECHAT, "wechat", env)

    assert registry.providers(Channel.WECHAT) == ["wechat"]
    assert isinstance(one, WechatAdapter)
    assert one.settings.token == "cb-token"
    assert one.send(template()).outcome == two.send(template()).outcome == Outcome.SENT
    assert len(fake.calls("token")) == 1


def test_an_adapter_without_appid_or_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="GROWTH_WECHAT_APPID"):
        WechatAdapter(WechatSettings(appid="wx_app"), MemoryTokenStore())
