"""Aliyun SMS: `SendSms` of dysmsapi 2017-05-25 over the RPC protocol, signed with signature v1 (HMAC-SHA1).

The request is the documented RPC form: the common parameters (`AccessKeyId`, `Action`, `Format`,
`RegionId`, `SignatureMethod`, `SignatureNonce`, `SignatureVersion`, `Timestamp`, `Version`) and the
action's (`PhoneNumbers`, `SignName`, `TemplateCode`, `TemplateParam`, `OutId`) are sorted, each
RFC 3986-encoded, joined into the canonicalised query; the string to sign is
`POST&%2F&<encoded canonicalised query>`, signed with HMAC-SHA1 under `AccessKeySecret + "&"`, base64.
"""

from __future__ import annotations

import base64
import hmac
import http.client
import re
import select
import ssl
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from channels.adapters.port import AdapterRegistry, Channel, Outcome, Outgoing, SendResult
from channels.adapters.sms_settings import SmsSettings, recipients, scrub

FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
PUBLIC_HOST = "dysmsapi.aliyuncs.com"
API_VERSION = "2017-05-25"
REGION_ID = "cn-hangzhou"

RETRY_CODES = frozenset({"isv.BUSINESS_LIMIT_CONTROL", "Throttling", "Throttling.User", "Throttling.Api",
                         "ServiceUnavailable", "InternalError"})
