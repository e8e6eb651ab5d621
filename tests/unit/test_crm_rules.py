"""CRM rules: settings, cutoffs, SLA states and round-robin assignment under caps, with no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from growth.crm.rules import CrmSettings, SettingsError, assign, cutoffs, parse_settings, sla_state

NOW = datetime(2026, 12, 3, 20, 0, tzinfo=UTC)  # 04:00 on 4 December in Shanghai


def test_settings_round_trip_through_their_text():
    settings = CrmSettings(no_kyc_days=2, large_amount_fen=1_234_500, open_task_cap=7)

    assert parse_settings(settings.as_text()) == settings


@pytest.mark.parametrize(("key", "value"), [("no_kyc_days", "0"), ("open_task_cap", "x"), ("large_amount", "-1"),
                                            ("nonsense", "1")])
def test_a_bad_setting_is_refused_with_its_key(key, value):
    with pytest.raises(SettingsError) as err:
        parse_settings({key: value})
    assert err.value.key == key


def test_cutoffs_count_back_from_now_and_maturity_in_shanghai_days():
    cut = cutoffs(CrmSettings(), NOW)

    assert cut.no_kyc_before == NOW - timedelta(days=1)
    assert cut.no_investment_before == NOW - timedelta(days=3)
    assert (cut.maturing_from, cut.maturing_to) == (date(2026, 12, 4), date(2026, 12, 11))
    assert cut.due_at == NOW + timedelta(hours=24)


def test_a_task_is_due_then_overdue_then_breached_a_day_after_its_due_time():
    due = NOW

    assert sla_state(due, NOW) == "due"
    assert sla_state(due, NOW + timedelta(hours=23)) == "overdue"
    assert sla_state(due, NOW + timedelta(days=1, seconds=1)) == "breached"


def test_tasks_go_round_robin_after_the_last_agent_given_one():
    plan = assign([(1, 101), (2, 102), (3, 103), (4, 104)], agents=[10, 20, 30], load={}, owners={}, cap=5,
                  last_agent=20)

    assert plan.tasks == {1: 30, 2: 10, 3: 20, 4: 30}
    assert plan.new_owners == {101: 30, 102: 10, 103: 20, 104: 30}


def test_no_agent_gets_more_than_the_cap_and_the_rest_stay_in_the_pool():
    plan = assign([(t, 100 + t) for t in range(1, 6)], agents=[10, 20], load={10: 1}, owners={}, cap=2,
                  last_agent=None)

    assert sorted(plan.tasks.values()) == [10, 20, 20]
    assert set(plan.tasks) == {1, 2, 3}


def test_an_owner_keeps_their_investor_and_at_the_cap_the_task_waits_for_them():
    plan = assign([(1, 101), (2, 102)], agents=[10, 20], load={10: 3}, owners={101: 20, 102: 10}, cap=3,
                  last_agent=None)

    assert plan.tasks == {1: 20}  # 102's owner is full: the task waits in the pool, nobody else takes it
    assert plan.new_owners == {}


def test_a_second_task_of_a_new_investor_goes_to_the_agent_who_took_the_first():
    plan = assign([(1, 101), (2, 101)], agents=[10, 20], load={}, owners={}, cap=5, last_agent=None)

    assert plan.tasks == {1: 10, 2: 10}


def test_an_owner_who_is_no_longer_an_active_agent_does_not_keep_the_investor():
    plan = assign([(1, 101)], agents=[10], load={}, owners={101: 99}, cap=5, last_agent=99)

    assert plan.tasks == {1: 10}


def test_a_bad_configured_default_stops_the_start_naming_its_variable():
    from growth.config import ConfigError
    from growth.crm.services import default_settings

    assert default_settings({"CRM_OPEN_TASK_CAP": "9"}).open_task_cap == 9
    with pytest.raises(ConfigError, match="GROWTH_CRM_OPEN_TASK_CAP"):
        default_settings({"CRM_OPEN_TASK_CAP": "0"})


# --- what delivery would do with a message an agent is about to send ------------------------------------------


def _codes(**situation):  # type: ignore[no-untyped-def]
    from growth.crm.rules import SendSituation, send_checks
    return [(c.code, c.effect) for c in send_checks(SendSituation(**situation))]


def test_a_service_message_skips_consent_quiet_hours_caps_and_the_kill_switch():
    from datetime import UTC, datetime
    at = datetime(2026, 12, 3, 0, 0, tzinfo=UTC)
    assert _codes(marketing=False, consent=None, quiet_until=at, caps_full=("sms:1/day",), kill_switch=True,
                  opt_out_ok=False) == []


def test_a_marketing_message_shows_each_check_delivery_makes_in_its_order():
    from datetime import UTC, datetime
    at = datetime(2026, 12, 3, 0, 0, tzinfo=UTC)
    assert _codes(marketing=True, consent=True) == []
    assert _codes(marketing=True, consent=None) == [("no_consent", "block")]
    assert _codes(marketing=True, consent=False) == [("consent_withdrawn", "block")]
    assert _codes(marketing=True, consent=True, quiet_until=at, kill_switch=True, channel_paused=True) == [
        ("paused", "hold"), ("kill_switch", "hold"), ("quiet_hours", "hold")]
    assert _codes(marketing=True, consent=True, opt_out_ok=False, caps_full=("all:3/week",)) == [
        ("sms_opt_out_missing", "block"), ("cap", "block")]


def test_an_unreachable_investor_is_blocked_whatever_the_class():
    from growth.crm.rules import SendSituation, blocked, send_checks
    assert _codes(marketing=False, has_address=False) == [("no_address", "block")]
    assert _codes(marketing=False, refused=True) == [("refused", "block")]
    assert _codes(marketing=False, channel_configured=False) == [("channel_off", "block")]
    assert blocked(send_checks(SendSituation(marketing=False, refused=True)))
    assert not blocked(send_checks(SendSituation(marketing=True, consent=True, channel_paused=True)))
