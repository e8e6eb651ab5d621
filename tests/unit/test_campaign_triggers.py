"""Trigger rules: what an event fires, and whether a campaign takes it (window, approval, backfill, conditions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from campaigns.definition import parse
from campaigns.triggers import Fire, Investment, conditions_met, due_at, fires, takes

T = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
APPROVED = datetime(2026, 12, 1, tzinfo=UTC)


def campaign(trigger: dict[str, Any], **extra: Any):  # type: ignore[no-untyped-def]
    return parse({"name": "c", "type": "new_user", "class": "service", "trigger": trigger, **extra})


CREATED = {"investment_id": "inv_1", "amount": "5000.00", "product": {"id": "p30", "name": "月月盈", "term_days": 30,
                                                                     "annual_rate": "0.0800"}}


def test_a_registration_fires_registered_only_when_it_is_the_milestone():
    assert fires("user.registered", T, {}, {"registered": T}) == [Fire("registered", "registered", T)]
    later = T + timedelta(hours=1)  # a second registration event, later than the milestone: nothing
    assert fires("user.registered", later, {}, {"registered": T}) == []


def test_an_investment_fires_investment_created_always_and_first_investment_when_it_is_the_first():
    found = fires("investment.created", T, CREATED, {"first_investment": T, "repeat_investment": None})
    assert [(f.on, f.cause) for f in found] == [("investment_created", "investment_created:inv_1"),
                                               ("first_investment", "first_investment")]
    assert found[0].investment == Investment("inv_1", 500_000, 30, "p30")
    second = fires("investment.created", T, {**CREATED, "investment_id": "inv_2"},
                   {"first_investment": T - timedelta(days=1), "repeat_investment": T})
    assert [f.on for f in second] == ["investment_created", "repeat_investment"]


def test_maturity_and_redemption_fire_per_investment_with_what_the_log_knows_of_it():
    known = Investment("inv_1", 500_000, 30, "p30")
    found = fires("investment.matured", T, {"investment_id": "inv_1", "amount": "5000.00"}, {}, known)
    assert [(f.on, f.cause, f.investment) for f in found] == [("investment_matured", "investment_matured:inv_1", known)]


def test_a_deposit_fires_first_deposit_only_as_the_milestone():
    assert [f.on for f in fires("funds.deposited", T, {"deposit_id": "d", "amount": "1.00"}, {"first_deposit": T})] == [
        "first_deposit"]
    assert fires("funds.withdrawn", T, {}, {}) == []


def test_a_campaign_takes_a_fire_only_when_active_inside_its_window_and_after_approval():
    window = {"start": "2026-12-01T00:00:00+08:00", "end": "2026-12-31T00:00:00+08:00"}
    c = campaign({"on": "registered"}, window=window)
    fire = Fire("registered", "registered", T)
    assert takes(c, fire, status="active", approved_at=APPROVED, accepted_at=T)
    assert not takes(c, fire, status="paused", approved_at=APPROVED, accepted_at=T)
    assert not takes(c, fire, status="active", approved_at=T + timedelta(seconds=1), accepted_at=T)
    before = Fire("registered", "registered", datetime(2026, 11, 30, 15, 59, tzinfo=UTC))  # 23:59 in Shanghai
    assert not takes(c, before, status="active", approved_at=datetime(2026, 11, 1, tzinfo=UTC), accepted_at=T)
    assert not takes(c, Fire("first_investment", "first_investment", T), status="active", approved_at=APPROVED,
                     accepted_at=T)


def test_an_event_accepted_more_than_72_hours_after_it_occurred_is_a_backfill_and_never_sends():
    c = campaign({"on": "registered"})
    fire = Fire("registered", "registered", T)
    assert takes(c, fire, status="active", approved_at=APPROVED, accepted_at=T + timedelta(hours=72))
    assert not takes(c, fire, status="active", approved_at=APPROVED, accepted_at=T + timedelta(hours=72, seconds=1))


def test_investment_conditions_check_amount_term_and_product():
    c = campaign({"on": "investment_created", "conditions": {"min_amount": "5000.00", "min_term_days": 30,
                                                             "products": ["p30", "p90"]}})
    assert conditions_met(c, Investment("i", 500_000, 30, "p30"))
    assert not conditions_met(c, Investment("i", 499_999, 30, "p30"))
    assert not conditions_met(c, Investment("i", 500_000, 29, "p30"))
    assert not conditions_met(c, Investment("i", 500_000, 30, "p7"))
    assert not conditions_met(c, None)
    assert conditions_met(campaign({"on": "investment_created"}), None)


def test_the_delay_counts_from_acceptance():
    assert due_at(campaign({"on": "registered", "delay_minutes": 30}), T) == T + timedelta(minutes=30)
    assert due_at(campaign({"on": "registered"}), T) == T


def test_a_crm_call_fires_once_per_call_and_a_campaign_takes_only_the_outcomes_it_lists():
    from campaigns.triggers import call_fire

    definition = campaign({"on": "crm_call", "conditions": {"outcomes": ["interested"]}})
    keen, cold = call_fire(7, "interested", T), call_fire(8, "not_interested", T)
    assert (keen.on, keen.cause, keen.occurred_at) == ("crm_call", "crm_call:7", T)
    assert takes(definition, keen, status="active", approved_at=APPROVED, accepted_at=T)
    assert not takes(definition, cold, status="active", approved_at=APPROVED, accepted_at=T)
    # A call before the approval fires nothing; a registration does not fire a call campaign.
    assert not takes(definition, call_fire(9, "interested", APPROVED - timedelta(seconds=1)), status="active",
                     approved_at=APPROVED, accepted_at=T)
    assert not takes(definition, Fire("registered", "registered", T), status="active", approved_at=APPROVED,
                     accepted_at=T)
    assert not conditions_met(definition, None)
