"""Sending an investor a templated message from the CRM through the test client: what the page shows before
sending (class, consent, quiet hours, caps, SMS length, a masked preview), a double submit sending once,
delivery holding what the page said it would, closing the task it was sent from, in Chinese and English."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from channels.delivery import Deliverer
from channels.models import CapUsage, MessageTemplate, OutboxMessage
from channels.rules import Cap, cap_period
from channels.services import record_statement, store_override
from channels.templates import NAME_SLOT
from growth.audit.models import AuditEntry
from growth.crm.models import CrmMessage, CrmTask
from growth.db import get_db
from growth.investors.rules import REVEALED_KEY
from growth.timeutil import SHANGHAI, utcnow
from tests.factories import make_investor

PHONE = "+8613912345678"
NAME = "王小明"
MARKETING_SMS = "{{ investor.name }}您好，理财节加息券已到账，投资有风险，理财需谨慎。回T退订"
SERVICE_SMS = "{{ investor.name }}您好，您预约的回访时间已确认。"


@pytest.fixture
def app_config() -> dict:
    # The marketing quiet hours would make these tests depend on the hour they run at: off, unless a test sets them.
    return {"CHANNEL_ENV": {"GROWTH_QUIET_HOURS": "off"}}


def _template(app, name: str, body: str, *, channel: str = "sms", message_class: str = "marketing",
              **fields) -> int:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        template = MessageTemplate(name=name, channel=channel, message_class=message_class, body=body,
                                   updated_at=utcnow(), **fields)
        s.add(template)
        s.flush()
        return template.id


def _investor(app, *, consent: bool | None = None, **fields) -> int:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        investor = make_investor(s, phone=PHONE, name=NAME, **fields)
        if consent is not None:
            record_statement(session=s, investor_id=investor.id, channel="sms", granted=consent,
                             occurred_at=utcnow() - timedelta(days=3), source="platform_event")
        return investor.id


def _token(html: str) -> str:
    match = re.search(r'name="token" value="([^"]+)"', html)
    assert match, "the send form carries a one-time token"
    return match.group(1)


def _count(app, model) -> int:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _outbox(app) -> list[OutboxMessage]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        rows = list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        s.expunge_all()
        return rows


def test_the_investor_page_links_to_the_send_page_for_agents_only(app, client, login, db_kind):
    investor_id = _investor(app)
    login("agent")
    assert f'href="/investors/{investor_id}/message"' in client.get(f"/investors/{investor_id}").get_data(as_text=True)

    client.post("/logout")
    login("analyst")
    assert f"/investors/{investor_id}/message" not in client.get(f"/investors/{investor_id}").get_data(as_text=True)
    assert client.get(f"/investors/{investor_id}/message").status_code == 403


def test_the_page_shows_a_marketing_template_blocked_without_consent_and_masks_the_investor(app, client, login,
                                                                                            db_kind):
    investor_id = _investor(app)  # no consent statement: no marketing
    template_id = _template(app, "加息券到账", MARKETING_SMS)
    login("agent")

    html = client.get(f"/investors/{investor_id}/message?template={template_id}").get_data(as_text=True)

    assert 'data-class="marketing"' in html and 'data-blocked="true"' in html
    assert 'data-check="no_consent"' in html and "发送时将被拦截" in html
    assert 'data-consent="none"' in html
    assert re.search(r'<button type="submit" class="btn btn-primary" id="send-button" disabled', html)
    assert "营销消息：须投资人已同意" in html  # the class, said plainly
    assert 'id="sms-length"' in html
    # Personal data: the preview greets 王** and the phone is masked everywhere.
    assert "王*" in html and NAME not in html and PHONE not in html and "13912345678" not in html


def test_a_service_template_needs_no_consent_and_shows_its_length_and_preview(app, client, login, db_kind):
    investor_id = _investor(app)
    template_id = _template(app, "回访确认", SERVICE_SMS, message_class="service")
    login("agent")

    html = client.get(f"/investors/{investor_id}/message?template={template_id}").get_data(as_text=True)

    assert 'data-class="service"' in html and 'data-blocked="false"' in html and 'id="check-ok"' in html
    assert "服务通知：只用于投资人自己账户" in html
    assert re.search(r'id="sms-length">\d+ 字，计 1 条', html)
    assert "王**您好，您预约的回访时间已确认。" in html


def test_a_double_submit_sends_one_message_and_audits_it_once(app, client, login, db_kind):
    investor_id = _investor(app, consent=True)
    template_id = _template(app, "加息券到账", MARKETING_SMS)
    agent = login("agent")
    token = _token(client.get(f"/investors/{investor_id}/message?template={template_id}").get_data(as_text=True))
    form = {"token": token, "template_id": str(template_id)}

    first = client.post(f"/investors/{investor_id}/message", data=form)
    second = client.post(f"/investors/{investor_id}/message", data=form)

    assert first.status_code == second.status_code == 302
    [message] = _outbox(app)
    assert (message.sender, message.channel, message.message_class, message.status) == (
        "crm", "sms", "marketing", "queued")
    # Stored with the name slot, no name at rest: delivery fills in the investor's own name when it sends.
    assert message.content["text"].startswith(f"{NAME_SLOT}您好") and NAME not in str(message.content)
    with get_db(app).session_scope() as s:
        [crm] = s.scalars(select(CrmMessage))
        assert (crm.agent_id, crm.investor_id, crm.outbox_id, crm.template_name) == (
            agent.id, investor_id, message.id, "加息券到账")
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "crm.message_sent"))
        assert entry.details["outbox_message"] == message.id and NAME not in str(entry.details)
    page = client.get(second.headers["Location"]).get_data(as_text=True)
    assert "没有重复发送" in page and f'data-crm-message="{crm.id}"' in page and "排队中" in page


def test_a_marketing_message_sent_without_consent_is_skipped_by_delivery(app, client, login, db_kind):
    investor_id = _investor(app, consent=False)
    template_id = _template(app, "加息券到账", MARKETING_SMS)
    login("agent")
    html = client.get(f"/investors/{investor_id}/message?template={template_id}").get_data(as_text=True)
    assert 'data-check="consent_withdrawn"' in html and 'data-blocked="true"' in html

    # The button is disabled, but a form posted anyway is delivery's to refuse — and it does.
    client.post(f"/investors/{investor_id}/message", data={"token": _token(html), "template_id": str(template_id)})
    Deliverer(app, draw=lambda a, b: b).run_once()

    [message] = _outbox(app)
    assert message.status == "skipped_no_consent"


def test_sending_from_a_task_can_close_it_and_the_task_page_lists_the_message(app, client, login, db_kind):
    investor_id = _investor(app, consent=True)
    template_id = _template(app, "回访确认", SERVICE_SMS, message_class="service")
    agent = login("agent")
    with get_db(app).session_scope(write=True) as s:
        task = CrmTask(investor_id=investor_id, reason="registered_no_kyc", status="open", assignee_id=agent.id,
                       due_at=utcnow() + timedelta(hours=1), source_key=f"{investor_id}:registered_no_kyc",
                       cause_key=f"registered_no_kyc:{investor_id}")
        s.add(task)
        s.flush()
        task_id = task.id
    task_page = client.get(f"/crm/tasks/{task_id}").get_data(as_text=True)
    assert f'href="/investors/{investor_id}/message?task={task_id}"' in task_page
    html = client.get(f"/investors/{investor_id}/message?task={task_id}&template={template_id}").get_data(as_text=True)
    assert 'name="close_task"' in html

    response = client.post(f"/investors/{investor_id}/message", data={
        "token": _token(html), "template_id": str(template_id), "task_id": str(task_id), "close_task": "1"})

    assert response.status_code == 302 and response.headers["Location"].endswith("/crm")
    with get_db(app).session_scope() as s:
        closed = s.get(CrmTask, task_id)
        assert (closed.status, closed.closed_by, closed.source_key) == ("done", agent.id, None)
        [crm] = s.scalars(select(CrmMessage))
        assert crm.task_id == task_id
    assert f'data-crm-message="{crm.id}"' in client.get(f"/crm/tasks/{task_id}").get_data(as_text=True)


def test_a_revealed_investor_is_previewed_with_their_name(app, client, login, db_kind):
    investor_id = _investor(app)
    template_id = _template(app, "回访确认", SERVICE_SMS, message_class="service")
    login("agent")
    with client.session_transaction() as browser:
        browser[REVEALED_KEY] = {str(investor_id): utcnow().timestamp() + 300}

    html = client.get(f"/investors/{investor_id}/message?template={template_id}").get_data(as_text=True)

    assert f"{NAME}您好" in html and "正在显示完整信息" in html


def test_a_marketing_wechat_template_cannot_go_to_one_investor(app, client, login, db_kind):
    investor_id = _investor(app, wechat_openid="o_123")
    template_id = _template(app, "微信群发", "秋季理财节开始了。", channel="wechat")
    login("agent")
    html = client.get(f"/investors/{investor_id}/message?template={template_id}").get_data(as_text=True)
    assert 'data-check="wechat_mass"' in html and 'data-blocked="true"' in html

    response = client.post(f"/investors/{investor_id}/message",
                           data={"token": _token(html), "template_id": str(template_id)})

    assert response.status_code == 400 and "不能单独发送" in response.get_data(as_text=True)
    assert _count(app, OutboxMessage) == 0 and _count(app, CrmMessage) == 0


def test_a_template_on_a_channel_without_an_address_is_refused(app, client, login, db_kind):
    investor_id = _investor(app)  # a phone, no email
    template_id = _template(app, "邮件通知", "您好", channel="email", message_class="service", subject="通知")
    login("agent")
    html = client.get(f"/investors/{investor_id}/message").get_data(as_text=True)
    assert re.search(rf'<option value="{template_id}"\s+disabled data-reason="no_address"', html)

    response = client.post(f"/investors/{investor_id}/message",
                           data={"token": "x" * 32, "template_id": str(template_id)})

    assert response.status_code == 400 and "没有联系方式" in response.get_data(as_text=True)
    assert _count(app, OutboxMessage) == 0


def test_a_stale_or_forged_form_token_is_refused(app, client, login, db_kind):
    investor_id = _investor(app, consent=True)
    template_id = _template(app, "回访确认", SERVICE_SMS, message_class="service")
    login("agent")

    response = client.post(f"/investors/{investor_id}/message",
                           data={"token": "short", "template_id": str(template_id)})

    assert response.status_code == 400 and "表单已失效" in response.get_data(as_text=True)
    assert _count(app, OutboxMessage) == 0


def test_the_page_shows_the_caps_the_investor_used_and_the_empty_states(app, client, login, db_kind):
    investor_id = _investor(app, consent=True)
    login("agent")
    html = client.get(f"/investors/{investor_id}/message").get_data(as_text=True)
    assert 'id="no-templates"' in html and "还没有从客服工作台发给这位投资人的消息" in html

    template_id = _template(app, "加息券到账", MARKETING_SMS)
    with get_db(app).session_scope(write=True) as s:
        today = cap_period(Cap("sms", 1, "day"), utcnow(), SHANGHAI)
        s.add(CapUsage(investor_id=investor_id, scope="sms", period=today, used=1))
    html = client.get(f"/investors/{investor_id}/message?template={template_id}").get_data(as_text=True)
    assert 'data-check="cap"' in html and "sms:1/day" in html and 'data-blocked="true"' in html


def test_the_send_page_reads_in_english(app, client, login, db_kind):
    investor_id = _investor(app, consent=True)
    template_id = _template(app, "加息券到账", MARKETING_SMS)
    login("agent")
    client.get("/lang/en")

    html = client.get(f"/investors/{investor_id}/message?template={template_id}").get_data(as_text=True)

    assert "Send a template message" in html and "Marketing" in html


def test_quiet_hours_are_shown_as_a_hold_of_marketing(app, client, login, db_kind):
    investor_id = _investor(app, consent=True)
    template_id = _template(app, "加息券到账", MARKETING_SMS)
    login("admin")
    now = datetime.now(UTC)
    with get_db(app).session_scope(write=True) as s:  # quiet all day but the next minute: "now" is quiet
        start = (now + timedelta(minutes=2)).astimezone(SHANGHAI)
        store_override("quiet_hours", f"{start:%H:%M}-{(start - timedelta(minutes=1)):%H:%M}", session=s, now=now,
                       by=None)

    html = client.get(f"/investors/{investor_id}/message?template={template_id}").get_data(as_text=True)

    assert 'data-check="quiet_hours" data-effect="hold"' in html and 'data-blocked="false"' in html


@pytest.mark.parametrize("bad", ["99999999999999999999", "１２", "-3", "7x"])
def test_ids_no_row_could_have_are_refused_as_a_form_error_not_a_crash(app, client, login, db_kind, bad):
    investor_id = _investor(app, consent=True)
    login("admin")

    sent = client.post(f"/investors/{investor_id}/message", data={"token": "t" * 24, "template_id": bad,
                                                                   "task_id": bad})
    call = client.post(f"/investors/{investor_id}/call", data={"task_id": bad, "outcome": "no_answer"})

    assert sent.status_code == 400 and not _outbox(app)  # no template chosen: the page says so
    assert call.status_code == 302  # a call on no task, as the form allows
