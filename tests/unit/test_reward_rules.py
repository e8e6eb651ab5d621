"""The ledger's pure rules: exact costs in fen (hand-computed), rounding once half-up, uses decided together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from growth.rewards import rules
from growth.rewards.models import parse_public_id, public_id
from growth.rewards.rules import Claim, RewardView, Terms

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
D = timedelta(days=1)


def test_a_rate_boost_costs_principal_times_rate_times_its_max_days_when_the_term_is_longer():
    # 10,000.00 yuan × 1.00 % × 30 / 365 = 8.2191… yuan -> 8.22
    assert rules.rate_boost_cost(1_000_000, 100, max_days=30, term_days=90) == 822


def test_a_rate_boost_costs_only_the_term_when_the_term_is_shorter_than_its_max_days():
    # 10,000.00 yuan × 1.00 % × 20 / 365 = 5.4794… yuan -> 5.48
    assert rules.rate_boost_cost(1_000_000, 100, max_days=30, term_days=20) == 548
    assert rules.rate_boost_cost(1_000_000, 100, max_days=30, term_days=30) == 822


def test_a_cost_of_exactly_half_a_fen_rounds_up_and_just_below_half_rounds_down():
    # 18.25 yuan × 10 % × 1 / 365 = 0.5 fen exactly -> 1 fen; 18.24 yuan -> 0.4997 fen -> 0
    assert rules.rate_boost_cost(1825, 1000, max_days=1, term_days=1) == 1
    assert rules.rate_boost_cost(1824, 1000, max_days=1, term_days=1) == 0
    # 2.5 fen -> 3 (half-up, not to even), 1.5 fen -> 2
    assert rules.rate_boost_cost(9125, 1000, max_days=1, term_days=1) == 3
    assert rules.experience_funds_cost(5475, 1000, 1) == 2


def test_cashback_costs_principal_times_rate_rounded_half_up_once():
    assert rules.cashback_cost(12345, 50) == 62  # 123.45 yuan × 0.5 % = 0.61725 yuan
    assert rules.cashback_cost(100, 50) == 1  # 0.5 fen
    assert rules.cashback_cost(500, 50) == 3  # 2.5 fen: up, not to the even 2
    assert rules.cashback_cost(99, 50) == 0  # 0.495 fen


def test_experience_funds_cost_only_their_interest():
    # 8,888.00 yuan × 8 % × 7 / 365 = 13.6364 yuan -> 13.64
    assert rules.experience_funds_cost(888_800, 800, 7) == 1364


def test_cash_and_vouchers_cost_their_amount():
    assert rules.cash_cost(5000) == 5000
    assert rules.voucher_cost(5000) == 5000


def test_rounding_happens_once_at_the_end_not_per_step():
    # Rounding the daily interest first would give 30 × round(27.397) = 810 fen; once at the end gives 822.
    assert rules.rate_boost_cost(1_000_000, 100, 30, 30) == 822


def test_the_budget_counts_face_value_and_for_rate_boost_and_cashback_their_maximum_cost():
    assert rules.budget_value("voucher", Terms(amount_fen=5000, valid_days=30)) == 5000
    assert rules.budget_value("experience_funds", Terms(amount_fen=888_800, annual_rate_bp=800, days=7)) == 888_800
    assert rules.budget_value("cashback", Terms(rate_bp=50, hold_days=30, principal_fen=12345,
                                                investment_id="i1")) == 62
    bounded = Terms(annual_rate_bp=100, max_days=30, valid_days=30, max_investment_fen=1_000_000)
    assert rules.budget_value("rate_boost", bounded) == 822
    assert rules.budget_value("rate_boost", Terms(annual_rate_bp=100, max_days=30, valid_days=30)) is None


def test_terms_a_kind_does_not_have_or_lacks_are_refused_by_field():
    with pytest.raises(rules.InvalidTerms) as missing:
        rules.check_terms("voucher", Terms(amount_fen=5000))
    assert missing.value.field == "valid_days"
    with pytest.raises(rules.InvalidTerms) as foreign:
        rules.check_terms("cash", Terms(amount_fen=5000, valid_days=3))
    assert foreign.value.field == "valid_days"
    with pytest.raises(rules.InvalidTerms) as negative:
        rules.check_terms("cash", Terms(amount_fen=-1))
    assert negative.value.field == "amount_fen"
    assert rules.check_terms("cash", Terms(amount_fen=1)) == Terms(amount_fen=1)


def test_a_voucher_is_usable_through_the_business_day_valid_days_after_its_grant():
    expires = rules.expires_at("voucher", Terms(amount_fen=1, valid_days=30), T0)
    assert expires == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)  # 1 January 00:00 in Shanghai
    assert rules.expires_at("cash", Terms(amount_fen=1), T0) is None


def _view(**kw: object) -> RewardView:
    values: dict[str, object] = {"id": 1, "investor_id": 7, "kind": "voucher", "granted_at": T0,
                                 "expires_at": T0 + 30 * D, "revoked_at": None, "min_investment_fen": 500_000,
                                 "max_investment_fen": None, "min_term_days": 30}
    values.update(kw)
    return RewardView(**values)  # type: ignore[arg-type]


def _claim(iid: str, at: datetime, amount: int = 500_000, term: int = 30, investor: int = 7) -> Claim:
    return Claim(iid, investor, at, amount, term)


def test_each_reason_a_use_is_invalid():
    ok = _claim("i", T0 + D)
    assert rules.use_problem(_view(), ok) is None
    assert rules.use_problem(None, ok) == "not_found"
    assert rules.use_problem(_view(), _claim("i", T0 + D, investor=8)) == "wrong_owner"
    assert rules.use_problem(_view(), _claim("i", T0 + 30 * D)) == "expired"
    assert rules.use_problem(_view(kind="cash"), ok) == "not_usable"
    assert rules.use_problem(_view(revoked_at=T0 + D), ok) == "not_usable"
    assert rules.use_problem(_view(revoked_at=T0 + 2 * D), ok) is None  # used before the revoke
    assert rules.use_problem(_view(), _claim("i", T0 + D, amount=499_999)) == "conditions_unmet"
    assert rules.use_problem(_view(), _claim("i", T0 + D, term=29)) == "conditions_unmet"
    assert rules.use_problem(_view(kind="rate_boost", max_investment_fen=600_000),
                             _claim("i", T0 + D, amount=600_001)) == "conditions_unmet"


def test_the_earliest_valid_use_wins_whatever_order_the_claims_come_in():
    claims = [_claim("b", T0 + 2 * D), _claim("a", T0 + 2 * D), _claim("c", T0 + D, amount=1), _claim("z", T0 + 3 * D)]
    for order in (claims, list(reversed(claims))):
        winner, reasons = rules.decide_claims(_view(), order)
        assert winner is not None and winner.investment_id == "a"  # tie on time: the smaller investment id
        assert reasons == {"a": None, "b": "not_usable", "c": "conditions_unmet", "z": "not_usable"}


def test_status_follows_the_entries_in_any_order():
    assert rules.derive_status({"granted"}) == "granted"
    assert rules.derive_status({"granted", "paid"}) == "paid"
    assert rules.derive_status({"granted", "expired", "redeemed"}) == "redeemed"  # used before it expired
    assert rules.derive_status({"granted", "paid", "clawed_back", "debt"}) == "clawed_back"
    assert rules.derive_status({"granted", "revoked"}) == "revoked"


def test_revoked_and_expired_rewards_cost_nothing_and_vouchers_only_once_used():
    terms = Terms(amount_fen=5000, valid_days=30)
    assert rules.derive_cost("voucher", "granted", terms, None) == 0
    assert rules.derive_cost("voucher", "redeemed", terms, 5000) == 5000
    assert rules.derive_cost("voucher", "expired", terms, None) == 0
    cashback = Terms(rate_bp=50, hold_days=30, principal_fen=12345, investment_id="i")
    assert rules.derive_cost("cashback", "paid", cashback, None) == 62
    assert rules.derive_cost("cashback", "clawed_back", cashback, None) == 0


def test_the_use_rate_is_the_settled_share_used_with_a_default_without_history():
    assert rules.use_rate(3, 1) == 0.75
    assert rules.use_rate(0, 0) == rules.DEFAULT_USE_RATE
    assert rules.expected_cost(rules.Outstanding("voucher", 2, 10_000, 10_000), 0.75) == 7500


def test_public_reward_ids_round_trip_and_anything_else_is_not_ours():
    assert public_id(42) == "rw_42"
    assert parse_public_id("rw_42") == 42
    for text in ("rw_", "rw_042", "RW_42", "rw_4x", "42", None, "rw_" + "9" * 30):
        assert parse_public_id(text) is None
