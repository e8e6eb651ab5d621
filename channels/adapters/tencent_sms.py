"""Tencent Cloud SMS: `SendSms` of API 3.0 (version 2021-01-11), signed with TC3-HMAC-SHA256.

A POST of the JSON body to `/` with the headers `Content-Type: application/json; charset=utf-8`,
`Host`, `X-TC-Action`, `X-TC-Version`, `X-TC-Timestamp`, `X-TC-Region` and
`Authorization: TC3-HMAC-SHA256 Credential=<SecretId>/<date>/sms/tc3_request, SignedHeaders=content-type;host,
Signature=<hex>`; the signature is over the canonical request (method, `/`, empty query, the two signed
headers, the body's SHA-256) with a key derived from `"TC3" + SecretKey`, the UTC date, `sms`, `tc3_request`.

`TemplateParamSet` order: Tencent templates number their parameters `{1}`, `{2}`, …; when every key of
`Outgoing.params` is a number the values go in numeric order of their keys ("1", "2", …, "10"), otherwise
in the mapping's own order (campaign JSON keeps the order it was written in).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from channels.adapters.port import AdapterRegistry, Channel, Outcome, Outgoing, SendResult
from channels.adapters.sms_settings import SmsSettings, recipients, scrub

PUBLIC_HOST = "sms.tencentcloudapi.com"
SERVICE = "sms"
API_VERSION = "2021-01-11"
DEFAULT_REGION = "ap-guangzhou"
ALGORITHM = "TC3-HMAC-SHA256"
CONTENT_TYPE = "application/json; charset=utf-8"
SIGNED_HEADERS = "content-type;host"

UNREACHABLE_CODES = frozenset({
    "InvalidParameterValue.IncorrectPhoneNumber",
    "FailedOperation.PhoneNumberInBlacklist",
    "FailedOperation.PhoneNumberOnBlacklist",
    "FailedOperation.PhoneNumberParseFail",
})
PAUSE_CODES = frozenset({"FailedOperation.InsufficientBalanceInSmsPackage"})
RETRY_PREFIXES = ("LimitExceeded.", "InternalError.", "RequestLimitExceeded")
RETRY_CODES = frozenset({"InternalError", "LimitExceeded", "ResourceUnavailable", "RequestLimitExceeded"})


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def canonical_request(host: str, payload: bytes) -> str:
    """Return the canonical request of a POST to `/` with the signed headers content-type and host."""
    headers = f"content-type:{CONTENT_TYPE}\nhost:{host}\n"
    return "\n".join(["POST", "/", "", headers, SIGNED_HEADERS, hashlib.sha256(payload).hexdigest()])


def signature(secret_key: str, host: str, payload: bytes, timestamp: int, service: str = SERVICE) -> str:
    """Return the hex TC3-HMAC-SHA256 signature of the request."""
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join([ALGORITHM, str(timestamp), scope,
                         hashlib.sha256(canonical_request(host, payload).encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def authorization(secret_id: str, secret_key: str, host: str, payload: bytes, timestamp: int) -> str:
    """Return the `Authorization` header value."""
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    return (f"{ALGORITHM} Credential={secret_id}/{date}/{SERVICE}/tc3_request, SignedHeaders={SIGNED_HEADERS}, "
            f"Signature={signature(secret_key, host, payload, timestamp)}")


def tencent_phone(phone: str) -> str:
    """Return the number in E.164 as `PhoneNumberSet` wants it (`+86` added to an 11-digit mainland number)."""
    phone = phone.strip().replace(" ", "").replace("-", "")
    if phone.startswith("+"):
        return phone
    if len(phone) == 11 and phone.startswith("1"):
        return "+86" + phone
    if phone.startswith("86") and len(phone) == 13:
        return "+" + phone
    return phone


def template_param_set(params: Mapping[str, str]) -> list[str]:
    """Return the parameters' values: by numeric key order when all keys are numbers, else in mapping order."""
    keys = list(params)
    if keys and all(k.isdecimal() for k in keys):
        keys.sort(key=int)
    return [str(params[k]) for k in keys]


