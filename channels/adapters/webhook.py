"""The platform webhook: Standard Webhooks–signed JSON POSTs (spec §1 "Platform webhook").

The body is `Outgoing.data` (`{"type": "reward.granted", "data": {...}}`), serialised once and signed
with the official `standardwebhooks` library; `webhook-id` is `Outgoing.message_id`, so a retry of the
same delivery carries the same id and the platform can drop duplicates. Any 2xx acknowledges; 5xx,
408, 429 (honouring Retry-After), timeouts and connection errors are retried; other answers fail.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from channels.adapters.port import AdapterRegistry, Channel, Outcome, Outgoing, SendResult

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
USER_AGENT = "growth-webhooks/1"
RETRY_STATUSES = frozenset({408, 429})


def check_secret(secret: str) -> str:
    """Return the secret if it is `whsec_` + base64 of at least 16 bytes; raise ValueError otherwise."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("the webhook secret must start with whsec_")
    body = secret[len(SECRET_PREFIX):]
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the webhook secret is not base64 after whsec_") from None
    if len(key) < 16:
        raise ValueError("the webhook secret is shorter than 16 bytes")
    return secret


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """The platform webhook adapter's configuration."""

    url: str
    secret: str  # whsec_...
    timeout: float = 10.0  # seconds, connect and read

    def __post_init__(self) -> None:
        if not self.url.startswith(("https://", "http://")):
            raise ValueError("the webhook URL must be http(s)")
        check_secret(self.secret)

    def __repr__(self) -> str:  # never print the secret
        return f"WebhookSettings(url={self.url!r}, secret='whsec_***', timeout={self.timeout})"

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> WebhookSettings:
        """Build from `platform_webhook_url`, `platform_webhook_secret` and optional `platform_webhook_timeout`."""
        return cls(url=str(settings["platform_webhook_url"]), secret=str(settings["platform_webhook_secret"]),
                   timeout=float(settings.get("platform_webhook_timeout") or 10.0))


def body_of(message: Outgoing) -> str:
    """Return the JSON body for a message (`{"type": ..., "data": {...}}`); raise ValueError if it is not one."""
    data = dict(message.data)
    if set(data) != {"type", "data"} or not isinstance(data["type"], str) or not isinstance(data["data"], Mapping):
        raise ValueError('a webhook body is {"type": "...", "data": {...}} and nothing else')
    try:
        return json.dumps({"type": data["type"], "data": dict(data["data"])}, ensure_ascii=False,
                          separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the webhook body is not JSON: {exc}") from None


def signed_headers(webhook: Webhook, message_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """Return the Standard Webhooks headers for one delivery attempt (`timestamp` in UTC)."""
    timestamp = timestamp.astimezone(UTC)  # the library reads the wall time as UTC
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": webhook.sign(message_id, timestamp, body),
    }


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Parse a Retry-After header (seconds or an HTTP date) into seconds from `now`; None if absent or malformed."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def outcome_of(status: int, retry_after: float | None) -> SendResult:
    """Map an HTTP status to a `SendResult`."""
    if 200 <= status < 300:
        return SendResult(Outcome.SENT, code=str(status))
    if status >= 500 or status in RETRY_STATUSES:
        return SendResult(Outcome.RETRY, code=str(status), detail=f"HTTP {status}", retry_after=retry_after)
    return SendResult(Outcome.FAILED, code=str(status), detail=f"HTTP {status}")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PlatformWebhookAdapter:
    """POSTs one signed webhook per `send`."""

    channel = Channel.WEBHOOK
    provider = "standard"

    def __init__(self, settings: WebhookSettings, *, clock: Callable[[], datetime] = _utcnow,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._webhook = Webhook(settings.secret)
        self._clock = clock
        self._transport = transport
        self._client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self.settings.timeout, follow_redirects=False,
                                        transport=self._transport, headers={"user-agent": USER_AGENT})
        return self._client

    def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def send(self, message: Outgoing) -> SendResult:
        """POST the signed body; map the answer to a `SendResult` (never raises for the receiver's answers)."""
        try:
            body = body_of(message)
        except ValueError as exc:
            return SendResult(Outcome.FAILED, code="invalid", detail=str(exc)[:200])
        now = self._clock()
        headers = signed_headers(self._webhook, message.message_id, now, body)
        headers["content-type"] = "application/json"
        try:
            response = self._http().post(self.settings.url, content=body.encode("utf-8"), headers=headers)
        except httpx.TimeoutException:
            return SendResult(Outcome.RETRY, code="timeout", detail="the receiver did not answer in time")
        except httpx.TransportError as exc:  # refused, reset, DNS, TLS
            return SendResult(Outcome.RETRY, code="connection", detail=type(exc).__name__)
        result = outcome_of(response.status_code, retry_after_seconds(response.headers.get("retry-after"), now))
        if result.outcome is Outcome.SENT:
            return SendResult(Outcome.SENT, code=result.code, provider_id=message.message_id)
        return result


def build_webhook_adapter(settings: Mapping[str, Any]) -> PlatformWebhookAdapter:
    """Build the platform webhook adapter from settings (`platform_webhook_url`, `platform_webhook_secret`)."""
    return PlatformWebhookAdapter(WebhookSettings.from_mapping(settings))


def register_webhook(registry: AdapterRegistry) -> None:
    """Register the Standard Webhooks platform adapter."""
    registry.register(Channel.WEBHOOK, PlatformWebhookAdapter.provider, build_webhook_adapter)
