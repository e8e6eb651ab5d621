"""The `console` SMS provider (the default): logs each message (masked phone, no wording), counts it delivered."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from channels.adapters.port import AdapterRegistry, Channel, Outcome, Outgoing, SendResult
from channels.adapters.sms_settings import SmsSettings, mask_phone, recipients

log = logging.getLogger("channels.sms.console")


@dataclass(frozen=True, slots=True)
class ConsoleRecord:
    """One message the console "sent" (the full number stays in memory only, for tests and the demo)."""

    message_id: str
    to: tuple[str, ...]
    text: str
    message_class: str


class ConsoleSms:
    """Logs each SMS (last 4 digits of the phone only) and keeps the last `keep` of them in memory."""

    channel = Channel.SMS
    provider = "console"

    def __init__(self, settings: SmsSettings | None = None, keep: int = 100) -> None:
        if keep < 0:
            raise ValueError("keep must not be negative")
        self.settings = settings or SmsSettings()
        self.sent: deque[ConsoleRecord] = deque(maxlen=keep)

    def send(self, message: Outgoing) -> SendResult:
        """Log the message and report it sent; the provider id is `console-<message_id>`."""
        phones = tuple(recipients(message.to))
        sign = f"【{self.settings.sign_name}】" if self.settings.sign_name else ""
        # The wording is not logged: a rendered message may carry the investor's name. The delivery log shows
        # it to roles that may see personal data; the in-memory record keeps it for tests and the demo.
        log.info("SMS %s (%s) to %s: %d characters, %s", message.message_id, message.message_class,
                 ", ".join(mask_phone(p) for p in phones), len(sign + message.text), sign or "no signature")
        self.sent.append(ConsoleRecord(message.message_id, phones, sign + message.text, str(message.message_class)))
        return SendResult(Outcome.SENT, code="OK", provider_id=f"console-{message.message_id}", delivered=True)


def register_console(registry: AdapterRegistry) -> None:
    """Register the console SMS adapter (`GROWTH_SMS_PROVIDER=console`)."""

    def build(settings: Mapping[str, Any]) -> ConsoleSms:
        return ConsoleSms(SmsSettings.from_mapping(settings))

    registry.register(Channel.SMS, "console", build)