def outcome_for(code: str) -> tuple[Outcome, bool]:
    """Map a Tencent code (`SendStatusSet[].Code` or `Error.Code`) to an outcome and whether to pause SMS."""
    if code == "Ok":
        return Outcome.SENT, False
    if code in PAUSE_CODES:
        return Outcome.FAILED, True
    if code in UNREACHABLE_CODES:
        return Outcome.UNREACHABLE, False
    if code in RETRY_CODES or code.startswith(RETRY_PREFIXES):
        return Outcome.RETRY, False
    return Outcome.FAILED, False


class TencentSms:
    """Sends one SMS through Tencent Cloud `SendSms`; never raises for provider or transport errors."""

    channel = Channel.SMS
    provider = "tencent"

    def __init__(self, settings: SmsSettings, *, transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.url = settings.base_url(PUBLIC_HOST) + "/"
        self.host = settings.endpoint.strip().rstrip("/") or PUBLIC_HOST
        self.region = settings.region or DEFAULT_REGION
        # One client (connection pool) per adapter, shared by the delivery threads: building one loads the
        # TLS trust store (~90 ms), too dear per message.
        self._client = httpx.Client(timeout=settings.timeout, transport=transport,
                                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
        self._clock = clock or (lambda: datetime.now(UTC))

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def request_body(self, message: Outgoing) -> dict[str, Any]:
        """Return the `SendSms` request body for the message."""
        return {
            "PhoneNumberSet": [tencent_phone(p) for p in recipients(message.to)],
            "SmsSdkAppId": self.settings.app_id,
            "SignName": self.settings.sign_name,
            "TemplateId": message.template_code,
            "TemplateParamSet": template_param_set(message.params),
            "SessionContext": message.message_id,
        }

    def request(self, message: Outgoing) -> tuple[bytes, dict[str, str]]:
        """Return the signed request: its body bytes and headers."""
        payload = json.dumps(self.request_body(message), ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = int(self._clock().timestamp())
        headers = {
            "Content-Type": CONTENT_TYPE,
            "Host": self.host,
            "X-TC-Action": "SendSms",
            "X-TC-Version": API_VERSION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": self.region,
            "Authorization": authorization(self.settings.access_key_id, self.settings.access_key_secret,
                                           self.host, payload, timestamp),
        }
        return payload, headers

    def send(self, message: Outgoing) -> SendResult:
        """Call `SendSms` once and map Tencent's answer to an outcome."""
        payload, headers = self.request(message)
        try:
            response = self._client.post(self.url, content=payload, headers=headers)
        except httpx.TimeoutException:
            return SendResult(Outcome.RETRY, code="timeout", detail="tencent did not answer in time")
        except httpx.HTTPError as exc:
            return SendResult(Outcome.RETRY, code="connection", detail=f"tencent unreachable: {type(exc).__name__}")
        if response.status_code >= 500:
            return SendResult(Outcome.RETRY, code=f"HTTP {response.status_code}", detail="tencent server error")
        try:
            body = response.json()["Response"]
        except (ValueError, KeyError, TypeError):
            return SendResult(Outcome.FAILED, code=f"HTTP {response.status_code}",
                              detail="tencent answered without a Response")
        if not isinstance(body, dict):
            return SendResult(Outcome.FAILED, code=f"HTTP {response.status_code}", detail="malformed Response")
        error = body.get("Error")
        if isinstance(error, dict):
            code = str(error.get("Code", ""))
            outcome, pause = outcome_for(code)
            return SendResult(outcome, code=code, detail=scrub(str(error.get("Message", ""))), pause_channel=pause)
        statuses = body.get("SendStatusSet")
        if not isinstance(statuses, list) or not statuses or not isinstance(statuses[0], dict):
            return SendResult(Outcome.FAILED, code="no SendStatusSet", detail="tencent answered without a status")
        status = statuses[0]
        code = str(status.get("Code", ""))
        outcome, pause = outcome_for(code)
        if outcome is Outcome.SENT:
            return SendResult(outcome, code=code, provider_id=str(status.get("SerialNo", "")))
        return SendResult(outcome, code=code, detail=scrub(str(status.get("Message", ""))), pause_channel=pause)


def register_tencent(registry: AdapterRegistry) -> None:
    """Register the Tencent Cloud SMS adapter (`GROWTH_SMS_PROVIDER=tencent`)."""

    def build(settings: Mapping[str, Any]) -> TencentSms:
        return TencentSms(SmsSettings.from_mapping(settings))

    registry.register(Channel.SMS, "tencent", build)
