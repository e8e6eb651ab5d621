"""The cohort tables from counts: months as integers, unreachable cells, the current month, shares of each base."""

from __future__ import annotations

from datetime import UTC, date, datetime
from fractions import Fraction

from dashboards.cohorts import month_bounds, month_index, month_key, month_start, reinvestment, retention


def test_a_month_index_round_trips_through_its_key_and_first_day():
    for day in (date(2026, 1, 31), date(2026, 12, 1), date(2000, 2, 29)):
        k = month_index(day)
        assert month_start(k) == day.replace(day=1)
        assert month_key(k) == day.strftime("%Y-%m")
    assert month_index(date(2026, 1, 1)) - month_index(date(2025, 12, 31)) == 1


def test_a_shanghai_month_starts_at_sixteen_hundred_utc_the_day_before():
    lo, hi = month_bounds(month_index(date(2026, 4, 1)), month_index(date(2026, 4, 1)))
    assert lo == datetime(2026, 3, 31, 16, 0, tzinfo=UTC) and hi == datetime(2026, 4, 30, 16, 0, tzinfo=UTC)


def test_cells_after_the_current_month_are_blank_and_the_current_month_is_incomplete():
    oct_, nov, dec = (month_index(date(2026, m, 1)) for m in (10, 11, 12))
    table = retention({oct_: (10, 4), nov: (5, 0)}, {(oct_, 0): 4, (oct_, 2): 1}, first=oct_, last=nov,
                      current=dec, base="investors")
    assert table.width == 3
    first, second = table.cohorts
    assert [c.investors if c else None for c in first.cells] == [4, 0, 1]
    assert [c.rate if c else None for c in first.cells] == [1, 0, Fraction(1, 4)]
    assert [c.incomplete for c in first.cells if c] == [False, False, True]
    assert second.cells[2] is None and second.cells[0] is not None and second.cells[0].rate is None  # no base
    by_registrations = retention({oct_: (10, 4)}, {(oct_, 0): 4}, first=oct_, last=oct_, current=dec,
                                 base="registrations")
    assert by_registrations.cohorts[0].cells[0].rate == Fraction(2, 5)  # type: ignore[union-attr]


def test_reinvestment_rows_cover_every_month_and_sum_into_the_total():
    sep, oct_ = month_index(date(2026, 9, 1)), month_index(date(2026, 10, 1))
    now = datetime(2026, 11, 3, tzinfo=UTC)
    result = reinvestment({oct_: (4, 400_000, 3)}, {oct_: (1, 2, 150_000)}, first=sep, last=oct_, days=7, now=now)
    assert [m.matured for m in result.months] == [0, 4]
    assert result.months[1].rate_by_count == Fraction(1, 3) and result.months[1].rate_by_amount == Fraction(3, 8)
    assert result.months[0].rate_by_count is None
    # October's last maturities (31 Oct 23:59:59 Shanghai) have their window open until 7 Nov.
    assert [m.incomplete for m in result.months] == [False, True] and result.total.incomplete
    assert (result.total.matured, result.total.reinvested_fen) == (4, 150_000)
