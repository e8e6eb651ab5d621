"""Staff actions on messages, channel settings and templates, against the real databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from channels import services
from channels import template_library as library
from channels.models import RETRYABLE, STATUSES, ChannelSetting, OutboxMessage
from channels.queries import MessageFilter, channel_health, list_messages, mass_jobs_this_month, redact_contacts
from channels.settings import load
from growth.audit.models import AuditEntry
from growth.errors import Conflict
from tests.factories import make_message

NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)
ENV = {"GROWTH_QUIET_HOURS": "21:00-08:00", "GROWTH_SMS_ACCESS_KEY_SECRET": "a-very-secret-key-123"}


def _statuses(session) -> dict[int, tuple[str, int]]:  # type: ignore[no-untyped-def]
    session.expire_all()
    return {m.id: (m.status, m.attempts) for m in session.scalars(select(OutboxMessage))}


def _audit(session, action: str) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


# --- retry ------------------------------------------------------------------------------------------


def test_only_retryable_statuses_are_queued_again_and_the_error_is_kept(session, db_kind):
    ids = {status: make_message(session, status=status, attempts=2, error="last", hold_reason="rate").id
           for status in STATUSES}

    count = services.retry_messages(session=session, now=NOW, ids=list(ids.values()))

    assert count == len(RETRYABLE)
    after = _statuses(session)
    for status, message_id in ids.items():
        expected = ("queued", 0) if status in RETRYABLE else (status, 2)
        assert after[message_id] == expected, status
    requeued = session.get(OutboxMessage, ids["dead"])
    assert (requeued.error, requeued.hold_reason, requeued.due_at.replace(tzinfo=UTC)) == ("last", None, NOW)
    [entry] = _audit(session, "messages.retried")
    assert entry.details["count"] == len(RETRYABLE)


def test_retry_by_filter_touches_only_the_matching_retryable_messages(session, db_kind):
    inside = make_message(session, campaign_id=1, channel="sms", status="failed",
                          created_at=datetime(2026, 12, 1, 15, 59, tzinfo=UTC))  # 23:59 on the 1st in Shanghai
    next_day = make_message(session, campaign_id=1, channel="sms", status="failed",
                            created_at=datetime(2026, 12, 1, 16, 0, tzinfo=UTC))  # 00:00 on the 2nd
    other_channel = make_message(session, campaign_id=1, channel="email", status="failed")

    filters = MessageFilter(campaign_id=1, channel="sms", end=date(2026, 12, 1))
    assert services.retry_messages(session=session, now=NOW, filters=filters) == 1

    after = _statuses(session)
    assert after[inside.id][0] == "queued"
    assert after[next_day.id][0] == "failed" and after[other_channel.id][0] == "failed"
    assert _audit(session, "messages.retried")[0].details["filters"] == {"campaign_id": "1", "channel": "sms",
                                                                         "end": "2026-12-01"}


def test_retry_needs_exactly_one_way_of_choosing(session, db_kind):
    with pytest.raises(ValueError):
        services.retry_messages(session=session, now=NOW)
    assert services.retry_messages(session=session, now=NOW, ids=[]) == 0


# --- settings ---------------------------------------------------------------------------------------


def test_saved_settings_win_over_the_environment_until_cleared(session, db_kind):
    changes = services.save_settings({"quiet_hours": "22:00-07:00", "sms_rate": "50"}, session=session,
                                     environment=ENV, now=NOW, by=None)

    assert changes == {"quiet_hours": ("21:00-08:00", "22:00-07:00")}
    config = load(session=session, environment=ENV)
    assert (config["quiet_hours"], config.sources["quiet_hours"]) == ("22:00-07:00", "override")
    assert config.sources["sms_rate"] == "default"

    assert services.clear_setting("quiet_hours", session=session, environment=ENV, now=NOW) is True
    assert services.clear_setting("quiet_hours", session=session, environment=ENV, now=NOW) is False
    assert load(session=session, environment=ENV).sources["quiet_hours"] == "environment"
    [changed] = _audit(session, "channel_settings.changed")
    [cleared] = _audit(session, "channel_settings.cleared")
    assert changed.details == {"changes": {"quiet_hours": ["21:00-08:00", "22:00-07:00"]}}
    assert cleared.details == {"changes": {"quiet_hours": ["22:00-07:00", "21:00-08:00"]}}


def test_every_bad_value_is_reported_and_nothing_is_stored(session, db_kind):
    with pytest.raises(services.SettingsInvalid) as caught:
        services.save_settings({"quiet_hours": "9pm", "max_attempts": "0", "sms_rate": "5",
                                "sms_access_key_secret": "x"}, session=session, environment=ENV, now=NOW)
    assert set(caught.value.errors) == {"quiet_hours", "max_attempts", "sms_access_key_secret"}
    assert session.scalars(select(ChannelSetting)).all() == []


def test_changing_quiet_hours_makes_every_deferred_message_due_now(session, db_kind):
    later = NOW + timedelta(hours=8)
    deferred = [make_message(session, channel=c, status="deferred", hold_reason="quiet_hours", due_at=later).id
                for c in ("sms", "email")]
    queued = make_message(session, status="queued", due_at=later).id

    services.save_settings({"quiet_hours": "off"}, session=session, environment=ENV, now=NOW)

    session.expire_all()
    assert [session.get(OutboxMessage, i).due_at.replace(tzinfo=UTC) for i in deferred] == [NOW, NOW]
    assert session.get(OutboxMessage, queued).due_at.replace(tzinfo=UTC) == later


def test_a_secret_is_never_written_to_the_audit_log(session, db_kind):
    services.save_settings({"sms_sign_name": "投资人增长"}, session=session, environment=ENV, now=NOW)
    for entry in session.scalars(select(AuditEntry)):
        assert "a-very-secret-key-123" not in str(entry.details)


# --- templates --------------------------------------------------------------------------------------


def _draft(**fields: object) -> library.TemplateDraft:
    values: dict[str, object] = {"name": "红包到账", "channel": "sms", "message_class": "marketing",
                                 "body": "{{ investor.name }}您好，{{ reward.amount }}元红包已到账。回T退订"}
    values.update(fields)
    return library.TemplateDraft(**values)  # type: ignore[arg-type]


def _codes(draft: library.TemplateDraft) -> set[str]:
    return {p.code for p in library.check(draft)}


def test_template_rules_name_the_spec_codes():
    assert _codes(_draft()) == set()
    assert _codes(_draft(body="{{ foo }}。回T退订")) == {"unknown_variable"}
    assert _codes(_draft(body="您好")) == {"sms_opt_out_missing"}
    assert _codes(_draft(body="您好", message_class="service")) == set()
    assert _codes(_draft(channel="wechat", provider_template="tmpl_1", params={"first": "{{ investor.name }}"},
                         body="")) == {"wechat_template_marketing"}
    assert _codes(_draft(channel="email", body="正文")) == {"required"}  # an email needs a subject
    assert _codes(_draft(params={"name": "{{ investor.nickname }}"})) == {"unknown_variable"}


def test_provider_parameters_are_read_one_a_line():
    params, problems = library.parse_params("name = {{ investor.name }}\n\namount={{ reward.amount }}\n")
    assert params == {"name": "{{ investor.name }}", "amount": "{{ reward.amount }}"} and problems == []
    _params, problems = library.parse_params("just text\nname = a\nname = b")
    assert [p.code for p in problems] == ["invalid_params", "invalid_params"]


def test_a_preview_counts_sms_parts_with_the_signature():
    preview = library.preview(_draft(body="x" * 65 + "。回T退订"), sign_name="投资人增长")
    assert preview.sms is not None and preview.sms.segments == 2 and preview.sms.encoding == "ucs2"
    assert library.preview(_draft(body="Hello {{ investor.masked_phone }} reply T to TD",
                                  message_class="service")).sms.encoding == "gsm7"


def test_template_names_are_unique(session, db_kind):
    library.create_template(_draft(), session=session, now=NOW)
    with pytest.raises(Conflict):
        library.create_template(_draft(body="另一条。回T退订"), session=session, now=NOW)
    other = library.create_template(_draft(name="另一个"), session=session, now=NOW)
    with pytest.raises(Conflict):
        library.update_template(other, _draft(), session=session, now=NOW)


# --- queries ----------------------------------------------------------------------------------------


def test_the_log_query_pages_newest_first(session, db_kind):
    ids = [make_message(session, created_at=NOW + timedelta(minutes=i)).id for i in range(5)]
    rows, total = list_messages(MessageFilter(), session=session, page=2, per_page=2)
    assert total == 5 and [m.id for m in rows] == [ids[2], ids[1]]


def test_health_groups_every_channel_and_keeps_empty_ones(session, db_kind):
    make_message(session, channel="webhook", status="dead", created_at=NOW - timedelta(hours=30),
                 updated_at=NOW - timedelta(hours=30), error_code="http_500", error="server error")
    health = channel_health(session=session, now=NOW)
    assert set(health) == {"wechat", "sms", "email", "webhook"}
    assert health["webhook"].week == {"dead": 1} and health["webhook"].day == {}
    assert health["webhook"].last_error.code == "http_500"
    assert health["sms"].total("week") == 0 and health["sms"].delivery_rate("week") is None


def test_the_month_of_mass_sends_is_the_shanghai_month(session, db_kind):
    from channels.models import WechatMassJob

    session.add(WechatMassJob(msg_id="a", recipients=2, sent_at=datetime(2026, 11, 30, 16, 30, tzinfo=UTC)))  # Dec 1
    session.add(WechatMassJob(msg_id="b", recipients=2, sent_at=datetime(2026, 11, 30, 15, 30, tzinfo=UTC)))  # Nov 30
    session.flush()
    assert [j.msg_id for j in mass_jobs_this_month(session=session, now=NOW)] == ["a"]


def test_contact_data_in_free_text_is_hidden():
    assert redact_contacts("invalid mobile 13912345678") == "invalid mobile ****5678"
    assert redact_contacts("to +86 139 1234 5678 failed") == "to ****5678 failed"
    assert redact_contacts("mailbox wang@example.com full") == "mailbox ****@example.com full"
    assert redact_contacts("isp.SYSTEM_ERROR 500") == "isp.SYSTEM_ERROR 500"
    assert redact_contacts(None) is None


def test_an_unchanged_value_from_the_environment_is_neither_checked_nor_stored(session, db_kind):
    env = ENV | {"GROWTH_SMS_RATE": "fast"}  # wrong in the environment: not the page's to refuse
    assert services.save_settings({"sms_rate": "fast", "quiet_hours": "21:00-08:00"}, session=session,
                                  environment=env, now=NOW) == {}
    assert session.scalars(select(ChannelSetting)).all() == []
