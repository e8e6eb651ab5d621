"""WeChat official-account adapter (spec §1): template messages (service) and mass sends (marketing).

Every call goes through the real `wechatpy` client, pointed at `GROWTH_WECHAT_API_BASE` — the access
token request included (wechatpy itself fetches the token from a fixed public address, so the client
below fetches it from the configured base instead). The access token lives in a `TokenStore`, which is
wechatpy's `session` storage, so every adapter (and every worker) sharing one store shares one token,
and only one of them at a time fetches a new one (`TokenStore.refresh_lock`; the shared stores are in
`channels/tokens.py`). The token travels in the query string: the adapter masks it in urllib3's debug log.

Errcode mapping: 40001/42001/40014 refresh the token once and repeat the call in the same send (a
second refusal is `retry`); 45009 and -1 are `retry`; for template messages 43004 (not following) and
40003 (bad openid) are `unreachable`; any other errcode is `failed`; HTTP errors, connection errors and
timeouts are `retry`. wechatpy's own unbounded token retry is switched off (`auto_retry=False`).

Imports nothing of ours but the port.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from channels.adapters.port import AdapterRegistry, Channel, Outcome, Outgoing, SendResult

_T = TypeVar("_T")

PREFIX = "GROWTH_WECHAT_"
DEFAULT_API_BASE = "https://api.weixin.qq.com/cgi-bin/"
SHANGHAI = ZoneInfo("Asia/Shanghai")
MASS_SENDS_PER_MONTH = 4  # a service account's mass-send quota per calendar month

TOKEN_CODES = frozenset({40001, 42001, 40014})  # invalid credential, token expired, invalid token
RETRY_CODES = frozenset({45009, -1})  # API frequency limit, system busy
UNREACHABLE_TEMPLATE_CODES = frozenset({43004, 40003})  # not following, invalid openid
# A token request refused for the account's configuration: no message can go until someone fixes it.
CONFIG_CODES = frozenset({40013, 40125, 40164, 41002, 41004})  # bad appid, bad secret, IP not whitelisted, …
DUPLICATE_MASS_CODE = 45065  # the same clientmsgid was already accepted (our message id): the job exists


@dataclass(frozen=True, slots=True)
class WechatSettings:
    """The official account's configuration (spec §1 `GROWTH_WECHAT_*`, without the prefix, lower-cased)."""

    appid: str = ""
    secret: str = ""
    token: str = ""  # server callback verification token
    aes_key: str = ""  # callback EncodingAESKey (43 characters), empty = plaintext callbacks
    api_base: str = DEFAULT_API_BASE  # every API call, the token included, goes here
    timeout: float = 10.0  # seconds for one HTTP call (connect + read)

    def __post_init__(self) -> None:
        if not self.api_base.startswith(("http://", "https://")):
            raise ValueError("GROWTH_WECHAT_API_BASE must be an http(s) URL")
        if self.timeout <= 0:
            raise ValueError("the WeChat timeout must be positive")

    @property
    def base(self) -> str:
        """The API base with exactly one trailing slash (endpoints are appended to it)."""
        return self.api_base.rstrip("/") + "/"

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> WechatSettings:
        """Build from field names (`appid`) or the environment's names (`GROWTH_WECHAT_APPID`); others are ignored."""
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in settings.items():
            name = key[len(PREFIX) :].lower() if key.upper().startswith(PREFIX) else key
            if name in names and value is not None and value != "":
                values[name] = float(value) if name == "timeout" else str(value)
        return cls(**values)


class TokenStore(Protocol):
    """Where the access token lives, shared by every worker; wechatpy's `session` storage interface.

    `get` returns None once the value has expired; `set` takes the lifetime in seconds (`ttl`);
    `refresh_lock` lets one fetcher at a time (in every process sharing the store) get a new token.
    """

    def get(self, key: str, default: Any = None) -> Any:
        """Return the live value for the key, or `default`."""
        ...

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        """Store a value for `ttl` seconds (None = until deleted)."""
        ...

    def delete(self, key: str) -> None:
        """Forget the key."""
        ...

    def refresh_lock(self, key: str, timeout: float = ...) -> AbstractContextManager[None]:
        """Hold the key's refresh lock for the block, with a fetch taking at most about `timeout` seconds.

        Raises TimeoutError when another holder keeps it too long; re-entrant for its holder. Whoever
        gets it must read the store again before fetching: the previous holder may have just stored a
        fresh token.
        """
        ...


