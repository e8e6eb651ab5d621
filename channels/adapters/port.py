"""The one port every message channel speaks, the outcome it reports, and the registry of adapters.

An adapter turns one `Outgoing` message into one provider call and says what happened as a
`SendResult`; it never retries, sleeps, touches the database or decides about consent, quiet hours
or caps — the delivery worker does, from the result's `outcome`. Adapters import nothing of ours but
this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Channel(StrEnum):
    """A message channel (the spec's `channel` values, plus the platform webhook)."""

    SMS = "sms"
    EMAIL = "email"
    WECHAT = "wechat"
    WEBHOOK = "webhook"


class MessageClass(StrEnum):
    """Service notices (the investor's own account) or marketing (consent, quiet hours, caps apply)."""

    SERVICE = "service"
    MARKETING = "marketing"


class Outcome(StrEnum):
    """What a provider call came to, as the delivery worker acts on it."""

    SENT = "sent"  # accepted by the provider (delivery receipts may follow)
    RETRY = "retry"  # a temporary refusal, a timeout or a 5xx: try again later
    FAILED = "failed"  # a permanent refusal for this message: do not retry
    UNREACHABLE = "unreachable"  # a permanent refusal for this recipient on this channel (bad number, unfollowed)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One rendered message to one recipient (or, for a WeChat mass send, to a list of openids).

    `message_id` is ours (the outbox row's key): adapters pass it to providers that echo an id back in
    receipts (Aliyun `OutId`) and use it as the webhook-id, so a retry is recognisably the same delivery.
    """

    message_id: str
    channel: Channel
    message_class: MessageClass
    to: str | tuple[str, ...]
    text: str = ""  # SMS wording / email text part / console output
    subject: str = ""
    html: str = ""
    template_code: str = ""  # SMS provider template (aliyun/tencent)
    params: Mapping[str, str] = field(default_factory=dict)  # rendered provider-template parameters
    wechat_kind: str = ""  # "template" (service notices) or "mass" (marketing)
    template_id: str = ""  # WeChat template id
    data: Mapping[str, Any] = field(default_factory=dict)  # WeChat template data / webhook body
    url: str = ""  # WeChat template link
    unsubscribe_url: str = ""  # marketing email: List-Unsubscribe (RFC 8058 one-click)


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one provider call came to."""

    outcome: Outcome
    code: str = ""  # the provider's own code (Aliyun `Code`, WeChat `errcode`, SMTP reply, HTTP status)
    detail: str = ""  # a short reason for people (never personal data)
    provider_id: str = ""  # the provider's id for the message (BizId, msgid, Message-ID)
    retry_after: float | None = None  # seconds, when the provider says when to try again
    pause_channel: bool = False  # the whole channel must stop (e.g. Aliyun isv.AMOUNT_NOT_ENOUGH)
    delivered: bool = False  # the answer itself confirms delivery (the console provider): no receipt will come


class Adapter(Protocol):
    """Sends one message over one provider."""

    channel: Channel
    provider: str

    def send(self, message: Outgoing) -> SendResult:
        """Make one provider call for the message and report its outcome; never raise for provider errors."""
        ...


AdapterFactory = Callable[[Mapping[str, Any]], Adapter]
EXTENSION = "channels.adapters"  # where the composition root keeps the app's registry (app.extensions)


class AdapterRegistry:
    """Adapter factories by (channel, provider name); the composition root registers and builds them."""

    def __init__(self) -> None:
        self._factories: dict[tuple[Channel, str], AdapterFactory] = {}

    def register(self, channel: Channel, provider: str, factory: AdapterFactory) -> None:
        """Register how to build a provider's adapter from its settings."""
        key = (channel, provider)
        if key in self._factories:
            raise ValueError(f"adapter {channel}/{provider} is registered twice")
        self._factories[key] = factory

    def providers(self, channel: Channel) -> list[str]:
        """Return the provider names registered for a channel."""
        return sorted(name for ch, name in self._factories if ch == channel)

    def build(self, channel: Channel, provider: str, settings: Mapping[str, Any]) -> Adapter:
        """Build a provider's adapter with its settings (raises KeyError for an unknown provider)."""
        try:
            factory = self._factories[(channel, provider)]
        except KeyError:
            raise KeyError(f"no adapter {channel}/{provider}; known: {self.providers(channel)}") from None
        return factory(settings)
