from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from itsdangerous import URLSafeSerializer

from channels.unsubscribe import (
    InvalidUnsubscribeToken,
    UnsubscribeToken,
    make_unsubscribe_token,
    read_unsubscribe_token,
    unsubscribe_url,
)

SECRET = "s3cret-key"
ISSUED = datetime(2026, 12, 3, 20, 30, tzinfo=timezone(timedelta(hours=8)))


def test_a_token_reads_back_as_the_investor_channel_and_time_it_was_made_for() -> None:
    token = make_unsubscribe_token(SECRET, 42, "email", ISSUED)
    assert read_unsubscribe_token(SECRET, token) == UnsubscribeToken(42, "email", ISSUED.astimezone(UTC))


def test_a_token_is_url_safe() -> None:
    token = make_unsubscribe_token(SECRET, 42, "email", ISSUED)
    assert all(c.isalnum() or c in "-_." for c in token)


def test_a_tampered_token_is_refused() -> None:
    token = make_unsubscribe_token(SECRET, 42, "email", ISSUED)
    payload, sig = token.rsplit(".", 1)
    forged_payload = make_unsubscribe_token(SECRET, 43, "email", ISSUED).rsplit(".", 1)[0]
    with pytest.raises(InvalidUnsubscribeToken):
        read_unsubscribe_token(SECRET, f"{forged_payload}.{sig}")
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    with pytest.raises(InvalidUnsubscribeToken):
        read_unsubscribe_token(SECRET, f"{payload}.{flipped}")


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = make_unsubscribe_token("other-secret", 42, "email", ISSUED)
    with pytest.raises(InvalidUnsubscribeToken):
        read_unsubscribe_token(SECRET, token)


def test_a_value_signed_with_the_same_secret_but_another_salt_is_refused() -> None:
    token = URLSafeSerializer(SECRET).dumps({"i": 42, "c": "email", "t": 0})
    with pytest.raises(InvalidUnsubscribeToken):
        read_unsubscribe_token(SECRET, token)


def test_garbage_is_refused() -> None:
    with pytest.raises(InvalidUnsubscribeToken):
        read_unsubscribe_token(SECRET, "not-a-token")


def test_an_age_limit_applies_only_when_asked() -> None:
    token = make_unsubscribe_token(SECRET, 42, "email", ISSUED)
    later = ISSUED + timedelta(days=400)
    assert read_unsubscribe_token(SECRET, token, now=later).investor_id == 42
    assert read_unsubscribe_token(SECRET, token, now=later, max_age_days=401).investor_id == 42
    with pytest.raises(InvalidUnsubscribeToken):
        read_unsubscribe_token(SECRET, token, now=later, max_age_days=365)


def test_a_naive_issue_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        make_unsubscribe_token(SECRET, 42, "email", datetime(2026, 12, 3, 12))


def test_the_unsubscribe_url_joins_the_public_base_and_the_token() -> None:
    token = make_unsubscribe_token(SECRET, 42, "email", ISSUED)
    assert unsubscribe_url("https://growth.example.com/", token) == f"https://growth.example.com/unsubscribe/{token}"
    assert unsubscribe_url("https://example.com/growth", "t") == "https://example.com/growth/unsubscribe/t"
