"""Referral rules (pure): each fraud check fires on its case and not on its near miss; qualification; status."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from growth.referrals import rules
from growth.referrals.rules import FirstInvestment, Flag, Party, ProgramSettings

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
S = ProgramSettings()


def party(i: int = 1, **kw: object) -> Party:
    values: dict[str, object] = {"phone": f"+8613800000{i:03d}", "device_id": f"dev-{i}", "ip": f"203.0.{i}.9",
                                 "registered_at": T0}
    values.update(kw)
    return Party(i, **values)  # type: ignore[arg-type]


# --- BLOCK -----------------------------------------------------------------------------------------


def test_the_same_phone_blocks_and_a_different_one_does_not():
    assert rules.same_phone(party(1), party(2, phone="+8613800000001")) == Flag("same_phone")
    assert rules.same_phone(party(1), party(2)) is None
    assert rules.same_phone(party(1, phone=None), party(2, phone=None)) is None


def test_the_same_device_blocks_and_a_different_or_missing_one_does_not():
    assert rules.same_device(party(1), party(2, device_id="dev-1")) == Flag("same_device")
    assert rules.same_device(party(1), party(2)) is None
    assert rules.same_device(party(1, device_id=None), party(2, device_id=None)) is None


def test_the_same_registration_address_blocks_however_it_is_written_and_a_neighbour_does_not():
    assert rules.same_ip(party(1, ip="2001:db8::1"), party(2, ip="2001:0db8:0:0::1")) == Flag("same_ip")
    assert rules.same_ip(party(1, ip="10.2.3.4"), party(2, ip="10.2.3.4")) == Flag("same_ip")
    assert rules.same_ip(party(1, ip="10.2.3.4"), party(2, ip="10.2.3.5")) is None
    assert rules.same_ip(party(1, ip="not an ip"), party(2, ip="not an ip")) is None


# --- FLAG ------------------------------------------------------------------------------------------


def test_a_shared_ipv4_slash_24_within_72_hours_is_flagged():
    near = party(2, ip="10.2.3.200", registered_at=T0 + timedelta(hours=71))
    flag = rules.shared_subnet(party(1, ip="10.2.3.4"), near, window_hours=72)
    assert flag == Flag("shared_subnet", {"network": "10.2.3.0/24", "hours": 71.0})


def test_a_shared_slash_24_further_apart_than_the_window_or_another_slash_24_is_not_flagged():
    late = party(2, ip="10.2.3.200", registered_at=T0 + timedelta(hours=72, seconds=1))
    assert rules.shared_subnet(party(1, ip="10.2.3.4"), late, window_hours=72) is None
    assert rules.shared_subnet(party(1, ip="10.2.3.4"), party(2, ip="10.2.4.4"), window_hours=72) is None
    # The very same address is a block (same_ip), not a subnet flag.
    assert rules.shared_subnet(party(1, ip="10.2.3.4"), party(2, ip="10.2.3.4"), window_hours=72) is None


def test_ipv6_addresses_are_compared_by_their_slash_64():
    a, b = party(1, ip="2001:db8:1:2::10"), party(2, ip="2001:db8:1:2:ffff::1")
    assert rules.shared_subnet(a, b, window_hours=72) == Flag("shared_subnet", {"network": "2001:db8:1:2::/64",
                                                                                "hours": 0.0})
    assert rules.shared_subnet(a, party(2, ip="2001:db8:1:3::10"), window_hours=72) is None


def test_more_than_k_referees_on_one_day_are_flagged_and_k_are_not():
    day = date(2026, 11, 2)
    assert rules.too_many_referees(6, day, limit=5) == Flag("too_many_referees",
                                                           {"day": "2026-11-02", "count": 6, "limit": 5})
    assert rules.too_many_referees(5, day, limit=5) is None


def test_a_referee_among_their_referrers_referrers_is_a_cycle_and_a_chain_is_not():
    users = {1: "a", 2: "b", 3: "c"}
    # a referred b referred c referred a: the record (referrer c, referee a) walks c -> b -> a.
    assert rules.referral_cycle(1, [3, 2, 1], users) == Flag("referral_cycle",
                                                            {"members": [1, 2, 3], "users": ["a", "c", "b"]})
    assert rules.referral_cycle(1, [2, 1], users) == Flag("referral_cycle", {"members": [1, 2], "users": ["a", "b"]})
    assert rules.referral_cycle(1, [3, 2], users) is None


def test_a_virtual_operator_prefix_is_flagged_and_an_ordinary_mobile_is_not():
    prefixes = ("170", "171", "162")
    assert rules.virtual_operator(party(2, phone="+8617012345678"), prefixes=prefixes) == Flag(
        "virtual_operator", {"prefix": "170"})
    assert rules.virtual_operator(party(2, phone="+8613812345678"), prefixes=prefixes) is None
    assert rules.virtual_operator(party(2, phone="+8617212345678"), prefixes=prefixes) is None  # 172 is not listed
    assert rules.virtual_operator(party(2, phone="+85217012345"), prefixes=prefixes) is None  # not mainland


# --- qualification -----------------------------------------------------------------------------------


def first(amount: int = 100_000, term: int = 30, at: datetime = T0 + timedelta(days=1),
          redeemed: datetime | None = None) -> FirstInvestment:
    return FirstInvestment("i1", amount, term, at, redeemed)


def test_a_first_investment_at_the_thresholds_inside_the_window_qualifies_with_its_hold():
    q = rules.qualify(T0, first(at=T0 + timedelta(days=30)), S)
    assert q == rules.Qualification("qualified", T0 + timedelta(days=30), T0 + timedelta(days=30),
                                    T0 + timedelta(days=60))


@pytest.mark.parametrize("investment", [
    first(amount=99_999), first(term=29), first(at=T0 + timedelta(days=30, seconds=1)),
])
def test_a_first_investment_below_the_amount_or_term_or_after_the_window_does_not_qualify(investment):
    assert rules.qualify(T0, investment, S).state == "not_qualifying"


def test_a_redemption_before_the_hold_ends_rejects_and_one_after_it_does_not():
    assert rules.qualify(T0, first(redeemed=T0 + timedelta(days=30, hours=23)), S).state == "redeemed_early"
    assert rules.qualify(T0, first(redeemed=T0 + timedelta(days=31)), S).state == "qualified"


def test_no_investment_yet_is_pending():
    assert rules.qualify(T0, None, S) == rules.Qualification("pending", T0 + timedelta(days=30))


def test_the_status_puts_blocks_first_then_staff_rejections_then_rules_then_review_then_the_feed():
    ok = rules.qualify(T0, first(), S)
    flag = [Flag("virtual_operator", {"prefix": "170"})]
    approved = rules.Decision("approved", "ok", "a@example.com", T0)
    rejected = rules.Decision("rejected", "no", "a@example.com", T0)
    confirmed = (T0 + timedelta(days=31), "staff")
    assert rules.status_of(ok, [Flag("same_ip"), *flag], approved, confirmed) == rules.Outcome("rejected", "blocked")
    assert rules.status_of(ok, flag, rejected, None) == rules.Outcome("rejected", "staff_rejected")
    assert rules.status_of(ok, flag, None, None) == rules.Outcome("in_review")
    assert rules.status_of(ok, flag, approved, None) == rules.Outcome("qualified")
    assert rules.status_of(ok, flag, approved, confirmed) == rules.Outcome("confirmed", None, *confirmed)
    assert rules.status_of(ok, [], None, None) == rules.Outcome("qualified")
    early = rules.qualify(T0, first(redeemed=T0 + timedelta(days=2)), S)
    assert rules.status_of(early, [], None, confirmed) == rules.Outcome("rejected", "redeemed_early")
    assert rules.confirmation_how(approved) == "staff" and rules.confirmation_how(None) == "automatic"


# --- settings, masking, K-factor ------------------------------------------------------------------------


def test_settings_parse_from_text_and_refuse_bad_values_naming_the_setting():
    s = rules.parse_settings({"qualify_amount": "2000.50", "virtual_prefixes": "170， 171 1700", "hold_days": "0"})
    assert (s.qualify_amount_fen, s.virtual_prefixes, s.hold_days) == (200_050, ("170", "171", "1700"), 0)
    assert rules.parse_settings(S.as_text()) == S
    for key, value in (("qualify_amount", "0"), ("qualify_amount", "1.234"), ("window_days", "0"),
                       ("max_referees_per_day", "abc"), ("virtual_prefixes", "17a"), ("nope", "1")):
        with pytest.raises(rules.SettingsError) as err:
            rules.parse_settings({key: value})
        assert err.value.key == key


def test_addresses_are_masked_to_their_first_two_parts():
    assert rules.mask_ip("10.2.3.4") == "10.2.*.*"
    assert rules.mask_ip("2001:db8:1:2::10") == "2001:db8:*"
    assert rules.mask_ip("garbage") == "****" and rules.mask_ip(None) == ""
    assert rules.mask_network("10.2.3.0/24") == "10.2.*.*/24"
    detail = {"code": "shared_subnet", "detail": {"network": "10.2.3.0/24", "hours": 5.0}}
    assert "10.2.3" not in rules.flag_detail_text(detail, reveal=False)
    assert "10.2.3.0/24" in rules.flag_detail_text(detail, reveal=True)


def test_the_k_factor_counts_referrals_by_cohort_members_within_their_window():
    monday = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 09:00 Monday in Shanghai
    members = [(1, monday), (2, monday + timedelta(days=1)), (3, monday + timedelta(days=7))]
    referrals = [(1, monday + timedelta(days=3)), (1, monday + timedelta(days=30)),
                 (1, monday + timedelta(days=30, seconds=1)),  # outside 30 days
                 (2, monday + timedelta(days=10)), (9, monday)]  # 9 is in no cohort
    weeks = rules.k_factors(members, referrals, window_days=30)
    assert [(w.week_start, w.cohort, w.referred) for w in weeks] == [
        (date(2026, 11, 2), 2, 3), (date(2026, 11, 9), 1, 0)]
    assert weeks[0].k_factor == 1.5 and weeks[1].k_factor == 0.0