UNREACHABLE_CODES = frozenset({"isv.MOBILE_NUMBER_ILLEGAL"})
PAUSE_CODES = frozenset({"isv.AMOUNT_NOT_ENOUGH"})


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as Aliyun's RPC signature wants it (UTF-8; only A-Z a-z 0-9 - _ . ~ stay)."""
    if _UNRESERVED.fullmatch(value):  # most names and values: nothing to encode, and quote() is slow
        return value
    return quote(value, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    """Return the canonicalised query: parameters sorted by name, each `encode(name)=encode(value)`, joined by &."""
    return "&".join(f"{percent_encode(k)}={percent_encode(params[k])}" for k in sorted(params))


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """Return `METHOD&%2F&encode(canonicalised query)`."""
    return _string_to_sign(method, canonical_query(params))


def _string_to_sign(method: str, query: str) -> str:
    # The canonicalised query holds only unreserved characters, "%", "=" and "&" (its parts are encoded
    # already), so encoding it again is these three replacements ("%" first), without quote()'s per-character work.
    encoded = query.replace("%", "%25").replace("=", "%3D").replace("&", "%26")
    return f"{method.upper()}&%2F&{encoded}"


def sign(method: str, params: Mapping[str, str], secret: str) -> str:
    """Return the signature v1 of the parameters (without `Signature`): base64 HMAC-SHA1 under `secret&`."""
    return _signature(f"{secret}&".encode(), string_to_sign(method, params))


def _signature(key: bytes, to_sign: str) -> str:
    return base64.b64encode(hmac.digest(key, to_sign.encode(), "sha1")).decode()


def aliyun_phone(phone: str) -> str:
    """Return the number as `PhoneNumbers` wants it: mainland numbers without +86, others without the +."""
    phone = phone.strip().replace(" ", "").replace("-", "")
    if phone.startswith("+86"):
        return phone[3:]
    return phone.lstrip("+")


def outcome_for(code: str, http_status: int) -> tuple[Outcome, bool]:
    """Map Aliyun's `Code` (and the HTTP status) to an outcome and whether the SMS channel must pause."""
    if code == "OK":
        return Outcome.SENT, False
    if code in PAUSE_CODES:
        return Outcome.FAILED, True
    if code in UNREACHABLE_CODES:
        return Outcome.UNREACHABLE, False
    if code in RETRY_CODES or code.startswith("isp.") or code.startswith("Throttling") or http_status >= 500:
        return Outcome.RETRY, False
    return Outcome.FAILED, False  # isv.BLACK_KEY_CONTROL_LIMIT, other isv.*, signature and key errors


class AliyunSms:
    """Sends one SMS through Aliyun `SendSms`; never raises for provider or transport errors."""

    channel = Channel.SMS
    provider = "aliyun"

    def __init__(self, settings: SmsSettings, *, clock: Callable[[], datetime] | None = None,
                 nonce: Callable[[], str] | None = None) -> None:
        self.settings = settings
        self.url = settings.base_url(PUBLIC_HOST) + "/"
        parts = urlsplit(self.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or PUBLIC_HOST
        self._port = parts.port
        self._clock = clock or (lambda: datetime.now(UTC))
        self._nonce = nonce or (lambda: uuid.uuid4().hex)
        self._key = f"{settings.access_key_secret}&".encode()  # the HMAC key, once
        # One keep-alive connection per sending thread (stdlib http.client): a send costs about 40 % less
        # CPU than through urllib3's pool, and the sends of a worker share one interpreter, so that is its
        # throughput (bench/README.md). No retries of our own: a retry is the delivery worker's decision.
        # A connection the server closed while idle is noticed before reuse (`_dropped`), never by resending.
        self._local = threading.local()
        self._lock = threading.Lock()  # guards the set of open connections, the generation and the TLS context
        self._open: set[http.client.HTTPConnection] = set()
        self._generation = 0  # close() moves it on: every thread then opens a new connection
        self._tls: ssl.SSLContext | None = None

    def _connection(self) -> http.client.HTTPConnection:
        """This thread's connection, opened again when close() ran or the server dropped it while idle."""
        held: tuple[int, http.client.HTTPConnection] | None = getattr(self._local, "held", None)
        if held is not None and held[0] == self._generation:
            kept = held[1]
            if kept.sock is not None and _dropped(kept.sock):
                kept.close()  # http.client connects again on the next request
            return kept
        with self._lock:
            if self._https:
                if self._tls is None:  # building a context loads the CA bundle: once, not per connection
                    self._tls = ssl.create_default_context()
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.settings.timeout, context=self._tls)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self.settings.timeout)
            self._open.add(conn)
            self._local.held = (self._generation, conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection (a later send opens a new one); call it with no send in flight."""
        with self._lock:
            conns, self._open = self._open, set()
            self._generation += 1
        for conn in conns:
            conn.close()

    def _unsigned(self, message: Outgoing) -> dict[str, str]:
        params = {
            "AccessKeyId": self.settings.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "RegionId": REGION_ID,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": self._nonce(),
            "SignatureVersion": "1.0",
            "Timestamp": self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION,
            "PhoneNumbers": ",".join(aliyun_phone(p) for p in recipients(message.to)),
            "SignName": self.settings.sign_name,
            "TemplateCode": message.template_code,
            "OutId": message.message_id,
        }
        if message.params:  # a template without variables takes no TemplateParam
            params["TemplateParam"] = orjson.dumps(dict(message.params)).decode()  # compact, UTF-8 as is
        return params

    def request_params(self, message: Outgoing) -> dict[str, str]:
        """Return the signed form parameters of the `SendSms` call for the message."""
        params = self._unsigned(message)
        params["Signature"] = _signature(self._key, string_to_sign("POST", params))
        return params

    def request_body(self, message: Outgoing) -> bytes:
        """Return the signed form body of the `SendSms` call.

        The canonicalised query is itself a valid form encoding (RFC 3986 is stricter than the form's
        rules), so it is the body, with the signature appended: one encoding pass, not two.
        """
        query = canonical_query(self._unsigned(message))
        signature = _signature(self._key, _string_to_sign("POST", query))
        return f"{query}&Signature={percent_encode(signature)}".encode()

    def send(self, message: Outgoing) -> SendResult:
        """Call `SendSms` once and map Aliyun's answer to an outcome."""
        body = self.request_body(message)
        conn = self._connection()
        try:
            conn.request("POST", "/", body=body, headers=FORM)
            response = conn.getresponse()
            data = response.read()
        except TimeoutError:  # an OSError too: first
            conn.close()
            return SendResult(Outcome.RETRY, code="timeout", detail="aliyun did not answer in time")
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, TLS, a broken answer
            conn.close()
            return SendResult(Outcome.RETRY, code="connection", detail=f"aliyun unreachable: {type(exc).__name__}")
        status = response.status
        try:
            body_json = orjson.loads(data)
        except orjson.JSONDecodeError:
            body_json = None
        if not isinstance(body_json, dict) or not isinstance(body_json.get("Code"), str):
            outcome = Outcome.RETRY if status >= 500 else Outcome.FAILED
            return SendResult(outcome, code=f"HTTP {status}", detail="aliyun answered without a Code")
        code = body_json["Code"]
        outcome, pause = outcome_for(code, status)
        detail = scrub(str(body_json.get("Message", ""))) if outcome is not Outcome.SENT else ""
        provider_id = str(body_json.get("BizId", "")) if outcome is Outcome.SENT else ""
        return SendResult(outcome, code=code, detail=detail, provider_id=provider_id, pause_channel=pause)


def _dropped(sock: Any) -> bool:
    """Whether an idle keep-alive socket has something to read: the server closed it (or broke the protocol)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def register_aliyun(registry: AdapterRegistry) -> None:
    """Register the Aliyun SMS adapter (`GROWTH_SMS_PROVIDER=aliyun`)."""

    def build(settings: Mapping[str, Any]) -> AliyunSms:
        return AliyunSms(SmsSettings.from_mapping(settings))

    registry.register(Channel.SMS, "aliyun", build)
