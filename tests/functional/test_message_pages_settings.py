"""The channel settings page and the template library through the test client."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from channels.models import ChannelSetting, MessageTemplate, OutboxMessage
from growth.audit.models import AuditEntry
from growth.db import get_db
from tests.factories import make_message

SECRET = "sk-live-0123456789abcdefXYZ"  # a credential that must never reach a page, a log or the audit trail
ENV = {"GROWTH_SMS_PROVIDER": "aliyun", "GROWTH_SMS_ACCESS_KEY_SECRET": SECRET, "GROWTH_SMS_SIGN_NAME": "投资人增长",
       "GROWTH_QUIET_HOURS": "22:00-08:00"}
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def app_config() -> dict:
    return {"CHANNEL_ENV": ENV}


def _audit(app, prefix: str) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action.startswith(prefix)).order_by(AuditEntry.id)))


def _overrides(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return {r.key: r.value for r in s.scalars(select(ChannelSetting))}


def _row(html: str, key: str) -> str:
    return re.search(rf'<tr data-setting="{key}".*?</tr>', html, re.S).group(0)


# --- settings ---------------------------------------------------------------------------------------


def test_the_settings_page_shows_every_setting_with_its_source_and_secrets_only_masked(client, login, caplog):
    login("admin")
    html = client.get("/messages/settings").get_data(as_text=True)

    assert SECRET not in html and SECRET not in caplog.text
    assert "••••••YZ" in _row(html, "sms_access_key_secret")
    assert "环境变量" in _row(html, "sms_provider") and 'value="aliyun" selected' in _row(html, "sms_provider")
    assert 'data-source="default"' in _row(html, "marketing_caps") and "sms:1/day,all:3/week" in html
    assert 'data-source="environment"' in _row(html, "quiet_hours")
    assert "仅限环境变量" in _row(html, "smtp_url")
    assert 'name="sms_access_key_secret"' not in html


def test_saving_a_setting_stores_an_override_audited_as_old_to_new(app, client, login):
    login("admin")
    form = {"quiet_hours": "21:30-08:00", "marketing_caps": "sms:1/day,all:3/week", "sms_sign_name": "投资人增长"}
    response = client.post("/messages/settings", data=form)
    assert response.status_code == 302

    assert _overrides(app) == {"quiet_hours": "21:30-08:00"}  # unchanged values do not become overrides
    html = client.get("/messages/settings").get_data(as_text=True)
    assert 'data-source="override"' in _row(html, "quiet_hours") and "页面覆盖" in _row(html, "quiet_hours")
    [entry] = _audit(app, "channel_settings.")
    assert entry.action == "channel_settings.changed"
    assert entry.details == {"changes": {"quiet_hours": ["22:00-08:00", "21:30-08:00"]}}
    assert SECRET not in str(entry.details)


def test_a_bad_value_is_shown_with_its_reason_keeps_the_other_entries_and_saves_nothing(app, client, login):
    login("admin")
    response = client.post("/messages/settings", data={"quiet_hours": "late", "marketing_caps": "sms:2/day",
                                                       "sms_rate": "12"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert re.search(r'data-error="quiet_hours">免打扰时段须写作 21:00-08:00', html)
    assert 'value="late"' in html and 'value="sms:2/day"' in html and 'value="12"' in html
    assert _overrides(app) == {} and _audit(app, "channel_settings.") == []


def test_restoring_the_environment_clears_the_override_after_a_confirmation(app, client, login):
    login("admin")
    client.post("/messages/settings", data={"sms_provider": "console"})
    html = client.get("/messages/settings").get_data(as_text=True)
    assert re.search(r'<form method="post" action="/messages/settings/sms_provider/clear" data-confirm=', html)

    client.post("/messages/settings/sms_provider/clear")

    assert _overrides(app) == {}
    assert 'data-source="environment"' in _row(client.get("/messages/settings").get_data(as_text=True),
                                               "sms_provider")
    changed, cleared = _audit(app, "channel_settings.")
    assert changed.details == {"changes": {"sms_provider": ["aliyun", "console"]}}
    assert cleared.action == "channel_settings.cleared"
    assert cleared.details == {"changes": {"sms_provider": ["console", "aliyun"]}}


def test_unpausing_a_channel_makes_its_deferred_messages_due_at_once(app, client, login):
    with get_db(app).session_scope(write=True) as s:
        paused_sms = make_message(s, channel="sms", status="deferred", hold_reason="paused",
                                  due_at=LONG_AGO + timedelta(days=400)).id
        email = make_message(s, channel="email", status="deferred", hold_reason="paused",
                             due_at=LONG_AGO + timedelta(days=400)).id
    login("admin")
    client.post("/messages/settings", data={"sms_paused": "true"})
    client.post("/messages/settings", data={"sms_paused": "false"})

    with get_db(app).session_scope() as s:
        due = {m.id: m.due_at for m in s.scalars(select(OutboxMessage))}
    assert due[paused_sms] < datetime.now(UTC) + timedelta(seconds=5)
    assert due[email] == LONG_AGO + timedelta(days=400)  # still paused (another channel): left alone


# --- templates --------------------------------------------------------------------------------------


def _create(client, **fields):  # type: ignore[no-untyped-def]
    data = {"name": "新手红包短信", "channel": "sms", "message_class": "marketing",
            "body": "{{ investor.name }}您好，{{ reward.amount }}元红包已到账。回T退订", "action": "save"} | fields
    return client.post("/messages/templates/new", data=data)


def _templates(app) -> list[MessageTemplate]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        rows = list(s.scalars(select(MessageTemplate).order_by(MessageTemplate.id)))
        s.expunge_all()
        return rows


def test_a_marketer_creates_a_template_and_sees_it_in_the_library_with_its_preview(app, client, login):
    login("marketer")
    response = _create(client)
    assert response.status_code == 302
    [template] = _templates(app)
    assert template.name == "新手红包短信"
    library = client.get("/messages/templates").get_data(as_text=True)
    assert f'data-template="{template.id}"' in library and "短信" in library and "营销" in library
    page = client.get(f"/messages/templates/{template.id}").get_data(as_text=True)
    assert "【投资人增长】张三您好，50.00元红包已到账。回T退订" in page
    assert re.search(r'id="preview-sms">短信计费：1 条，\d+ 个字符单位，编码 UCS-2', page)
    assert [e.action for e in _audit(app, "message_template.")] == ["message_template.created"]


def test_an_unknown_variable_is_refused_before_saving_with_a_clear_message(app, client, login):
    login("marketer")
    response = _create(client, body="{{ investor.nickname }}您好。回T退订")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "未知变量：investor.nickname" in html and 'data-codes="unknown_variable"' in html
    assert "{{ investor.nickname }}您好。回T退订" in html  # the text stays in the form
    assert _templates(app) == []


def test_a_marketing_sms_without_an_opt_out_phrase_is_refused(app, client, login):
    login("marketer")
    response = _create(client, body="{{ investor.name }}您好，红包已到账")
    assert response.status_code == 422
    assert 'data-codes="sms_opt_out_missing"' in response.get_data(as_text=True)
    assert _create(client, body="您好，账户变动通知", message_class="service").status_code == 302


def test_a_duplicate_name_is_refused_with_a_clear_error(app, client, login):
    login("marketer")
    _create(client)
    response = _create(client, body="第二条。拒收请回复R")
    assert response.status_code == 409
    assert "已有同名模板“新手红包短信”" in response.get_data(as_text=True)
    assert len(_templates(app)) == 1


def test_preview_renders_without_saving_and_email_html_stays_in_a_sandbox(app, client, login):
    login("marketer")
    response = _create(client, action="preview", channel="email", name="欢迎邮件", subject="欢迎 {{ investor.name }}",
                       body="正文", html="<p>{{ investor.name }}</p><script>alert(1)</script>")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="preview-subject">欢迎 张三<' in html
    assert re.search(r'<iframe[^>]*sandbox=""[^>]*id="preview-html"[^>]*srcdoc="&lt;p&gt;张三&lt;/p&gt;', html)
    assert "<script>alert(1)</script>" not in html
    assert _templates(app) == []


def test_editing_archiving_and_restoring_a_template_keeps_it_and_is_audited(app, client, login):
    login("marketer")
    _create(client)
    [template] = _templates(app)
    client.post(f"/messages/templates/{template.id}/edit",
                data={"name": "新手红包短信 v2", "channel": "sms", "message_class": "marketing",
                      "body": "您好，红包已到账。回T退订", "action": "save"})
    html = client.get(f"/messages/templates/{template.id}").get_data(as_text=True)
    assert re.search(r'<form method="post" action="/messages/templates/\d+/archive"\s+data-confirm=', html)

    client.post(f"/messages/templates/{template.id}/archive", data={"archived": "1"})
    assert "新手红包短信 v2" not in client.get("/messages/templates").get_data(as_text=True)
    assert "新手红包短信 v2" in client.get("/messages/templates?archived=1").get_data(as_text=True)
    client.post(f"/messages/templates/{template.id}/archive", data={"archived": "0"})

    [saved] = _templates(app)
    assert saved.name == "新手红包短信 v2" and not saved.archived
    updated = _audit(app, "message_template.updated")[0]
    assert updated.details["changes"] == {"name": ["新手红包短信", "新手红包短信 v2"]}
    assert updated.details["fields"] == ["body"]
    assert [e.action for e in _audit(app, "message_template.")][-2:] == ["message_template.archived",
                                                                         "message_template.restored"]
