"""Sign-in throttling rule: a few failures are free, then the wait doubles up to a cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from growth.auth.rules import throttled_until

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
