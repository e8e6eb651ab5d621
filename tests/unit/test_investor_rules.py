"""Masking and search rules for investors' personal data (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from growth.investors.rules import (
    format_phone,
    mask_email,
    mask_identifier,
    mask_ip,
    mask_name,
    mask_phone,
    mask_query,
    may_search,
    normalize_phone,
    prefix_end,
    search_terms,
    tail_shown,
)

# Masks write "*", so a value made only of stars would trivially "contain" its mask.
_TEXT = st.text(alphabet=st.characters(blacklist_characters="*", blacklist_categories=("Cs",)), min_size=1)
_DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=20)
_E164 = st.builds(lambda cc, rest: f"+{cc}{rest}", st.integers(1, 9), st.text(alphabet="0123456789", min_size=6,
                                                                                max_size=14))


@given(_TEXT)
def test_a_masked_name_never_contains_the_whole_name(name):
    assert name not in mask_name(name)


@given(st.one_of(_DIGITS, _E164, _TEXT, st.sampled_from(["+", "++", "+1"])))
def test_a_masked_phone_never_contains_the_whole_number_or_its_digits(phone):
    masked = mask_phone(phone)
    assert phone not in masked
    if phone.lstrip("+").isascii() and phone.lstrip("+").isdigit():
        assert phone.lstrip("+") not in masked.replace(" ", "")


@given(_E164)
def test_a_masked_phone_shows_at_most_the_last_4_digits_and_never_more_than_a_third(phone):
    national = "".join(c for c in mask_phone(phone) if c != "+")
    shown = sum(c.isdigit() for c in national)
    assert shown <= 4 and shown <= len(phone.lstrip("+")) // 3


@given(_TEXT, _TEXT)
def test_a_masked_email_never_contains_the_whole_address(local, domain):
    email = f"{local}@{domain}"
    assert email not in mask_email(email)


@given(_TEXT)
def test_a_masked_identifier_or_ip_never_contains_the_whole_value(value):
    assert value not in mask_identifier(value)
    assert value not in mask_ip(value)


@pytest.mark.parametrize(("phone", "masked"), [
    ("+8613800138000", "+86 138****8000"),
    ("+14155552671", "+********671"),   # 11 digits: 3 shown
    ("+442071838750", "+********8750"),
    ("+1234567", "+*****67"),            # the shortest E.164 number: 2 of 7 shown
    ("12", "**"),
    ("7", "*"),
])
def test_short_and_foreign_numbers_show_less_than_their_whole(phone, masked):
    assert mask_phone(phone) == masked


def test_a_phone_is_masked_and_revealed_in_one_layout():
    assert format_phone("+8613800138000") == "+86 13800138000"
    assert mask_phone("+8613800138000") == "+86 138****8000"
    assert format_phone("+14155552671") == "+14155552671"
    assert len(format_phone("+14155552671")) == len(mask_phone("+14155552671"))


@pytest.mark.parametrize(("name", "masked"), [("张三丰", "张**"), ("张三", "张*"), ("张", "*"), ("", "")])
def test_names_of_any_length_are_masked(name, masked):
    assert mask_name(name) == masked


def test_an_email_with_a_one_letter_local_part_is_hidden_whole():
    assert mask_email("zhang@example.com") == "z****@example.com"
    assert mask_email("z@example.com") == "****@example.com"


def test_ips_are_masked_like_click_ips_and_anything_else_is_hidden():
    assert mask_ip("203.0.113.7") == "203.0.113.*"
    assert mask_ip("2001:db8:85a3:0:0:8a2e:370:7334") == "2001:db8:85a3:*"
    assert mask_ip("::1") == "0:0:0:*"
    assert mask_ip("not an ip") == "****"


def test_a_device_id_keeps_at_most_its_last_4_characters():
    assert mask_identifier("dev-0123456789abcdef") == "****************cdef"
    assert mask_identifier("abc") == "**c"
    assert mask_identifier("ab") == "**"


@pytest.mark.parametrize("query", ["张三", "zhang san", "zhang", "z@example.com", "38000", "0013 8000", "138001380"])
def test_a_role_without_pii_cannot_search_by_name_email_or_phone_fragment(query):
    terms = search_terms(query, may_see_pii=False)
    assert terms.name is None and terms.email is None and terms.phone_suffix is None
    assert terms.withheld and terms.audited


@pytest.mark.parametrize("query", ["张三", "zhang san", "zhang", "z@example.com", "38000"])
def test_a_role_with_pii_searches_by_them_and_is_audited(query):
    terms = search_terms(query, may_see_pii=True)
    assert (terms.name or terms.email or terms.phone_suffix) and terms.audited and not terms.withheld


def test_every_role_may_search_by_id_referral_code_the_last_4_digits_or_a_whole_phone():
    for may_see_pii in (False, True):
        by_id = search_terms("u_100", may_see_pii=may_see_pii)
        assert by_id.platform_id_prefix == "u_100" and not by_id.audited and not by_id.withheld
        assert search_terms("abcd2345", may_see_pii=may_see_pii).referral_code == "ABCD2345"
        tail = search_terms("8000", may_see_pii=may_see_pii)
        assert tail.phone_suffix == "8000" and not tail.audited and not tail.withheld
        whole = search_terms("138 0013 8000", may_see_pii=may_see_pii)
        assert whole.phone == "+8613800138000" and whole.audited and not whole.withheld


@given(_DIGITS)
def test_no_digit_string_but_the_last_4_or_a_whole_number_matches_phones_without_pii(digits):
    terms = search_terms(digits, may_see_pii=False)
    if terms.phone_suffix is not None:
        assert len(terms.phone_suffix) == 4
    if terms.phone is not None:
        assert terms.phone == normalize_phone(digits)


def test_the_audit_log_records_a_query_masked():
    assert mask_query("13800138000") == "+86 138****8000"
    assert mask_query("张三丰") == "张**"
    assert mask_query("zhang@example.com") == "z****@example.com"
    assert "38000" not in mask_query("38000")


def test_searches_are_limited_within_a_sliding_window():
    now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    window = timedelta(minutes=1)
    recent = [now - timedelta(seconds=s) for s in (1, 20, 59)]
    assert may_search(recent, now=now, limit=4, window=window)
    assert not may_search(recent, now=now, limit=3, window=window)
    assert may_search(recent, now=now + timedelta(seconds=2), limit=3, window=window)  # the oldest left


@given(_E164)
def test_a_last_4_search_matches_for_a_role_without_pii_exactly_the_phones_whose_mask_shows_those_digits(phone):
    masked = mask_phone(phone)
    assert tail_shown(phone) == (masked.endswith(phone[-4:]) and "*" not in masked[-4:])


@given(st.text(min_size=1, max_size=6), st.text(max_size=6))
def test_the_range_from_a_prefix_to_its_end_holds_exactly_the_strings_that_start_with_it(prefix, other):
    end = prefix_end(prefix)
    for text in (prefix + other, other, other + prefix):
        inside = prefix <= text and (end is None or text < end)
        assert inside == text.startswith(prefix)


def test_a_name_or_email_is_searched_lower_cased_and_a_last_4_search_without_pii_only_where_the_mask_shows_it():
    assert search_terms("Zhang San", may_see_pii=True).name == "zhang san"
    assert search_terms("Li@Example.COM", may_see_pii=True).email == "li@example.com"
    assert search_terms("8000", may_see_pii=False).tail_shown_only
    assert not search_terms("8000", may_see_pii=True).tail_shown_only
