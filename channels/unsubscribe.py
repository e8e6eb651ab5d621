"""Signed unsubscribe tokens for the links in marketing messages (spec §1 Email, §5).

A token names an investor and a channel and is signed with the app's secret and a salt of its own, so
`POST /unsubscribe/<token>` can withdraw consent without a login and a token made for anything else
(a session cookie, a CSRF token) is never accepted. Pure: `issued_at` and `now` are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from itsdangerous import BadSignature, URLSafeSerializer

SALT = "growth.channels.unsubscribe.v1"


@dataclass(frozen=True, slots=True)
class UnsubscribeToken:
    """What a valid token says."""

    investor_id: int
    channel: str
    issued_at: datetime


class InvalidUnsubscribeToken(ValueError):
    """The token was tampered with, signed with another secret, malformed or too old."""


def _serializer(secret: str | bytes) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=SALT)


def make_unsubscribe_token(secret: str | bytes, investor_id: int, channel: str, issued_at: datetime) -> str:
    """Return a URL-safe signed token for one investor's opt-out of one channel."""
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    payload = {"i": int(investor_id), "c": str(channel), "t": int(issued_at.timestamp())}
    return str(_serializer(secret).dumps(payload))


def unsubscribe_url(public_base_url: str, token: str) -> str:
    """Return the one-click link for a token: `{GROWTH_PUBLIC_BASE_URL}/unsubscribe/<token>`."""
    return f"{public_base_url.rstrip('/')}/unsubscribe/{token}"


def read_unsubscribe_token(secret: str | bytes, token: str, *, now: datetime | None = None,
                           max_age_days: int | None = None) -> UnsubscribeToken:
    """Verify a token and return what it says; raise `InvalidUnsubscribeToken` for anything else.

    Unsubscribe links must keep working long after the mail was sent, so there is no age limit unless
    `max_age_days` (with `now`) is given.
    """
    try:
        payload = _serializer(secret).loads(token)
    except BadSignature:
        raise InvalidUnsubscribeToken("bad signature") from None
    if not (isinstance(payload, dict) and isinstance(payload.get("i"), int) and isinstance(payload.get("c"), str)
            and isinstance(payload.get("t"), int)):
        raise InvalidUnsubscribeToken("malformed token")
    issued_at = datetime.fromtimestamp(payload["t"], tz=UTC)
    if max_age_days is not None:
        if now is None:
            raise ValueError("now is required with max_age_days")
        if (now - issued_at).total_seconds() > max_age_days * 86400:
            raise InvalidUnsubscribeToken("token expired")
    return UnsubscribeToken(investor_id=payload["i"], channel=payload["c"], issued_at=issued_at)
