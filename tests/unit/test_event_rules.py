"""Per-event validation rules of the platform events API."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from growth.events.rules import (
    _DATA_CHECKS,
    EVENT_TYPES,
    FUTURE_TOLERANCE,
    MAX_BODY_BYTES,
    MAX_DEPTH,
    MAX_EVENTS,
    ValidEvent,
    split_envelope,
    validate_event,
)

NOW = datetime(2026, 12, 1, 2, 0, 0, tzinfo=UTC)

DATA_BY_TYPE: dict[str, dict | None] = {
    "user.registered": {
        "channel_code": "baidu_sem",
        "click_id": "clk_1",
        "referral_code": "ABCDEFGH",
        "device_id": "dev_1",
        "ip": "203.0.113.7",
    },
    "user.kyc_verified": {},
    "user.card_bound": {},
    "funds.deposited": {"deposit_id": "dep_1", "amount": "5000.00"},
    "investment.created": {
        "investment_id": "inv_1",
        "amount": "10000.00",
        "product": {"id": "p_90", "name": "稳盈90天", "term_days": 90, "annual_rate": "0.0850"},
        "reward_ids": ["rw_1", "rw_2"],
    },
    "investment.redeemed": {"investment_id": "inv_1", "amount": "10000.00"},
    "investment.matured": {"investment_id": "inv_1", "amount": "10000.00", "interest": "209.59"},
    "funds.withdrawn": {"withdrawal_id": "wd_1", "amount": "10209.59"},
    "user.consent_changed": {"channel": "sms", "granted": False},
}


def make_event(event_type: str = "investment.created", **overrides: object) -> dict:
    """Build a valid event of a type; keyword overrides replace top-level fields."""
    event: dict = {
        "id": "evt_01J9Z0001",
        "type": event_type,
        "occurred_at": "2026-11-30T10:15:00+08:00",
        "user": {
            "id": "u_10023",
            "phone": "+8613800138000",
            "name": "张三",
            "email": "z@example.com",
            "wechat_openid": "oAbc123",
        },
        "data": copy.deepcopy(DATA_BY_TYPE[event_type]),
    }
    event.update(overrides)
    return event


def errors_of(event: object) -> list[str]:
    """Validate an event that must be rejected and return its errors."""
    result = validate_event(event, NOW)
    assert isinstance(result, list), f"expected errors, got {result!r}"
    return result


def with_data(event_type: str, **fields: object) -> dict:
    """Build a valid event whose data fields are replaced by the given ones."""
    event = make_event(event_type)
    event["data"].update(fields)
    return event


def with_product(**fields: object) -> dict:
    """Build a valid investment.created whose product fields are replaced by the given ones."""
    event = make_event("investment.created")
    event["data"]["product"].update(fields)
    return event


def with_user(**fields: object) -> dict:
    """Build a valid event whose user fields are replaced by the given ones."""
    event = make_event()
    event["user"].update(fields)
    return event


# --- constants ---------------------------------------------------------------------------------


def test_the_nine_event_types_of_the_contract_are_known_and_each_has_a_data_check() -> None:
    assert set(DATA_BY_TYPE) == EVENT_TYPES
    assert _DATA_CHECKS.keys() == EVENT_TYPES


def test_the_limits_match_the_contract() -> None:
    assert MAX_EVENTS == 5000
    assert MAX_BODY_BYTES == 5 * 1024 * 1024
    assert timedelta(minutes=5) == FUTURE_TOLERANCE


# --- valid events ------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(DATA_BY_TYPE))
def test_a_valid_event_of_every_type_is_accepted(event_type: str) -> None:
    event = make_event(event_type)
    result = validate_event(event, NOW)
    assert result == ValidEvent(
        event_id="evt_01J9Z0001",
        type=event_type,
        occurred_at=datetime(2026, 11, 30, 2, 15, tzinfo=UTC),
        user_id="u_10023",
        payload=event,
    )


def test_the_payload_is_the_event_as_sent_and_the_event_object_is_untouched() -> None:
    event = make_event(user={"id": "u_1", "phone": "13800138000"})
    before = copy.deepcopy(event)
    result = validate_event(event, NOW)
    assert isinstance(result, ValidEvent)
    assert result.payload == event
    assert event == before


def test_the_payload_keeps_only_the_fields_the_spec_defines() -> None:
    event = make_event(user={"id": "u_1", "phone": "13800138000", "id_number": "110101199001011234"})
    spec_only = copy.deepcopy(event)
    event["data"]["bank_card"] = "6222021234567890123"
    event["data"]["product"]["issuer"] = "x"
    event["trace_id"] = "t1"
    before = copy.deepcopy(event)
    result = validate_event(event, NOW)
    assert isinstance(result, ValidEvent)
    assert result.payload == {**spec_only, "user": {"id": "u_1", "phone": "13800138000"}}
    assert event == before  # the caller's object is not changed


def test_an_event_nested_deeper_than_the_limit_is_rejected_with_the_path_of_the_field() -> None:
    deep: object = "x"
    for _ in range(MAX_DEPTH):
        deep = {"k": deep}
    event = make_event()
    event["data"]["extra"] = deep
    assert validate_event(event, NOW) == [f"data.extra: nested more than {MAX_DEPTH} levels deep"]
    event["data"]["extra"] = {"k": "x"}
    assert isinstance(validate_event(event, NOW), ValidEvent)


def test_occurred_at_is_converted_to_utc() -> None:
    result = validate_event(make_event(occurred_at="2026-11-30T00:30:00+08:00"), NOW)
    assert isinstance(result, ValidEvent)
    assert result.occurred_at == datetime(2026, 11, 29, 16, 30, tzinfo=UTC)
    assert result.occurred_at.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-30T02:15:00Z",
        "2026-11-30T02:15:00z",
        "2026-11-30t02:15:00Z",
        "2026-11-30T02:15:00+00:00",
        "2026-11-30T02:15:00-00:00",
        "2026-11-29T21:15:00-05:00",
        "2026-11-30T02:15:00.000Z",
        "2026-11-30T02:15:00.000000000Z",
    ],
)
def test_any_rfc_3339_spelling_of_the_same_instant_is_accepted(text: str) -> None:
    result = validate_event(make_event(occurred_at=text), NOW)
    assert isinstance(result, ValidEvent)
    assert result.occurred_at == datetime(2026, 11, 30, 2, 15, tzinfo=UTC)


def test_a_leap_second_is_accepted_as_the_last_representable_second() -> None:
    result = validate_event(make_event(occurred_at="2016-12-31T23:59:60Z"), NOW)
    assert isinstance(result, ValidEvent)
    assert result.occurred_at == datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def test_any_past_time_is_accepted_for_backfill() -> None:
    assert isinstance(validate_event(make_event(occurred_at="2001-01-01T00:00:00+08:00"), NOW), ValidEvent)


@pytest.mark.parametrize("event_type", ["user.kyc_verified", "user.card_bound", "user.registered"])
def test_missing_or_null_data_is_accepted_for_types_without_required_fields(event_type: str) -> None:
    missing = make_event(event_type)
    del missing["data"]
    assert isinstance(validate_event(missing, NOW), ValidEvent)
    assert isinstance(validate_event(make_event(event_type, data=None), NOW), ValidEvent)


def test_a_kyc_event_with_only_a_user_id_is_accepted() -> None:
    event = {
        "id": "e1",
        "type": "user.kyc_verified",
        "occurred_at": "2026-11-30T10:15:00+08:00",
        "user": {"id": "u"},
    }
    assert isinstance(validate_event(event, NOW), ValidEvent)


def test_optional_user_fields_may_be_absent_or_null() -> None:
    assert isinstance(validate_event(make_event(user={"id": "u_1"}), NOW), ValidEvent)
    nulls = {"id": "u_1", "phone": None, "name": None, "email": None, "wechat_openid": None}
    assert isinstance(validate_event(make_event(user=nulls), NOW), ValidEvent)


def test_a_bare_mainland_mobile_is_accepted_because_it_normalises() -> None:
    assert isinstance(validate_event(with_user(phone="138 0013 8000"), NOW), ValidEvent)


def test_optional_registration_fields_may_be_absent_or_null() -> None:
    event = make_event("user.registered", data={"channel_code": None, "click_id": None})
    assert isinstance(validate_event(event, NOW), ValidEvent)


def test_matured_interest_may_be_zero() -> None:
    for zero in ("0", "0.0", "0.00"):
        assert isinstance(validate_event(with_data("investment.matured", interest=zero), NOW), ValidEvent)


def test_reward_ids_may_be_absent_null_or_empty() -> None:
    event = make_event()
    del event["data"]["reward_ids"]
    assert isinstance(validate_event(event, NOW), ValidEvent)
    assert isinstance(validate_event(with_data("investment.created", reward_ids=None), NOW), ValidEvent)
    assert isinstance(validate_event(with_data("investment.created", reward_ids=[]), NOW), ValidEvent)


def test_unknown_extra_fields_are_ignored() -> None:
    event = make_event(extra=1)
    event["data"]["note"] = "x"
    event["user"]["vip"] = True
    assert isinstance(validate_event(event, NOW), ValidEvent)


@pytest.mark.parametrize("channel", ["sms", "email", "wechat"])
def test_every_consent_channel_is_accepted(channel: str) -> None:
    event = with_data("user.consent_changed", channel=channel, granted=True)
    assert isinstance(validate_event(event, NOW), ValidEvent)


# --- the future tolerance ----------------------------------------------------------------------


def test_an_event_exactly_five_minutes_in_the_future_is_accepted() -> None:
    at = (NOW + timedelta(minutes=5)).isoformat()
    assert isinstance(validate_event(make_event(occurred_at=at), NOW), ValidEvent)


def test_an_event_five_minutes_and_one_second_in_the_future_is_rejected() -> None:
    at = (NOW + timedelta(minutes=5, seconds=1)).isoformat()
    assert errors_of(make_event(occurred_at=at)) == ["occurred_at: more than 5 minutes in the future"]


def test_the_future_check_compares_instants_not_wall_clocks() -> None:
    # 10:04+08:00 is 02:04Z, inside the tolerance even though 10:04 > 02:00 on the wall clock.
    assert isinstance(validate_event(make_event(occurred_at="2026-12-01T10:04:00+08:00"), NOW), ValidEvent)
    assert errors_of(make_event(occurred_at="2026-12-01T10:06:00+08:00")) == [
        "occurred_at: more than 5 minutes in the future"
    ]


# --- envelope field errors ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 1, "a", [], True])
def test_a_non_object_event_is_rejected(value: object) -> None:
    assert errors_of(value) == ["event: must be an object"]


def test_an_empty_object_reports_every_missing_field() -> None:
    assert errors_of({}) == ["id: required", "type: required", "occurred_at: required", "user: required"]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (None, "id: required"),
        (17, "id: must be a string"),
        ("", "id: must not be empty"),
        ("   ", "id: must not be empty"),
        ("x" * 201, "id: at most 200 characters"),
    ],
)
def test_a_bad_event_id_is_rejected_with_its_path(value: object, error: str) -> None:
    assert errors_of(make_event(id=value)) == [error]


def test_an_event_id_of_200_characters_is_accepted() -> None:
    assert isinstance(validate_event(make_event(id="x" * 200), NOW), ValidEvent)


def test_an_unknown_type_is_rejected_and_quoted() -> None:
    assert errors_of(make_event(type="foo")) == ["type: unknown event type 'foo'"]


def test_an_unknown_type_is_rejected_without_judging_its_data() -> None:
    assert errors_of(make_event(type="foo", data=[1])) == ["type: unknown event type 'foo'"]


def test_a_very_long_unknown_type_is_clipped_in_the_error() -> None:
    (error,) = errors_of(make_event(type="x" * 10_000))
    assert len(error) < 100


def test_a_non_string_type_is_rejected() -> None:
    assert errors_of(make_event(type=["investment.created"])) == ["type: must be a string"]


@pytest.mark.parametrize(
    "text", ["2026-11-30T10:15:00", "2026-11-30 10:15:00", "2026-11-30T10:15", "2026-11-30T10:15:00.5"]
)
def test_a_naive_timestamp_is_rejected(text: str) -> None:
    assert errors_of(make_event(occurred_at=text)) == [
        "occurred_at: must include a UTC offset such as +08:00 or Z"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-30",
        "2026-11-30T10:15+08:00",
        "2026-11-30 10:15:00+08:00",
        "20261130T101500Z",
        "2026-W48-1T10:15:00Z",
        "2026-11-30T10:15:00+0800",
        "2026-11-30T10:15:00+08",
        "2026-11-30T10:15:00+08:00\n",
        "2026-11-30T10:15:00.+08:00",
        "yesterday",
        "",
    ],
)
def test_a_timestamp_that_is_not_rfc_3339_is_rejected(text: str) -> None:
    assert errors_of(make_event(occurred_at=text)) == [
        "occurred_at: must be an RFC 3339 string such as 2026-11-30T10:15:00+08:00"
    ]


@pytest.mark.parametrize("value", [1732932900, 1.5, True, {"at": "x"}])
def test_a_non_string_timestamp_is_rejected(value: object) -> None:
    assert errors_of(make_event(occurred_at=value)) == [
        "occurred_at: must be an RFC 3339 string such as 2026-11-30T10:15:00+08:00"
    ]


@pytest.mark.parametrize(
    "text", ["2026-02-30T10:15:00Z", "2026-11-30T24:00:00Z", "2026-11-30T10:15:00+24:00"]
)
def test_an_impossible_date_or_time_is_rejected(text: str) -> None:
    assert errors_of(make_event(occurred_at=text)) == ["occurred_at: not a valid date and time"]


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_timestamp_without_a_utc_equivalent_is_rejected(text: str) -> None:
    assert errors_of(make_event(occurred_at=text)) == ["occurred_at: out of range"]


@pytest.mark.parametrize(
    ("user", "error"),
    [
        ("u_1", "user: must be an object"),
        ({}, "user.id: required"),
        ({"id": None}, "user.id: required"),
        ({"id": 10023}, "user.id: must be a string"),
        ({"id": ""}, "user.id: must not be empty"),
        ({"id": "u" * 201}, "user.id: at most 200 characters"),
    ],
)
def test_a_bad_user_is_rejected_with_its_path(user: object, error: str) -> None:
    assert errors_of(make_event(user=user)) == [error]


def test_a_missing_user_is_rejected() -> None:
    event = make_event()
    del event["user"]
    assert errors_of(event) == ["user: required"]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("phone", "12345", "user.phone: must be an E.164 number such as +8613800138000"),
        ("phone", "", "user.phone: must be an E.164 number such as +8613800138000"),
        ("phone", 8613800138000, "user.phone: must be a string"),
        ("name", 5, "user.name: must be a string"),
        ("name", "名" * 101, "user.name: at most 100 characters"),
        ("email", "no-at.example.com", "user.email: must be an email address such as z@example.com"),
        ("email", "a@b@example.com", "user.email: must be an email address such as z@example.com"),
        ("email", "@example.com", "user.email: must be an email address such as z@example.com"),
        ("email", "z@", "user.email: must be an email address such as z@example.com"),
        ("email", "", "user.email: must be an email address such as z@example.com"),
        ("email", "z@" + "e" * 253, "user.email: at most 254 characters"),
        ("email", ["z@example.com"], "user.email: must be a string"),
        ("wechat_openid", "o" * 129, "user.wechat_openid: at most 128 characters"),
        ("wechat_openid", 1, "user.wechat_openid: must be a string"),
    ],
)
def test_a_bad_optional_user_field_is_rejected_with_its_path(field: str, value: object, error: str) -> None:
    assert errors_of(with_user(**{field: value})) == [error]


def test_user_fields_at_their_maximum_length_are_accepted() -> None:
    event = with_user(name="名" * 100, email="z@" + "e" * 252, wechat_openid="o" * 128, id="u" * 200)
    assert isinstance(validate_event(event, NOW), ValidEvent)


# --- data errors -------------------------------------------------------------------------------


DATA_OPTIONAL_TYPES = {"user.kyc_verified", "user.card_bound", "user.registered"}


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES - DATA_OPTIONAL_TYPES))
def test_missing_data_is_rejected_for_types_with_required_fields(event_type: str) -> None:
    event = make_event(event_type)
    del event["data"]
    assert errors_of(event) == ["data: required"]


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_non_object_data_is_rejected_for_every_type(event_type: str) -> None:
    assert errors_of(make_event(event_type, data=["x"])) == ["data: must be an object"]


@pytest.mark.parametrize(
    ("event_type", "field"),
    [
        ("funds.deposited", "deposit_id"),
        ("funds.deposited", "amount"),
        ("investment.created", "investment_id"),
        ("investment.created", "amount"),
        ("investment.created", "product"),
        ("investment.redeemed", "investment_id"),
        ("investment.redeemed", "amount"),
        ("investment.matured", "investment_id"),
        ("investment.matured", "amount"),
        ("investment.matured", "interest"),
        ("funds.withdrawn", "withdrawal_id"),
        ("funds.withdrawn", "amount"),
        ("user.consent_changed", "channel"),
        ("user.consent_changed", "granted"),
    ],
)
def test_a_missing_required_data_field_is_rejected_with_its_path(event_type: str, field: str) -> None:
    event = make_event(event_type)
    del event["data"][field]
    assert errors_of(event) == [f"data.{field}: required"]
    assert errors_of(with_data(event_type, **{field: None})) == [f"data.{field}: required"]


@pytest.mark.parametrize("field", ["id", "name", "term_days", "annual_rate"])
def test_a_missing_product_field_is_rejected_with_its_path(field: str) -> None:
    event = make_event()
    del event["data"]["product"][field]
    assert errors_of(event) == [f"data.product.{field}: required"]


def test_an_amount_with_three_decimals_is_rejected_with_its_path() -> None:
    event = with_data("funds.deposited", amount="100.001")
    assert errors_of(event) == ["data.amount: at most 2 decimal places"]


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("0", "data.amount: must be greater than 0"),
        ("0.00", "data.amount: must be greater than 0"),
        ("-5.00", 'data.amount: must be a decimal string such as "1000.00"'),
        ("1,000.00", 'data.amount: must be a decimal string such as "1000.00"'),
        ("01.00", 'data.amount: must be a decimal string such as "1000.00"'),
        ("1e3", 'data.amount: must be a decimal string such as "1000.00"'),
        ("", 'data.amount: must be a decimal string such as "1000.00"'),
        ("100.00\n", 'data.amount: must be a decimal string such as "1000.00"'),
        (100, 'data.amount: must be a decimal string such as "1000.00"'),
        (100.5, 'data.amount: must be a decimal string such as "1000.00"'),
        (True, 'data.amount: must be a decimal string such as "1000.00"'),
    ],
)
def test_a_bad_amount_is_rejected_with_its_path(amount: object, error: str) -> None:
    assert errors_of(with_data("funds.withdrawn", amount=amount)) == [error]


@pytest.mark.parametrize(
    ("interest", "error"),
    [
        ("-1.00", 'data.interest: must be a decimal string such as "1000.00"'),
        ("0.000", "data.interest: at most 2 decimal places"),
        ("0\n", 'data.interest: must be a decimal string such as "1000.00"'),
        (0, 'data.interest: must be a decimal string such as "1000.00"'),
    ],
)
def test_a_bad_interest_is_rejected_with_its_path(interest: object, error: str) -> None:
    assert errors_of(with_data("investment.matured", interest=interest)) == [error]


@pytest.mark.parametrize("term_days", [True, False, 0, -30, 90.0, "90", [90]])
def test_a_term_that_is_not_a_positive_integer_is_rejected_bool_included(term_days: object) -> None:
    assert errors_of(with_product(term_days=term_days)) == [
        "data.product.term_days: must be a positive integer"
    ]


@pytest.mark.parametrize(
    ("rate", "error"),
    [
        ("8.5%", 'data.product.annual_rate: must be a decimal fraction string such as "0.0850"'),
        (0.085, 'data.product.annual_rate: must be a decimal fraction string such as "0.0850"'),
        ("0.0850\n", 'data.product.annual_rate: must be a decimal fraction string such as "0.0850"'),
        ("0.08505", "data.product.annual_rate: at most 4 decimal places (basis points)"),
        ("0", "data.product.annual_rate: must be between 0 and 1 (exclusive)"),
        ("1.0", "data.product.annual_rate: must be between 0 and 1 (exclusive)"),
    ],
)
def test_a_bad_annual_rate_is_rejected_with_its_path(rate: object, error: str) -> None:
    assert errors_of(with_product(annual_rate=rate)) == [error]


@pytest.mark.parametrize(
    ("product", "error"),
    [("p_90", "data.product: must be an object"), ([], "data.product: must be an object")],
)
def test_a_product_that_is_not_an_object_is_rejected(product: object, error: str) -> None:
    assert errors_of(with_data("investment.created", product=product)) == [error]


def test_bad_product_id_and_name_are_rejected_with_their_paths() -> None:
    assert errors_of(with_product(id=90, name="")) == [
        "data.product.id: must be a string",
        "data.product.name: must not be empty",
    ]


@pytest.mark.parametrize(
    ("reward_ids", "errors"),
    [
        ("rw_1", ["data.reward_ids: must be a list of strings"]),
        ({"id": "rw_1"}, ["data.reward_ids: must be a list of strings"]),
        (["rw_1", 2, ""], ["data.reward_ids[1]: must be a string", "data.reward_ids[2]: must not be empty"]),
    ],
)
def test_bad_reward_ids_are_rejected_with_their_paths(reward_ids: object, errors: list[str]) -> None:
    assert errors_of(with_data("investment.created", reward_ids=reward_ids)) == errors


def test_a_huge_list_of_bad_reward_ids_reports_only_the_first_ten() -> None:
    assert len(errors_of(with_data("investment.created", reward_ids=[0] * 100_000))) == 10


@pytest.mark.parametrize("field", ["channel_code", "click_id", "referral_code", "device_id", "ip"])
def test_a_bad_registration_field_is_rejected_with_its_path(field: str) -> None:
    assert errors_of(with_data("user.registered", **{field: 7})) == [f"data.{field}: must be a string"]
    too_long = with_data("user.registered", **{field: "x" * 201})
    assert errors_of(too_long) == [f"data.{field}: at most 200 characters"]


@pytest.mark.parametrize("channel", ["SMS", "phone", "", 1, ["sms"], {"sms": 1}])
def test_an_unknown_consent_channel_is_rejected(channel: object) -> None:
    assert errors_of(with_data("user.consent_changed", channel=channel)) == [
        "data.channel: must be one of sms, email, wechat"
    ]


@pytest.mark.parametrize("granted", [1, 0, "true", "yes", []])
def test_a_non_boolean_consent_is_rejected(granted: object) -> None:
    event = with_data("user.consent_changed", granted=granted)
    assert errors_of(event) == ["data.granted: must be true or false"]


def test_all_errors_of_an_event_are_collected_not_just_the_first() -> None:
    event = make_event(id="", occurred_at="2026-11-30T10:15:00", user={"id": "u", "phone": "1"})
    product = {"id": "p", "name": "n", "term_days": True, "annual_rate": "x"}
    event["data"] = {"amount": "1.234", "product": product}
    assert errors_of(event) == [
        "id: must not be empty",
        "occurred_at: must include a UTC offset such as +08:00 or Z",
        "user.phone: must be an E.164 number such as +8613800138000",
        "data.investment_id: required",
        "data.amount: at most 2 decimal places",
        "data.product.term_days: must be a positive integer",
        'data.product.annual_rate: must be a decimal fraction string such as "0.0850"',
    ]


# --- robustness --------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=500)
@given(json_values)
def test_validate_event_never_raises_on_arbitrary_json(value: object) -> None:
    result = validate_event(value, NOW)
    assert isinstance(result, ValidEvent) or (isinstance(result, list) and result)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict:
    """Draw a valid event of any type with one field, at any depth, replaced by arbitrary JSON."""
    event = make_event(draw(st.sampled_from(sorted(EVENT_TYPES))))
    containers = [event, event["user"], event["data"]]
    if isinstance(event["data"].get("product"), dict):
        containers.append(event["data"]["product"])
    target = draw(st.sampled_from(containers))
    keys = sorted(target) + ["id", "type", "data", "amount", "interest", "channel", "granted", "phone"]
    target[draw(st.sampled_from(keys))] = draw(json_values)
    return event


@settings(max_examples=1000)
@given(mutated_events())
def test_validate_event_never_raises_on_events_with_any_field_replaced_by_arbitrary_json(event: dict) -> None:
    result = validate_event(event, NOW)
    assert isinstance(result, ValidEvent) or (isinstance(result, list) and result)
    errors = result if isinstance(result, list) else []
    assert all(isinstance(error, str) and ": " in error for error in errors)


@given(st.text())
def test_any_string_timestamp_is_accepted_only_as_an_aware_utc_datetime(text: str) -> None:
    result = validate_event(make_event(occurred_at=text), NOW)
    if isinstance(result, ValidEvent):
        assert result.occurred_at.tzinfo is UTC
        assert result.occurred_at <= NOW + FUTURE_TOLERANCE
    else:
        assert len(result) == 1 and result[0].startswith("occurred_at: ")


# --- split_envelope ----------------------------------------------------------------------------


def test_a_single_event_object_is_its_own_one_event_batch() -> None:
    event = make_event()
    assert split_envelope(event) == [event]


def test_an_envelope_yields_its_events_list() -> None:
    events = [make_event(), {"id": 1}, "not even an object"]
    assert split_envelope({"events": events}) is events


def test_an_empty_envelope_yields_no_events() -> None:
    assert split_envelope({"events": []}) == []


@pytest.mark.parametrize("events", [None, {"id": "e"}, "evt", 1])
def test_an_envelope_whose_events_is_not_a_list_is_refused(events: object) -> None:
    assert split_envelope({"events": events}) is None


def test_any_other_object_is_taken_as_one_event_to_be_judged_per_event() -> None:
    assert split_envelope({}) == [{}]
    assert split_envelope({"event": []}) == [{"event": []}]


@pytest.mark.parametrize("doc", [[make_event()], "x", 1, 1.5, True, None])
def test_a_body_that_is_neither_an_object_nor_an_envelope_is_refused(doc: object) -> None:
    assert split_envelope(doc) is None


def test_every_event_type_has_one_label_and_one_field_list():
    from growth.events.rules import DATA_FIELDS, EVENT_TYPE_LABELS, EVENT_TYPES

    assert set(DATA_FIELDS) == set(EVENT_TYPE_LABELS) == EVENT_TYPES