class MemoryTokenStore:
    """A thread-safe in-process `TokenStore`; a value stops being served `margin` seconds before it expires."""

    def __init__(self, margin: float = 120.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: dict[str, tuple[Any, float | None]] = {}
        self._lock = threading.Lock()
        self._margin = margin
        self._clock = clock
        self._refresh = threading.RLock()  # re-entrant for its holder, like the shared stores' locks

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return default
            value, expires_at = entry
            if expires_at is not None and self._clock() >= expires_at:
                del self._data[key]
                return default
            return value

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        if value is None:
            return
        with self._lock:
            expires_at = None if ttl is None else self._clock() + max(0.0, float(ttl) - self._margin)
            self._data[key] = (value, expires_at)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    @contextmanager
    def refresh_lock(self, key: str, timeout: float = 30.0) -> Iterator[None]:
        """Hold this store's refresh lock (one fetch at a time among the threads sharing it); TimeoutError if busy."""
        if not self._refresh.acquire(timeout=2 * timeout + 1):
            raise TimeoutError(f"the refresh lock of {key!r} is busy")
        try:
            yield
        finally:
            self._refresh.release()


_TOKEN_IN_URL = re.compile(r"(access_token=)[^&\s\"']+")


class _MaskAccessTokens(logging.Filter):
    """Mask `access_token=…` in log records (urllib3 logs every request's URL at debug level)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "access_token=" in message:
            record.msg, record.args = _TOKEN_IN_URL.sub(r"\1***", message), ()
        return True


def _mask_tokens_in_http_logs() -> None:
    logger = logging.getLogger("urllib3.connectionpool")  # filters do not reach child loggers: this one logs
    if not any(isinstance(f, _MaskAccessTokens) for f in logger.filters):
        logger.addFilter(_MaskAccessTokens())


class TokenFetchError(WeChatClientException):
    """The token request itself was refused or failed (errcode None for HTTP/connection trouble)."""


class _Client(WeChatClient):
    """wechatpy's client with the token fetched from the configured API base, with a timeout."""

    def __init__(self, settings: WechatSettings, store: TokenStore) -> None:
        super().__init__(settings.appid, settings.secret, session=store, timeout=settings.timeout, auto_retry=False)
        self.API_BASE_URL = settings.base  # read by wechatpy for every endpoint

    def fetch_access_token(self) -> dict[str, Any]:
        """Called by wechatpy when the store holds no live token: fetch one unless another worker just did."""

        def fetch() -> dict[str, Any]:
            if self.session.get(self.access_token_key):
                return {}
            return self.fetch_new_token()

        return self._locked(fetch)

    def refresh_token(self, rejected: str | None) -> None:
        """Replace a token WeChat refused, unless another worker on the same store already did."""

        def refresh() -> None:
            current = self.session.get(self.access_token_key)
            if current and current != rejected:
                return
            self.fetch_new_token()

        self._locked(refresh)

    def _locked(self, work: Callable[[], _T]) -> _T:
        """Run `work` holding the store's refresh lock; a lock held elsewhere too long is a failed fetch (retry)."""
        store: TokenStore = self.session
        try:
            with store.refresh_lock(self.access_token_key, self.timeout):
                return work()
        except TimeoutError as exc:
            raise TokenFetchError(None, "TimeoutError (the token refresh lock is busy)", client=self) from exc

    def fetch_new_token(self) -> dict[str, Any]:
        """`GET {API_BASE}token` and store the token for its lifetime (raises TokenFetchError)."""
        params = {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret}
        try:
            res = self._http.get(self.API_BASE_URL + "token", params=params, timeout=self.timeout)
            res.raise_for_status()
            result = res.json()
        except (requests.RequestException, ValueError) as exc:
            raise TokenFetchError(None, type(exc).__name__, client=self) from exc
        if not isinstance(result, dict) or not result.get("access_token") or result.get("errcode"):
            errcode = result.get("errcode") if isinstance(result, dict) else None
            errmsg = result.get("errmsg", "") if isinstance(result, dict) else ""
            raise TokenFetchError(int(errcode) if errcode is not None else None, errmsg, client=self, response=res)
        expires_in = int(result.get("expires_in") or 7200)
        self.session.set(self.access_token_key, result["access_token"], expires_in)
        self.expires_at = int(time.time()) + expires_in
        return result


MAX_SCENE_LENGTH = 64  # WeChat's limit for a permanent string scene (QR_LIMIT_STR_SCENE)


class WechatApiError(Exception):
    """A WeChat call other than a send was refused or failed; `result` says how (outcome, code, detail)."""

    def __init__(self, result: SendResult) -> None:
        super().__init__(result.detail or result.code or str(result.outcome))
        self.result = result


class WechatAdapter:
    """Sends `template` (one openid) and `mass` (two or more openids) messages of one official account."""

    channel = Channel.WECHAT
    provider = "wechat"

    def __init__(self, settings: WechatSettings, token_store: TokenStore) -> None:
        if not settings.appid or not settings.secret:
            raise ValueError("GROWTH_WECHAT_APPID and GROWTH_WECHAT_SECRET are required for the WeChat channel")
        self.settings = settings
        self.token_store = token_store
        self._client = _Client(settings, token_store)
        _mask_tokens_in_http_logs()

    def send(self, message: Outgoing) -> SendResult:
        """Make the WeChat call for one message and report its outcome; never raises for provider errors."""
        if message.channel != Channel.WECHAT:
            return SendResult(Outcome.FAILED, detail=f"not a WeChat message ({message.channel})")
        if message.wechat_kind == "template":
            if not isinstance(message.to, str) or not message.to:
                return SendResult(Outcome.FAILED, detail="a template message goes to one openid")
            if not message.template_id:
                return SendResult(Outcome.FAILED, detail="a template message needs a template_id")
            openid = message.to

            def call() -> Any:
                return self._client.message.send_template(
                    openid, message.template_id, template_data(message.data), url=message.url or None
                )

            return self._call("template", call)
        if message.wechat_kind == "mass":
            openids = [message.to] if isinstance(message.to, str) else list(dict.fromkeys(message.to))
            if len(openids) < 2 or not all(openids):
                return SendResult(Outcome.FAILED, detail="a mass send goes to at least two openids")
            if not message.text:
                return SendResult(Outcome.FAILED, detail="a mass send needs a text")

            def call() -> Any:
                return self._client.message.send_mass_text(openids, message.text, client_msg_id=message.message_id)

            return self._call("mass", call)
        return SendResult(Outcome.FAILED, detail=f"unknown wechat_kind {message.wechat_kind!r}")

    def create_scene_qr(self, scene: str) -> tuple[str, str]:
        """Create a permanent parametric QR code for a string scene; return WeChat's (ticket, url).

        Errors are mapped as for a send (token refreshed once, etc.) and raised as `WechatApiError`.
        """
        if not scene or len(scene) > MAX_SCENE_LENGTH:
            raise ValueError(f"a QR scene has 1 to {MAX_SCENE_LENGTH} characters")
        answers: list[Any] = []

        def call() -> Any:
            answer = self._client.qrcode.create(
                {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene}}}
            )
            answers.append(answer)
            return answer

        result = self._call("qrcode", call)
        if result.outcome is not Outcome.SENT:
            raise WechatApiError(result)
        answer = answers[-1] if answers else None
        ticket = answer.get("ticket") if isinstance(answer, dict) else None
        url = answer.get("url") if isinstance(answer, dict) else None
        if not ticket or not url:
            raise WechatApiError(SendResult(Outcome.RETRY, detail="WeChat answered no ticket or url"))
        return str(ticket), str(url)

    def _call(self, kind: str, call: Callable[[], Any]) -> SendResult:
        refreshed = False
        while True:
            try:
                used = self._client.access_token  # fetches one when the store has none
                result = call()
            except TokenFetchError as exc:
                return _token_failure(exc)
            except WeChatClientException as exc:
                if exc.errcode in TOKEN_CODES and not refreshed:
                    refreshed = True
                    try:
                        self._client.refresh_token(used)
                    except TokenFetchError as fetch_exc:
                        return _token_failure(fetch_exc)
                    continue
                return _map_error(kind, exc)
            except requests.RequestException as exc:
                return SendResult(Outcome.RETRY, detail=f"WeChat unreachable ({type(exc).__name__})")
            return _accepted(kind, result)


