"""Pure rules for sign-in throttling and API tokens.

Sign-in throttling (see README.md, "Sign-in throttling"): failures are counted per account *and*
address, so one person mistyping, or an attacker guessing, slows down that pair only; a higher
ceiling per account, across all addresses, stops a guessing campaign spread over many addresses,
but never applies to an address the account signed in from recently. Failures age out of a sliding
window, attempts refused while throttled are not failures, and no wait is longer than 15 minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

MAX_BACKOFF = timedelta(minutes=15)
# An address the account signed in from this recently is its owner's: the per-account ceiling spares it.
KNOWN_ADDRESS_AGE = timedelta(days=30)
# A token's last use is stamped at most this often: polling clients must not turn every read into a write.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


def throttled_until(
    failures: Sequence[datetime], *, now: datetime, max_failures: int, window: timedelta
) -> datetime | None:
    """Return until when sign-in is refused, given one key's recent failure times; None if allowed.

    Below `max_failures` failures in `window` nothing happens; from then on each further failure
    doubles the wait after the latest one (30 s, 1 min, 2 min ... capped at 15 min).
    """
    recent = sorted(t for t in failures if now - t <= window)
    if len(recent) < max_failures:
        return None
    extra = len(recent) - max_failures
    backoff = min(timedelta(seconds=30) * (2 ** min(extra, 10)), MAX_BACKOFF)
    until = recent[-1] + backoff
    return until if until > now else None


def sign_in_blocked_until(
    *, pair_failures: Sequence[datetime], account_failures: Sequence[datetime], known_address: bool,
    now: datetime, max_failures: int, account_max_failures: int, window: timedelta,
) -> datetime | None:
    """Return until when a sign-in to one account from one address is refused; None if allowed.

    `pair_failures` are that account's recent failures from this address, `account_failures` its
    failures from every address; `known_address` tells whether the account signed in from here lately.
    """
    waits = [throttled_until(pair_failures, now=now, max_failures=max_failures, window=window)]
    if not known_address:
        waits.append(throttled_until(account_failures, now=now, max_failures=account_max_failures, window=window))
    blocked = [t for t in waits if t is not None]
    return max(blocked) if blocked else None


def token_is_live(*, revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> bool:
    """Tell whether a token may be used now: not revoked and not past its expiry."""
    return revoked_at is None and (expires_at is None or now < expires_at)


def token_needs_touch(last_used_at: datetime | None, *, now: datetime) -> bool:
    """Tell whether a token's last use is stale enough to stamp again."""
    return last_used_at is None or now - last_used_at >= TOKEN_TOUCH_INTERVAL
