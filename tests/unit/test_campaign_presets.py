"""The type picker's presets: every type starts from a document that parses, passes compliance and fits the type."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from campaigns import compliance, presets
from campaigns.definition import CAMPAIGN_TYPES, parse

# Either side of midnight in Shanghai (16:00 UTC), so a preset never depends on the time of day.
MOMENTS = [datetime(2026, 12, 3, 15, 59, tzinfo=UTC), datetime(2026, 12, 3, 16, 1, tzinfo=UTC),
           datetime(2026, 12, 31, 23, 0, tzinfo=UTC)]


@pytest.mark.parametrize("now", MOMENTS)
@pytest.mark.parametrize("type_", CAMPAIGN_TYPES)
def test_every_preset_parses_and_passes_the_compliance_check(type_, now):
    definition = parse(presets.preset(type_, now=now))
    assert definition.type == type_
    assert compliance.check(definition) == []
    if definition.window is not None and definition.window.end is not None:
        assert definition.window.end > now
    if definition.schedule is not None and definition.schedule.at is not None:
        assert definition.schedule.at > now


def test_the_presets_are_what_each_type_promises():
    now = MOMENTS[0]
    new_user = parse(presets.preset("new_user", now=now))
    assert new_user.trigger is not None and new_user.trigger.on == "registered"
    assert {r.kind for r in new_user.rewards} == {"experience_funds", "voucher"}
    assert [m.channel for m in new_user.messages] == ["sms"]

    nudge = parse(presets.preset("first_investment_nudge", now=now))
    assert nudge.schedule is not None and nudge.schedule.cron
    assert {c.field for c in nudge.audience.all} == {"registered_days_ago", "milestone"}

    boost = parse(presets.preset("rate_boost", now=now))
    assert boost.trigger is not None and boost.trigger.on == "investment_created"
    assert boost.trigger.conditions is not None and boost.trigger.conditions.products
    assert [r.kind for r in boost.rewards] == ["rate_boost"]

    referral = parse(presets.preset("referral", now=now))
    assert referral.trigger is not None and referral.trigger.on == "referral_confirmed"
    assert {r.to for r in referral.rewards} == {"referrer", "referee"}

    cashback = parse(presets.preset("cashback", now=now))
    assert [(r.kind, r.hold_days) for r in cashback.rewards] == [("cashback", 30)]  # type: ignore[union-attr]

    maturity = parse(presets.preset("maturity_reinvest", now=now))
    assert [(c.field, c.op, c.value) for c in maturity.audience.all] == [("maturity_within_days", "lte", 7)]

    sleepy = parse(presets.preset("reactivation", now=now))
    assert ("inactive_days", "gte", 90) in [(c.field, c.op, c.value) for c in sleepy.audience.all]

    broadcast = parse(presets.preset("broadcast", now=now))
    assert broadcast.schedule is not None and broadcast.schedule.at is not None and not broadcast.rewards


def test_the_type_picker_has_one_card_per_type_in_the_spec_order():
    cards = presets.cards()
    assert [c["type"] for c in cards] == list(CAMPAIGN_TYPES)
    assert all(str(c["description"]) for c in cards)
