"""Aliyun SMS: `SendSms` of dysmsapi 2017-05-25 over the RPC protocol, signed with signature v1 (HMAC-SHA1).

The request is the documented RPC form: the common parameters (`AccessKeyId`, `Action`, `Format`,
`RegionId`, `SignatureMethod`, `SignatureNonce`, `SignatureVersion`, `Timestamp`, `Version`) and the
action's (`PhoneNumbers`, `SignName`, `TemplateCode`, `TemplateParam`, `OutId`) are sorted, each
RFC 3986-encoded, joined into the canonicalised query; the string to sign is
`POST&%2F&<encoded canonicalised query>`, signed with HMAC-SHA1 under `AccessKeySecret + "&"`, base64.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

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


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as Aliyun's RPC signature wants it (UTF-8; only A-Z a-z 0-9 - _ . ~ stay)."""
    return quote(value, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    """Return the canonicalised query: parameters sorted by name, each `encode(name)=encode(value)`, joined by &."""
    return "&".join(f"{percent_encode(k)}={percent_encode(params[k])}" for k in sorted(params))


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """Return `METHOD&%2F&encode(canonicalised query)`."""
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def sign(method: str, params: Mapping[str, str], secret: str) -> str:
    """Return the signature v1 of the parameters (without `Signature`): base64 HMAC-SHA1 under `secret&`."""
    digest = hmac.new(f"{secret}&".encode(), string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


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
        self._clock = clock or (lambda: datetime.now(UTC))
        self._nonce = nonce or (lambda: uuid.uuid4().hex)
        # One keep-alive connection pool for every send, shared by the delivery threads (urllib3's pool is
        # thread-safe; the lock only guards its creation). urllib3, not httpx: a send costs half the CPU, and
        # with the sends of a worker sharing one interpreter that is its throughput (bench/README.md).
        # No retries of our own: a retry is the delivery worker's decision. A pooled connection the
        # server closed is noticed before reuse, never by resending.
        self._pool: urllib3.PoolManager | None = None
        self._pool_lock = threading.Lock()

    def _http(self) -> urllib3.PoolManager:
        with self._pool_lock:
            if self._pool is None:
                self._pool = urllib3.PoolManager(num_pools=2, maxsize=64, retries=False,
                                                 timeout=urllib3.Timeout(connect=self.settings.timeout,
                                                                         read=self.settings.timeout))
            return self._pool

    def close(self) -> None:
        """Close the connection pool (a later send opens a new one)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.clear()

    def request_params(self, message: Outgoing) -> dict[str, str]:
        """Return the signed form parameters of the `SendSms` call for the message."""
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
            params["TemplateParam"] = json.dumps(dict(message.params), ensure_ascii=False, separators=(",", ":"))
        params["Signature"] = sign("POST", params, self.settings.access_key_secret)
        return params

    def send(self, message: Outgoing) -> SendResult:
        """Call `SendSms` once and map Aliyun's answer to an outcome."""
        params = self.request_params(message)
        try:
            response = self._http().request("POST", self.url, body=urlencode(params).encode(), headers=FORM)
        except urllib3.exceptions.NewConnectionError as exc:  # a subclass of the timeouts in urllib3: first
            return SendResult(Outcome.RETRY, code="connection", detail=f"aliyun unreachable: {type(exc).__name__}")
        except urllib3.exceptions.TimeoutError:
            return SendResult(Outcome.RETRY, code="timeout", detail="aliyun did not answer in time")
        except urllib3.exceptions.HTTPError as exc:
            return SendResult(Outcome.RETRY, code="connection", detail=f"aliyun unreachable: {type(exc).__name__}")
        status = response.status
        try:
            body = json.loads(response.data)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("Code"), str):
            outcome = Outcome.RETRY if status >= 500 else Outcome.FAILED
            return SendResult(outcome, code=f"HTTP {status}", detail="aliyun answered without a Code")
        code = body["Code"]
        outcome, pause = outcome_for(code, status)
        detail = scrub(str(body.get("Message", ""))) if outcome is not Outcome.SENT else ""
        provider_id = str(body.get("BizId", "")) if outcome is Outcome.SENT else ""
        return SendResult(outcome, code=code, detail=detail, provider_id=provider_id, pause_channel=pause)


def register_aliyun(registry: AdapterRegistry) -> None:
    """Register the Aliyun SMS adapter (`GROWTH_SMS_PROVIDER=aliyun`)."""

    def build(settings: Mapping[str, Any]) -> AliyunSms:
        return AliyunSms(SmsSettings.from_mapping(settings))

    registry.register(Channel.SMS, "aliyun", build)
