"""A rate boost a budget with an amount limit could never grant: a warning at its field, not a compliance code."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from campaigns import compliance
from campaigns.definition import budget_problems, dump, parse
from campaigns.editor import check
from campaigns.fulfilment import terms_for

BOOST: dict[str, Any] = {"kind": "rate_boost", "annual_rate": "0.0100", "max_days": 30, "valid_days": 7}
BASE: dict[str, Any] = {
    "name": "加息周", "type": "rate_boost", "class": "marketing",
    "schedule": {"at": "2026-12-10T10:00:00+08:00"},
    "rewards": [{"kind": "cash", "amount": "5.00"}, BOOST],
    "budget": {"max_grants": 100, "max_amount": "2000.00"},
    "messages": [{"channel": "sms", "text": "{{ investor.name }}您好，加息券已到账。投资有风险，理财需谨慎。回T退订"}],
}


def problems(reward: dict[str, Any] | None = None, **changes: Any) -> list[tuple[str, str]]:
    document = copy.deepcopy(BASE)
    if reward is not None:
        document["rewards"][1] = {**BOOST, **reward}
    document.update(changes)
    return [(p.path, p.code) for p in check(document).compliance]


def test_a_scheduled_rate_boost_without_max_investment_under_an_amount_limit_is_flagged_at_its_field():
    assert problems() == [("rewards[1].max_investment", "max_investment_missing")]


def test_the_warning_is_not_a_compliance_code_so_submit_is_not_refused_by_it():
    assert compliance.check(parse(BASE)) == []


def test_a_max_investment_bounds_the_boost_and_settles_it():
    assert problems({"max_investment": "50000.00"}) == []


def test_without_an_amount_limit_an_unbounded_boost_is_fine():
    assert problems(budget={"max_grants": 100}) == []


@pytest.mark.parametrize("on", ["investment_created", "first_investment"])
def test_an_investment_trigger_bounds_the_boost_by_the_triggering_investment(on: str):
    assert problems(schedule=None, trigger={"on": on}) == []


def test_a_registration_trigger_does_not_bound_it():
    assert problems(schedule=None, trigger={"on": "registered"}) == [
        ("rewards[1].max_investment", "max_investment_missing")]


def test_a_max_investment_below_the_minimum_investment_is_flagged():
    assert problems({"min_investment": "5000.00", "max_investment": "1000.00"}) == [
        ("rewards[1].max_investment", "investment_range")]


def test_the_problem_does_not_stop_a_draft_from_parsing_and_the_field_round_trips():
    document = {**copy.deepcopy(BASE), "rewards": [{**BOOST, "max_investment": "50000.00"}]}
    definition = parse(document)
    assert dump(definition)["rewards"] == [{**BOOST, "max_investment": "50000.00"}]
    assert budget_problems(parse(BASE)) != []  # parse accepts it; the editor warns


def test_the_ledger_terms_of_a_boost_without_a_triggering_investment_carry_its_max_investment():
    definition = parse({**copy.deepcopy(BASE), "rewards": [{**BOOST, "max_investment": "50000.00"}]})
    kind, terms = terms_for(definition.rewards[0], None)
    assert kind == "rate_boost" and terms.max_investment_fen == 5_000_000
