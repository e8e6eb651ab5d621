"""The shared WeChat access token (channels/tokens.py) on SQLite, PostgreSQL and Redis, with the fake WeChat API."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from channels.adapters.port import EXTENSION as ADAPTERS
from channels.adapters.port import AdapterRegistry, Channel, MessageClass, Outcome, Outgoing
from channels.adapters.wechat import MemoryTokenStore, TokenStore, WechatAdapter, WechatSettings
from channels.tokens import DatabaseTokenStore, FallbackTokenStore, RedisTokenStore, token_store_for
from tests.fakes.wechat import FakeWechat
from tests.integration.channels.shared_backends import KINDS, Backend, backend_fixture, run_processes

TEMPLATE = "message/template/send"
KEY = "wx_app_access_token"  # wechatpy's key: "{appid}_access_token"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from backend_fixture(request, tmp_path)


@pytest.fixture
def fake() -> Iterator[FakeWechat]:
    server = FakeWechat(appid="wx_app", secret="s3cret").start()
    yield server
    server.stop()


def wechat(api_base: str, store: TokenStore, timeout: float = 5.0) -> WechatAdapter:
    return WechatAdapter(WechatSettings(appid="wx_app", secret="s3cret", api_base=api_base, timeout=timeout), store)


def template(n: int = 1) -> Outgoing:
    return Outgoing(f"msg-{n}", Channel.WECHAT, MessageClass.SERVICE, f"oOPENID_{n}", wechat_kind="template",
                    template_id="tmpl_abc", data={"first": "王先生，红包已到账", "keyword1": "50.00"})


def send_from_threads(backend: Backend, api_base: str, threads: int, barrier: Any) -> list[str]:
    """Child process: send `threads` template messages at once, through a store of its own on the backend."""
    adapter = wechat(api_base, backend.token_store())
    barrier.wait()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(lambda n: adapter.send(template(n)), range(threads)))
    return [r.outcome.value for r in results]


# --- the store -----------------------------------------------------------------------------------------


def test_a_value_is_served_until_it_is_deleted(backend: Backend) -> None:
    store = backend.token_store()

    assert store.get(KEY) is None
    assert store.get(KEY, "none") == "none"
    store.set(KEY, "TOKEN_A", 7200)
    store.set("other", {"ticket": "T", "n": 1})
    assert store.get(KEY) == "TOKEN_A"
    assert store.get("other") == {"ticket": "T", "n": 1}  # values keep their JSON type
    store.set(KEY, "TOKEN_B", 7200)
    assert store.get(KEY) == "TOKEN_B"
    store.set(KEY, None, 7200)  # wechatpy never stores None; ignored like MemoryTokenStore
    assert store.get(KEY) == "TOKEN_B"

    store.delete(KEY)
    store.delete("never-stored")
    assert store.get(KEY) is None
    assert store.get("other") == {"ticket": "T", "n": 1}


@pytest.mark.parametrize("backend", [k for k in KINDS if k != "redis"], indirect=True)
def test_a_database_value_stops_being_served_two_minutes_before_it_expires(backend: Backend) -> None:
    now = [1_800_000_000.0]
    store = DatabaseTokenStore(backend.database(), clock=lambda: now[0])
    store.set(KEY, "TOKEN_A", 7200)

    now[0] += 7200 - 120 - 1
    assert store.get(KEY) == "TOKEN_A"
    now[0] += 1
    assert store.get(KEY) is None
    store.set(KEY, "TOKEN_B", 100)  # shorter than the margin: never served
    assert store.get(KEY) is None
    store.set("forever", "V", None)
    now[0] += 10**8
    assert store.get("forever") == "V"


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_a_redis_value_expires_two_minutes_before_the_token_does(backend: Backend) -> None:
    store = backend.token_store()

    store.set(KEY, "TOKEN_A", 7200)
    store.set("short", "TOKEN_B", 121)  # one second to live
    store.set("inside-margin", "TOKEN_C", 120)

    assert (7200 - 120 - 2) * 1000 <= backend.redis().pttl(backend.prefix + KEY) <= (7200 - 120) * 1000
    assert store.get("short") == "TOKEN_B"
    assert store.get("inside-margin") is None
    time.sleep(1.1)
    assert store.get("short") is None
    assert store.get(KEY) == "TOKEN_A"


# --- one fetch for everyone ------------------------------------------------------------------------------


def test_two_processes_of_eight_threads_with_an_empty_store_fetch_the_token_once(
    backend: Backend, fake: FakeWechat
) -> None:
    fake.delay = 0.2  # every answer is slow: the sends overlap while the token is being fetched

    results = run_processes(send_from_threads, [(backend, fake.api_base, 8)] * 2)

    assert results == [[Outcome.SENT.value] * 8] * 2
    assert len(fake.calls("token")) == 1
    [token_call] = fake.calls("token")
    assert {r.query["access_token"] for r in fake.calls(TEMPLATE)} == {token_call.answer["access_token"]}
    assert backend.token_store().get(KEY) == token_call.answer["access_token"]


def test_a_token_refused_to_several_workers_at_once_is_refreshed_once(backend: Backend, fake: FakeWechat) -> None:
    assert wechat(fake.api_base, backend.token_store()).send(template()).outcome == Outcome.SENT
    fake.expire_tokens(40001)  # WeChat no longer takes the stored token
    fake.delay = 0.2

    results = run_processes(send_from_threads, [(backend, fake.api_base, 4)] * 2)

    assert results == [[Outcome.SENT.value] * 4] * 2
    first, refreshed = fake.calls("token")  # the first fetch and ONE refresh
    refused = [r for r in fake.calls(TEMPLATE) if r.answer["errcode"] == 40001]
    assert len(refused) >= 2  # several workers saw the refusal...
    assert all(r.query["access_token"] == first.answer["access_token"] for r in refused)
    assert backend.token_store().get(KEY) == refreshed.answer["access_token"]  # ...and all use the one new token


def test_threads_of_one_process_sharing_a_store_fetch_once(backend: Backend, fake: FakeWechat) -> None:
    store = backend.token_store()
    adapters = [wechat(fake.api_base, store), wechat(fake.api_base, store)]
    fake.delay = 0.2

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda n: adapters[n % 2].send(template(n)), range(6)))

    assert [r.outcome for r in results] == [Outcome.SENT] * 6
    assert len(fake.calls("token")) == 1


@pytest.mark.parametrize("backend", [k for k in KINDS if k == "postgresql"], indirect=True)  # SQLite: 30 s busy wait
def test_a_refresh_lock_held_too_long_elsewhere_times_out(backend: Backend) -> None:
    holder, waiter = backend.token_store(), backend.token_store()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.refresh_lock(KEY, 0.1):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    started = time.monotonic()
    with pytest.raises(TimeoutError), waiter.refresh_lock(KEY, 0.1):
        pass
    waited = time.monotonic() - started
    release.set()
    thread.join()

    assert waited < 5
    with waiter.refresh_lock(KEY, 0.1):  # free again once its holder let go
        pass


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_a_redis_refresh_lock_whose_holder_died_expires_by_itself(backend: Backend) -> None:
    holder = backend.redis().lock(backend.prefix + KEY + ":refresh", timeout=2 * 0.1 + 1)
    assert holder.acquire()  # and never released: its process died
    started = time.monotonic()

    with backend.token_store().refresh_lock(KEY, 0.1):
        waited = time.monotonic() - started

    assert 0.5 < waited < 3


def test_a_send_waiting_too_long_for_the_refresh_lock_is_retried_later(fake: FakeWechat) -> None:
    store = MemoryTokenStore()
    adapter = wechat(fake.api_base, store, timeout=0.1)

    # Someone else is fetching, and never finishes.
    with store.refresh_lock(KEY), ThreadPoolExecutor(max_workers=1) as pool:
        result = pool.submit(adapter.send, template()).result(timeout=10)

    assert result.outcome == Outcome.RETRY
    assert "refresh lock" in result.detail
    assert fake.calls("token") == [] and fake.calls(TEMPLATE) == []


def test_the_holder_of_the_refresh_lock_reads_and_writes_through_it(backend: Backend) -> None:
    store = backend.token_store()

    with store.refresh_lock(KEY):
        assert store.get(KEY) is None
        store.set(KEY, "TOKEN_A", 7200)
        assert store.get(KEY) == "TOKEN_A"
        with store.refresh_lock(KEY):  # re-entered by its holder
            pass

    assert backend.token_store().get(KEY) == "TOKEN_A"


def test_a_token_never_appears_in_the_logs(
    backend: Backend, fake: FakeWechat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = backend.token_store()
    adapter = wechat(fake.api_base, store)

    assert adapter.send(template(1)).outcome == Outcome.SENT
    fake.expire_tokens(40001)
    assert adapter.send(template(2)).outcome == Outcome.SENT  # refreshed on the way
    fake.expire_tokens(42001)
    assert adapter.send(template(3)).outcome == Outcome.SENT

    tokens = list(fake.tokens)
    assert len(tokens) == 3
    logged = caplog.text
    assert "access_token=***" in logged  # urllib3 logged the requests, masked
    assert not any(token in logged for token in tokens)


# --- the app's store -------------------------------------------------------------------------------------


@pytest.mark.parametrize("app_config", [{"REDIS_URL": None}])
def test_without_redis_the_app_keeps_the_token_in_the_database(app: Flask, db_kind: str, fake: FakeWechat) -> None:
    store = token_store_for(app)
    registry: AdapterRegistry = app.extensions[ADAPTERS]
    adapter = registry.build(Channel.WECHAT, "wechat", {
        "GROWTH_WECHAT_APPID": "wx_app", "GROWTH_WECHAT_SECRET": "s3cret", "GROWTH_WECHAT_API_BASE": fake.api_base,
    })

    assert adapter.send(template()).outcome == Outcome.SENT

    assert isinstance(store, DatabaseTokenStore)
    assert token_store_for(app) is store
    assert store.get(KEY) == fake.calls("token")[0].answer["access_token"]


@pytest.mark.parametrize("app_config", [{"REDIS_URL": "redis://127.0.0.1:6379/0"}])
def test_with_redis_the_app_keeps_the_token_in_redis(app: Flask, db_kind: str) -> None:
    store = token_store_for(app)

    assert isinstance(store, FallbackTokenStore)
    assert isinstance(store.primary, RedisTokenStore)
    assert isinstance(store.fallback, DatabaseTokenStore)


@pytest.mark.parametrize("app_config", [{"REDIS_URL": UNREACHABLE_REDIS}])
def test_an_unreachable_redis_keeps_the_token_in_the_database_with_one_warning(
    app: Flask, db_kind: str, fake: FakeWechat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="channels")
    registry: AdapterRegistry = app.extensions[ADAPTERS]
    adapter = registry.build(Channel.WECHAT, "wechat", {
        "appid": "wx_app", "secret": "s3cret", "api_base": fake.api_base,
    })

    results = [adapter.send(template(n)) for n in range(3)]

    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert len(fake.calls("token")) == 1
    store = token_store_for(app)
    assert isinstance(store, FallbackTokenStore)
    assert store.fallback.get(KEY) == fake.calls("token")[0].answer["access_token"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "WeChat tokens go through the database" in warnings[0]