def template_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """WeChat's template `data`: each keyword as `{"value": ...}`; a rendered plain value is wrapped.

    Campaign definitions hold rendered strings (`{"first": "…", "keyword1": "50.00"}`); a keyword that
    already is an object (`{"value": "…", "color": "#173177"}`) is passed as it is.
    """
    return {key: dict(value) if isinstance(value, Mapping) else {"value": str(value)} for key, value in data.items()}


def _accepted(kind: str, result: Any) -> SendResult:
    if not isinstance(result, dict):
        return SendResult(Outcome.RETRY, detail="WeChat answered something that is not JSON")
    key = "msgid" if kind == "template" else "msg_id"
    return SendResult(Outcome.SENT, code="0", provider_id=str(result.get(key, "")))


def _map_error(kind: str, exc: WeChatClientException) -> SendResult:
    code = exc.errcode
    if code is None:  # an HTTP error status
        status = getattr(exc.response, "status_code", "")
        return SendResult(Outcome.RETRY, code=str(status), detail="WeChat answered an HTTP error")
    detail = str(exc.errmsg or "")[:200]
    if code in TOKEN_CODES:
        return SendResult(Outcome.RETRY, code=str(code), detail="the access token was refused again after a refresh")
    if code in RETRY_CODES:
        return SendResult(Outcome.RETRY, code=str(code), detail=detail)
    if kind == "template" and code in UNREACHABLE_TEMPLATE_CODES:
        return SendResult(Outcome.UNREACHABLE, code=str(code), detail=detail)
    if kind == "mass" and code == DUPLICATE_MASS_CODE:
        msg_id = _response_field(exc, "msg_id")
        if msg_id:  # a retry of a job WeChat already accepted (our message id is the clientmsgid)
            return SendResult(Outcome.SENT, code=str(code), provider_id=msg_id, detail="the job was already accepted")
    return SendResult(Outcome.FAILED, code=str(code), detail=detail)


