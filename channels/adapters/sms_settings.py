"""SMS provider settings (spec §1 `GROWTH_SMS_*`) and what every SMS adapter shares.

Field names are the environment variables without their `GROWTH_SMS_` prefix, lower-cased, so the
composition root maps them 1:1. Imports nothing of ours but the port.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

PREFIX = "GROWTH_SMS_"


@dataclass(frozen=True, slots=True)
class SmsSettings:
    """One SMS provider's configuration (spec §1); `endpoint` empty = the provider's public endpoint."""

    provider: str = "console"
    endpoint: str = ""  # host[:port]
    protocol: str = "https"  # or "http" for local test servers
    access_key_id: str = ""  # Tencent: SecretId
    access_key_secret: str = ""  # Tencent: SecretKey
    app_id: str = ""  # Tencent SmsSdkAppId
    region: str = ""  # Tencent region (e.g. ap-guangzhou)
    sign_name: str = ""  # the approved signature, shown as 【sign_name】
    timeout: float = 10.0  # seconds for one provider call (connect + read)

    def __post_init__(self) -> None:
        if self.protocol not in ("http", "https"):
            raise ValueError(f"GROWTH_SMS_PROTOCOL must be http or https, not {self.protocol!r}")
        if self.timeout <= 0:
            raise ValueError("the SMS timeout must be positive")

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> SmsSettings:
        """Build from field names (`endpoint`) or environment names (`GROWTH_SMS_ENDPOINT`); others are ignored."""
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in settings.items():
            name = key[len(PREFIX):].lower() if key.upper().startswith(PREFIX) else key
            if name in names and value is not None and value != "":
                values[name] = float(value) if name == "timeout" else str(value)
        return cls(**values)

    def base_url(self, default_host: str) -> str:
        """Return `protocol://host[:port]` of the provider API (the public host unless `endpoint` is set)."""
        host = self.endpoint.strip().rstrip("/") or default_host
        if "://" in host:
            raise ValueError("GROWTH_SMS_ENDPOINT is host[:port]; the scheme goes in GROWTH_SMS_PROTOCOL")
        return f"{self.protocol}://{host}"


def mask_phone(phone: str) -> str:
    """Mask a phone number for logs: only the last 4 digits stay (`*******5678`)."""
    digits = [c for c in phone if c.isdigit()]
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 4) + "".join(digits[-4:])


def recipients(to: str | tuple[str, ...]) -> list[str]:
    """Return the message's phone numbers as a list (an SMS `to` is one number, a tuple is accepted)."""
    return [to] if isinstance(to, str) else list(to)


_LONG_DIGITS = re.compile(r"\d{7,}")


def scrub(text: str, limit: int = 200) -> str:
    """Shorten a provider's message for `SendResult.detail` and mask any run of 7+ digits (a phone number)."""
    return _LONG_DIGITS.sub(lambda m: mask_phone(m.group()), text)[:limit]
