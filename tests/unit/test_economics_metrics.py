"""Pure channel-economics arithmetic: exact until the end, half-up to the fen once, null without a divisor."""

from __future__ import annotations

from fractions import Fraction

from dashboards.metrics import ChannelFigures, economics_json, economics_total, half_up, ratio_text


def test_half_up_rounds_a_half_fen_up_and_less_down():
    assert [half_up(n, 2) for n in (1, 3, 5)] == [1, 2, 3]
    assert half_up(182, 365) == 0 and half_up(183, 365) == 1


def test_the_total_is_rounded_from_exact_sums_not_from_rounded_rows():
    # Each channel's annualised amount is 0.4986 fen (rounds to 0); together they are 0.9973 fen (rounds to 1).
    a = ChannelFigures("a", "A", amount_term_fen_days=182)
    b = ChannelFigures("b", "B", amount_term_fen_days=182, cost_fen=3, first_investors=2)
    total = economics_total([a, b])
    assert (a.annualised_fen, b.annualised_fen, total.annualised_fen) == (0, 0, 1)
    assert total.code == "total" and total.cac_fen == 2  # 3 fen ÷ 2 = 1.5 → 2


def test_unit_costs_and_ratios_are_null_without_a_divisor():
    row = economics_json(ChannelFigures("x", "X"))
    assert (row["cac"], row["cost_per_registration"], row["annualised_per_yuan"], row["net_roi"]) == (
        None, None, None, None)
    assert (row["cost"], row["annualised_amount"], row["incentive_cost"]) == ("0.00", "0.00", "0.00")


def test_net_roi_counts_incentives_as_spend_and_may_be_negative():
    row = ChannelFigures("x", "X", cost_fen=10_000, incentive_fen=5_000, amount_term_fen_days=365 * 12_000)
    assert row.net_roi == Fraction(12_000 - 15_000, 15_000)
    assert economics_json(row)["net_roi"] == "-0.2000"
    assert economics_json(row)["annualised_per_yuan"] == "1.2000"


def test_ratios_are_shown_half_up_away_from_zero_at_four_places():
    assert ratio_text(Fraction(1, 20000)) == "0.0001" and ratio_text(Fraction(-1, 20000)) == "-0.0001"
    assert ratio_text(Fraction(1, 3)) == "0.3333" and ratio_text(None) is None


def test_payback_days_repay_the_spend_from_the_service_fees_at_the_first_windows_pace():
    from dashboards.metrics import parse_fee_rate, payback_days

    rate = parse_fee_rate("0.0250")
    assert rate == Fraction(1, 40)
    # ¥1,000 cost + ¥200 incentives; ¥365,000 invested for 365 days in a 30-day window: ¥365,000 annualised, whose
    # fees are ¥9,125 a window, so ¥1,200 is repaid after 30 × 1,200 ÷ 9,125 = 3.95 → 4 days.
    row = ChannelFigures("c", "C", cost_fen=100_000, incentive_fen=20_000, amount_term_fen_days=36_500_000 * 365)
    assert payback_days(row, fee_rate=rate, window_days=30) == 4
    assert economics_json(row, fee_rate=rate, window_days=30)["payback_days"] == 4
    # Exactly on a whole day stays that day; a fen more needs one more.
    exact = ChannelFigures("c", "C", cost_fen=912_500, amount_term_fen_days=36_500_000 * 365)
    assert payback_days(exact, fee_rate=rate, window_days=30) == 30
    more = ChannelFigures("c", "C", cost_fen=912_501, amount_term_fen_days=36_500_000 * 365)
    assert payback_days(more, fee_rate=rate, window_days=30) == 31
    # Nothing to repay, nothing invested, or no rate configured: no figure.
    assert payback_days(ChannelFigures("c", "C", amount_term_fen_days=1), fee_rate=rate, window_days=30) is None
    assert payback_days(ChannelFigures("c", "C", cost_fen=1), fee_rate=rate, window_days=30) is None
    assert economics_json(row)["payback_days"] is None


def test_a_service_fee_rate_must_be_a_decimal_between_zero_and_one():
    import pytest

    from dashboards.metrics import parse_fee_rate

    assert parse_fee_rate("") is None and parse_fee_rate(None) is None and parse_fee_rate("  ") is None
    for bad in ("2.5%", "0", "1", "-0.01", "abc", "NaN", "Infinity"):
        with pytest.raises(ValueError, match="between 0 and 1"):
            parse_fee_rate(bad)