def _token_failure(exc: TokenFetchError) -> SendResult:
    if exc.errcode is None:
        return SendResult(Outcome.RETRY, detail=f"the access token could not be fetched ({exc.errmsg})")
    if exc.errcode in CONFIG_CODES:  # the account's settings are wrong: stop the channel, keep the message
        return SendResult(Outcome.RETRY, code=str(exc.errcode), detail=str(exc.errmsg)[:200], pause_channel=True)
    return SendResult(Outcome.RETRY, code=str(exc.errcode), detail=str(exc.errmsg)[:200])


def _response_field(exc: WeChatClientException, name: str) -> str:
    try:
        value = exc.response.json().get(name) if exc.response is not None else None
    except (ValueError, AttributeError):
        return ""
    return "" if value is None else str(value)


def mass_sends_left(sent_times: Iterable[datetime], now: datetime, per_month: int = MASS_SENDS_PER_MONTH) -> int:
    """How many mass sends the account has left in `now`'s calendar month (Asia/Shanghai).

    `sent_times` are the accepted mass sends (timezone-aware); those in another month do not count.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local_now = now.astimezone(SHANGHAI)
    month = (local_now.year, local_now.month)
    used = 0
    for sent in sent_times:
        if sent.tzinfo is None:
            raise ValueError("sent times must be timezone-aware")
        local = sent.astimezone(SHANGHAI)
        if (local.year, local.month) == month:
            used += 1
    return max(0, per_month - used)


def register_wechat(registry: AdapterRegistry, token_store: TokenStore | None = None) -> None:
    """Register the WeChat adapter (`GROWTH_WECHAT_APPID` set); every adapter built shares one token store."""
    store: TokenStore = token_store if token_store is not None else MemoryTokenStore()

    def build(settings: Mapping[str, Any]) -> WechatAdapter:
        return WechatAdapter(WechatSettings.from_mapping(settings), store)

    registry.register(Channel.WECHAT, "wechat", build)
