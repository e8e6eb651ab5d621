"""Sign-in throttling rules: a few failures are free, then the wait doubles up to a cap; token rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from growth.auth.rules import sign_in_blocked_until, throttled_until, token_is_live, token_needs_touch

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def _until(failures: list[datetime], now: datetime = NOW, max_failures: int = 5) -> datetime | None:
    return throttled_until(failures, now=now, max_failures=max_failures, window=WINDOW)


def _seconds_ago(*seconds: int) -> list[datetime]:
    return [NOW - timedelta(seconds=s) for s in seconds]


def test_no_failures_means_no_wait():
    assert _until([]) is None


def test_fewer_failures_than_the_limit_mean_no_wait():
    assert _until(_seconds_ago(1, 2, 3, 4)) is None


def test_reaching_the_limit_means_a_30_second_wait_after_the_latest_failure():
    failures = _seconds_ago(50, 40, 30, 20, 10)
    assert _until(failures) == NOW - timedelta(seconds=10) + timedelta(seconds=30)


def test_each_further_failure_doubles_the_wait():
    waits = []
    for extra in range(4):
        failures = _seconds_ago(*range(5 + extra, 0, -1))  # the latest one second ago
        waits.append(_until(failures) - (NOW - timedelta(seconds=1)))
    assert waits == [timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]


def test_the_wait_is_capped_at_fifteen_minutes():
    failures = [NOW - timedelta(seconds=s) for s in range(40)]
    assert _until(failures) == NOW + timedelta(minutes=15)


def test_the_order_of_the_failures_does_not_matter():
    failures = _seconds_ago(10, 50, 30, 40, 20)
    assert _until(failures) == _until(sorted(failures))


def test_failures_older_than_the_window_do_not_count():
    old = [NOW - WINDOW - timedelta(seconds=s) for s in range(1, 10)]
    assert _until(old + _seconds_ago(1, 2)) is None


def test_a_failure_exactly_at_the_edge_of_the_window_still_counts():
    failures = [NOW - WINDOW] + _seconds_ago(4, 3, 2, 1)
    assert _until(failures) is not None


def test_once_the_wait_has_passed_sign_in_is_allowed_again():
    failures = _seconds_ago(50, 40, 30, 20, 10)
    until = _until(failures)
    assert until is not None
    assert _until(failures, now=until) is None
    assert _until(failures, now=until - timedelta(seconds=1)) == until


def test_the_limit_is_a_parameter():
    failures = _seconds_ago(3, 2, 1)
    assert _until(failures, max_failures=3) is not None
    assert _until(failures, max_failures=4) is None


def _blocked(pair: list[datetime], account: list[datetime], known: bool = False) -> datetime | None:
    return sign_in_blocked_until(pair_failures=pair, account_failures=account, known_address=known, now=NOW,
                                 max_failures=5, account_max_failures=20, window=WINDOW)


def test_five_failures_from_one_address_block_that_address():
    failures = _seconds_ago(5, 4, 3, 2, 1)
    assert _blocked(failures, failures) == NOW - timedelta(seconds=1) + timedelta(seconds=30)


def test_failures_from_other_addresses_block_only_past_the_account_ceiling():
    assert _blocked([], _seconds_ago(*range(1, 20))) is None
    assert _blocked([], _seconds_ago(*range(1, 21))) == NOW - timedelta(seconds=1) + timedelta(seconds=30)


def test_an_address_the_account_signed_in_from_is_spared_the_account_ceiling_but_not_its_own_limit():
    assert _blocked([], _seconds_ago(*range(1, 40)), known=True) is None
    assert _blocked(_seconds_ago(5, 4, 3, 2, 1), _seconds_ago(*range(1, 40)), known=True) is not None


def test_no_wait_is_ever_longer_than_fifteen_minutes():
    assert _blocked([], _seconds_ago(*range(1, 300))) == NOW - timedelta(seconds=1) + timedelta(minutes=15)


def test_a_token_is_live_until_revoked_or_expired():
    assert token_is_live(revoked_at=None, expires_at=None, now=NOW)
    assert token_is_live(revoked_at=None, expires_at=NOW + timedelta(seconds=1), now=NOW)
    assert not token_is_live(revoked_at=None, expires_at=NOW, now=NOW)
    assert not token_is_live(revoked_at=NOW - timedelta(days=1), expires_at=None, now=NOW)


def test_a_token_use_is_stamped_again_only_after_a_minute():
    assert token_needs_touch(None, now=NOW)
    assert not token_needs_touch(NOW - timedelta(seconds=59), now=NOW)
    assert token_needs_touch(NOW - timedelta(seconds=60), now=NOW)
