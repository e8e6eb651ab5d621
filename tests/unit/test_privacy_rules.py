"""The pure rules of data protection: which fields are personal and how they are taken out."""

from __future__ import annotations

import pytest

from growth.config import Config, ConfigError
from growth.investors.rules import SEARCH_INDEX_COLUMNS
from growth.privacy import rules

BODY = {"id": "e1", "type": "user.registered", "occurred_at": "2026-12-01T10:00:00+08:00",
        "user": {"id": "u1", "phone": "13800000001", "name": "张三", "email": "z@example.com", "wechat_openid": "o1"},
        "data": {"channel_code": "baidu", "click_id": "c1", "referral_code": "R1", "device_id": "d1", "ip": "10.0.0.1"}}


def test_erasure_takes_every_personal_field_and_keeps_what_the_numbers_are_built_from():
    stripped = rules.strip_event(BODY)
    assert stripped.changed
    assert stripped.body["user"] == {"id": "u1"}
    assert stripped.body["data"] == {"channel_code": "baidu", "click_id": "c1", "referral_code": "R1"}
    assert BODY["user"]["phone"] == "13800000001"  # the input is not changed


def test_retention_keeps_the_values_the_investor_still_holds_a_phone_compared_normalised():
    keep = rules.keep_values({"phone": "+8613800000001", "name": "李四", "email": None})
    stripped = rules.strip_event(BODY, keep=keep, profile_only=True)
    assert stripped.body["user"] == {"id": "u1", "phone": "13800000001"}
    assert stripped.body["data"] == BODY["data"]


def test_an_event_without_personal_fields_is_unchanged():
    body = {"id": "e2", "type": "user.kyc_verified", "user": {"id": "u1"}}
    assert rules.strip_event(body) == rules.Stripped(body, False)


def test_consent_evidence_keeps_how_and_when_and_drops_the_words():
    assert rules.consent_evidence({"content": "TD 张三", "send_time": "2026-12-01 10:00:00", "sequence_id": "9"}) == {
        "send_time": "2026-12-01 10:00:00", "sequence_id": "9", "erased": True}
    assert rules.consent_evidence({"seq": 4}) == {"seq": 4}


def test_a_message_body_keeps_its_template_code_and_says_why_it_went():
    content = {"text": "张三您好", "template_code": "SMS_1", "params": {"name": "张三"}, "fallbacks": [{"x": 1}]}
    assert rules.message_content(content, why="erasure") == {"template_code": "SMS_1", "redacted": "erasure"}


def test_the_investor_columns_to_erase_include_each_stamp():
    assert rules.investor_erased_values() == dict.fromkeys(
        ("phone", "phone_at", "name", "name_at", "email", "email_at", "wechat_openid", "wechat_openid_at",
         "device_id", "registration_ip", "phone_index", "phone_tail_index", "name_index", "email_index"))


def test_retention_settings_come_from_the_environment_and_a_bad_one_stops_the_start(monkeypatch):
    monkeypatch.setenv("GROWTH_RETENTION_EVENT_PAYLOAD_DAYS", "0")
    monkeypatch.setenv("GROWTH_RETENTION_MESSAGE_BODY_DAYS", "90")
    values = Config.from_env()
    assert (values["RETENTION_EVENT_PAYLOAD_DAYS"], values["RETENTION_MESSAGE_BODY_DAYS"]) == (0, 90)
    monkeypatch.setenv("GROWTH_RETENTION_MESSAGE_BODY_DAYS", "-1")
    with pytest.raises(ConfigError, match="GROWTH_RETENTION_MESSAGE_BODY_DAYS"):
        Config.from_env()
    monkeypatch.setenv("GROWTH_RETENTION_MESSAGE_BODY_DAYS", "180")
    monkeypatch.setenv("GROWTH_RETENTION_JOB_SECONDS", "0")
    with pytest.raises(ConfigError, match="GROWTH_RETENTION_JOB_SECONDS"):
        Config.from_env()


# Fields of the stored events that are not personal: ids, codes, money, products, consent switches.
NOT_PERSONAL = {"id", "channel_code", "click_id", "referral_code", "deposit_id", "amount", "investment_id", "product",
                "reward_ids", "interest", "withdrawal_id", "channel", "granted"}


def test_every_field_the_log_stores_is_classified_personal_or_not():
    from growth.events.rules import DATA_FIELDS, USER_FIELDS

    stored = set(USER_FIELDS) | {f for fields in DATA_FIELDS.values() for f in fields}
    personal = set(rules.EVENT_USER_FIELDS) | set(rules.EVENT_DATA_FIELDS)
    assert stored == personal | NOT_PERSONAL  # a new stored field must be added to one side
    assert not personal & NOT_PERSONAL
    assert set(USER_FIELDS) - {"id"} == set(rules.EVENT_USER_FIELDS)


def test_every_investors_column_is_classified_personal_derived_or_not():
    from growth.investors.models import Investor

    columns = {c.key for c in Investor.__table__.columns}
    personal = {c for pair in rules.INVESTOR_PERSONAL_COLUMNS.items() for c in pair if c}
    derived = set(SEARCH_INDEX_COLUMNS)  # keyed hashes of the personal columns: they go with them
    not_personal = {"id", "platform_user_id", "referral_code", "registered_at", "kyc_verified_at", "card_bound_at",
                    "first_deposit_at", "first_investment_at", "repeat_investment_at", "channel_id", "click_id",
                    "channel_code_given", "referral_code_used", "referrer_id", "investment_count",
                    "investment_total_fen", "holdings_fen", "deposit_total_fen", "withdrawal_total_fen",
                    "last_activity_at", "erased_at"}
    assert columns == personal | derived | not_personal  # a new column must be classified here and in the rules
    assert set(rules.investor_erased_values()) == personal | derived
