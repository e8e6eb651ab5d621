"""The pure figures of campaign results across campaigns: incremental annualised amounts, rounding, ordering."""

from __future__ import annotations

from fractions import Fraction

from campaigns.results import annualised, incremental_annualised, per_yuan_exact
from dashboards.campaign_results import CampaignResult, SideFigures, money, ordered, ratio


def test_annualised_is_amount_times_term_over_365_exactly():
    assert annualised(365 * 100_000) == 100_000
    assert annualised(100_000 * 30) == Fraction(3_000_000, 365)


def test_incremental_annualised_scales_the_holdout_to_the_treated_people():
    # Treated: 10 people, ¥10,000 for 365 days; holdout: 4 people, ¥2,000 for 365 days → 10,000 − 2,000 × 10/4.
    assert incremental_annualised(1_000_000 * 365, 10, 200_000 * 365, 4) == 500_000
    assert incremental_annualised(0, 10, 200_000 * 365, 4) == -500_000
    assert incremental_annualised(1, 0, 1, 4) is None and incremental_annualised(1, 4, 1, 0) is None


def test_per_yuan_needs_a_cost_and_an_increment():
    assert per_yuan_exact(Fraction(500_000), 10_000) == 50
    assert per_yuan_exact(None, 10_000) is None and per_yuan_exact(Fraction(5), 0) is None


def test_money_and_ratios_round_half_away_from_zero():
    assert money(Fraction(1, 2)) == "0.01" and money(Fraction(-1, 2)) == "-0.01"
    assert money(Fraction(-149, 1)) == "-1.49" and money(None) is None
    assert ratio(Fraction(1, 20000)) == "0.0001" and ratio(Fraction(-1, 20000)) == "-0.0001"


def _row(cid: int, treated: tuple[int, int], holdout: tuple[int, int], cost: int = 0) -> CampaignResult:
    return CampaignResult(cid, f"c{cid}", "new_user", "active", treated=SideFigures(treated[0], treated[0], treated[1]),
                          holdout=SideFigures(holdout[0], holdout[0], holdout[1]), cost_fen=cost)


def test_rows_without_a_lift_come_last_whichever_the_order():
    rows = [_row(1, (10, 5), (0, 0)), _row(2, (10, 5), (10, 1)), _row(3, (10, 2), (10, 1)), _row(4, (10, 9), (10, 1))]
    assert [r.id for r in ordered(rows, "lift", "desc")] == [4, 2, 3, 1]
    assert [r.id for r in ordered(rows, "lift", "asc")] == [3, 2, 4, 1]
    assert [r.id for r in ordered(rows, "members", "desc")] == [2, 3, 4, 1]  # ties by id
    assert [r.id for r in ordered(rows, "name", "asc")] == [1, 2, 3, 4]
