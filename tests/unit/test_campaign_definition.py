"""The campaign document of spec §2: what the schema accepts, what it refuses and where it says so."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_babel import Babel, force_locale

import growth
from campaigns.definition import DefinitionInvalid, dump, parse, window_contains

SPEC_EXAMPLE: dict[str, Any] = {
    "name": "新手礼包 12月",
    "type": "new_user",
    "class": "marketing",
    "trigger": {"on": "registered"},
    "audience": {"all": [{"field": "channel", "op": "in", "value": ["baidu_sem", "wechat_ad"]}]},
    "window": {"start": "2026-12-01T00:00:00+08:00", "end": "2026-12-31T23:59:59+08:00"},
    "entry": {"once": True},
    "holdout_percent": 10,
    "rewards": [{"kind": "voucher", "amount": "50.00", "min_investment": "5000.00",
                 "min_term_days": 30, "valid_days": 30}],
    "budget": {"max_grants": 1000, "max_amount": "50000.00", "per_investor": 1},
    "messages": [
        {"channel": "sms", "template_code": "SMS_2026120101",
         "params": {"name": "{{ investor.name }}", "amount": "{{ reward.amount }}"},
         "text": "{{ investor.name }}您好，{{ reward.amount }}元投资红包已到账，30天内有效。"
                 "投资有风险，理财需谨慎。回T退订"},
        {"channel": "email", "subject": "欢迎加入", "text": "...", "html": "..."},
        {"channel": "wechat", "kind": "template", "template_id": "tmpl_abc",
         "data": {"first": "{{ investor.name }}，红包已到账", "keyword1": "{{ reward.amount }}"}},
    ],
}


@pytest.fixture(scope="module")
def babel_app() -> Flask:
    app = Flask(__name__)
    Babel(app, default_translation_directories=str(Path(growth.__file__).parent / "translations"))
    return app


def problems(document: Any) -> dict[str, str]:
    with pytest.raises(DefinitionInvalid) as caught:
        parse(document)
    return {p.path: p.code for p in caught.value.problems}


def with_changes(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(SPEC_EXAMPLE)
    document.update(changes)
    return document


def test_the_spec_example_parses_with_money_in_fen_and_dumps_back_unchanged():
    definition = parse(SPEC_EXAMPLE)
    assert definition.rewards[0].amount == 5000
    assert definition.budget.max_amount == 5_000_000
    assert definition.marketing
    assert dump(definition) == SPEC_EXAMPLE


def test_every_reward_kind_and_audience_field_round_trips():
    document = with_changes(
        type="rate_boost",
        rewards=[
            {"kind": "cash", "amount": "8.88"},
            {"kind": "rate_boost", "annual_rate": "0.0100", "max_days": 30, "min_investment": "1000.00",
             "valid_days": 7},
            {"kind": "experience_funds", "amount": "10000.00", "annual_rate": "0.0800", "days": 3, "valid_days": 3},
            {"kind": "cashback", "rate": "0.0050", "hold_days": 30},
        ],
        audience={"all": [
            {"field": "channel", "op": "not_in", "value": ["organic"]},
            {"field": "registered_at", "op": "between", "value": ["2026-11-01", "2026-11-30"]},
            {"field": "registered_days_ago", "op": "between", "value": [0, 7]},
            {"field": "milestone", "op": "not_reached", "value": "first_investment", "within_days": 7},
            {"field": "investment_count", "op": "gte", "value": 1},
            {"field": "holdings", "op": "between", "value": ["0.00", "50000.00"]},
            {"field": "investment_total", "op": "lte", "value": "100000.00"},
            {"field": "maturity_within_days", "op": "lte", "value": 7},
            {"field": "inactive_days", "op": "gte", "value": 90},
            {"field": "consent", "op": "has", "value": "sms"},
            {"field": "tag", "op": "has", "value": "vip"},
        ]},
    )
    definition = parse(document)
    assert definition.rewards[1].annual_rate == 100
    assert definition.audience.all[5].value == (0, 5_000_000)
    assert dump(parse(dump(definition))) == dump(definition)
    assert dump(definition)["audience"] == document["audience"]


def test_unknown_fields_kinds_and_operators_are_refused_each_at_its_path():
    document = with_changes(
        colour="red",
        audience={"all": [{"field": "channel", "op": "eq", "value": ["x"]}, {"field": "favourite_food", "op": "in"}]},
        rewards=[{"kind": "gold_bar", "amount": "1.00"}, {"kind": "cash", "amount": "1.00", "bonus": 1}],
    )
    assert problems(document) == {
        "colour": "unknown_field",
        "audience.all[0].op": "unknown_operator",
        "audience.all[1]": "unknown_kind",
        "rewards[0]": "unknown_kind",
        "rewards[1].bonus": "unknown_field",
    }


def test_money_rates_and_numbers_must_be_of_the_contracts_types():
    document = with_changes(
        holdout_percent="10",
        rewards=[{"kind": "voucher", "amount": "50.001", "valid_days": 0},
                 {"kind": "rate_boost", "annual_rate": "1.5", "max_days": 30, "valid_days": 7}],
        budget={"max_grants": 0, "max_amount": 500},
    )
    assert problems(document) == {
        "holdout_percent": "invalid_type",
        "rewards[0].amount": "invalid_money",
        "rewards[0].valid_days": "too_small",
        "rewards[1].annual_rate": "invalid_rate",
        "budget.max_grants": "too_small",
        "budget.max_amount": "invalid_money",
    }


def test_holdout_is_at_most_fifty_percent():
    assert problems(with_changes(holdout_percent=51)) == {"holdout_percent": "too_large"}
    assert parse(with_changes(holdout_percent=50)).holdout_percent == 50


def test_a_campaign_has_exactly_one_of_trigger_or_schedule():
    both = with_changes(schedule={"at": "2026-12-05T10:00:00+08:00"})
    neither = copy.deepcopy(SPEC_EXAMPLE)
    del neither["trigger"]
    assert problems(both) == {"": "trigger_or_schedule"}
    assert problems(neither) == {"": "trigger_or_schedule"}


def test_a_cron_schedule_needs_a_window_end_and_a_valid_expression():
    document = copy.deepcopy(SPEC_EXAMPLE)
    del document["trigger"], document["window"]
    document["schedule"] = {"cron": "0 10 * * *"}
    assert problems(document) == {"": "cron_needs_end"}
    document["window"] = {"end": "2026-12-31T23:59:59+08:00"}
    assert parse(document).schedule.cron == "0 10 * * *"
    document["schedule"] = {"cron": "0 25 * * *"}
    assert problems(document) == {"schedule": "invalid_cron"}


def test_times_without_an_offset_and_windows_that_end_first_are_refused():
    assert problems(with_changes(window={"start": "2026-12-01T00:00:00"})) == {"window.start": "invalid_datetime"}
    backwards = {"start": "2026-12-31T00:00:00+08:00", "end": "2026-12-01T00:00:00+08:00"}
    assert problems(with_changes(window=backwards)) == {"window": "window_order"}


def test_investment_conditions_only_go_with_investment_triggers():
    assert problems(with_changes(trigger={"on": "registered", "conditions": {"min_amount": "100.00"}})) == {
        "trigger": "conditions_not_allowed"}
    definition = parse(with_changes(trigger={"on": "investment_created", "delay_minutes": 5,
                                             "conditions": {"min_amount": "100.00", "products": ["p1"]}}))
    assert definition.trigger is not None and definition.trigger.conditions is not None
    assert definition.trigger.conditions.min_amount == 10_000


def test_referral_rewards_say_who_gets_them_and_other_campaigns_do_not():
    referral = with_changes(type="referral", trigger={"on": "referral_confirmed"},
                            rewards=[{"kind": "cash", "amount": "20.00"}])
    assert problems(referral) == {"": "reward_to_missing"}
    referral["rewards"][0]["to"] = "referrer"
    assert parse(referral).rewards[0].to == "referrer"
    assert problems(with_changes(rewards=[{"kind": "cash", "amount": "1.00", "to": "referee"}])) == {
        "": "reward_to_not_allowed"}


def test_one_message_per_channel_and_wechat_kinds_carry_their_fields():
    twice = with_changes(messages=[{"channel": "sms", "text": "a回T退订"}, {"channel": "sms", "text": "b回T退订"}])
    assert problems(twice) == {"": "duplicate_channel"}
    assert problems(with_changes(messages=[{"channel": "wechat", "kind": "mass"}])) == {"messages[0]": "mass_text"}
    assert problems(with_changes(messages=[{"channel": "wechat", "kind": "template"}])) == {
        "messages[0]": "template_fields"}


def test_range_conditions_take_a_pair_for_between_and_one_value_otherwise():
    audience = {"all": [{"field": "investment_count", "op": "between", "value": 3},
                        {"field": "holdings", "op": "gte", "value": ["1.00", "2.00"]},
                        {"field": "registered_days_ago", "op": "between", "value": [9, 2]}]}
    assert problems(with_changes(audience=audience)) == {
        "audience.all[0]": "value_shape", "audience.all[1]": "value_shape", "audience.all[2]": "range_order"}


def test_a_document_that_is_not_an_object_is_refused_as_a_whole():
    assert problems(["not", "a", "campaign"]) == {"": "not_an_object"}


def test_every_problem_has_a_message_in_chinese_and_english(babel_app: Flask):
    document = with_changes(colour=1, holdout_percent=99, audience={"all": [{"field": "channel", "op": "eq",
                                                                            "value": ["x"]}]})
    with pytest.raises(DefinitionInvalid) as caught:
        parse(document)
    with babel_app.test_request_context(), force_locale("en"):
        english = [str(p.message) for p in caught.value.problems]
    with babel_app.test_request_context(), force_locale("zh_CN"):
        chinese = [str(p.message) for p in caught.value.problems]
    assert all(e and e.isascii() for e in english), english
    assert all(not c.isascii() for c in chinese), chinese


def test_the_window_contains_moments_between_its_start_and_end():
    from datetime import UTC, datetime
    definition = parse(SPEC_EXAMPLE)
    assert window_contains(definition, datetime(2026, 12, 10, tzinfo=UTC))
    assert not window_contains(definition, datetime(2026, 11, 30, 15, 59, tzinfo=UTC))
    assert window_contains(definition, datetime(2026, 11, 30, 16, 0, tzinfo=UTC))


# --- beyond spec §2: a CRM call as a trigger, a CRM task as a step --------------------------------------------

CALL_TRIGGER = {"on": "crm_call", "conditions": {"outcomes": ["interested", "invested"]}}


def test_a_crm_call_trigger_names_its_outcomes_and_dumps_back_unchanged():
    document = with_changes(trigger=CALL_TRIGGER, crm_task={"note": "回电介绍新手标", "due_hours": 48})
    definition = parse(document)
    assert definition.trigger is not None and definition.trigger.conditions is not None
    assert definition.trigger.conditions.outcomes == ["interested", "invested"]
    assert definition.crm_task is not None and definition.crm_task.due_hours == 48
    assert dump(definition) == document


def test_a_crm_call_trigger_without_outcomes_or_with_an_unknown_one_is_refused():
    assert problems(with_changes(trigger={"on": "crm_call"})) == {"trigger": "outcomes_missing"}
    assert problems(with_changes(trigger={"on": "crm_call", "conditions": {"outcomes": []}})) == {
        "trigger.conditions.outcomes": "too_short"}
    assert problems(with_changes(trigger={"on": "crm_call", "conditions": {"outcomes": ["happy"]}})) == {
        "trigger.conditions.outcomes[0]": "invalid_choice"}
    assert problems(with_changes(trigger={"on": "crm_call", "conditions": {"outcomes": ["refused", "refused"]}})) == {
        "trigger": "duplicate_outcome"}


def test_outcomes_belong_to_the_call_trigger_and_investment_conditions_to_investment_triggers():
    assert problems(with_changes(trigger={"on": "investment_created", "conditions": {"outcomes": ["refused"]}})) == {
        "trigger": "outcomes_not_allowed"}
    assert problems(with_changes(trigger={"on": "crm_call", "conditions": {
        "outcomes": ["refused"], "min_amount": "100.00"}})) == {"trigger": "conditions_not_allowed"}
    assert problems(with_changes(trigger={"on": "registered", "conditions": {}})) == {
        "trigger": "conditions_not_allowed"}


def test_the_spec_triggers_keep_their_names():
    from campaigns.definition import TRIGGERS
    spec = ["registered", "kyc_verified", "card_bound", "first_deposit", "first_investment", "repeat_investment",
            "investment_created", "investment_matured", "investment_redeemed", "referral_confirmed"]
    assert list(TRIGGERS) == [*spec, "crm_call"]


def test_a_crm_task_step_needs_a_note_and_a_due_time_within_a_month():
    assert problems(with_changes(crm_task={"note": "  "})) == {"crm_task": "blank_task_note"}
    assert problems(with_changes(crm_task={"due_hours": 24})) == {"crm_task.note": "missing"}
    assert problems(with_changes(crm_task={"note": "x", "due_hours": 721})) == {"crm_task.due_hours": "too_large"}
    assert problems(with_changes(crm_task={"note": "x" * 501})) == {"crm_task.note": "too_long"}
    assert parse(with_changes(crm_task={"note": "回电"})).crm_task.due_hours == 24  # type: ignore[union-attr]
