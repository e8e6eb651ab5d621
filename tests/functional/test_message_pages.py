"""The message pages through the test client: the delivery log, retries, export, a message, channel health."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from channels.models import OutboxMessage, WechatMassJob
from channels.templates import NAME_SLOT
from growth.audit.models import AuditEntry
from growth.db import get_db
from tests.factories import make_investor, make_message

# A phone that appears in full nowhere but the investor row (and, as a provider would, in one error text).
PHONE = "+8613912345678"
NATIONAL = "13912345678"
NAME = "王小明"
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai

PAGES = ["/messages", "/messages/health", "/messages/templates"]


def _audit(app, action: str) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def _message(app, **fields):  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return make_message(s, **fields).id


def _get(app, message_id: int) -> OutboxMessage:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        message = s.get(OutboxMessage, message_id)
        s.expunge(message)
        return message


@pytest.fixture
def wang(app):  # type: ignore[no-untyped-def]
    """An investor whose SMS failed with a provider error naming the phone; return (investor id, message id)."""
    with get_db(app).session_scope(write=True) as s:
        investor = make_investor(s, platform_user_id="u_wang", phone=PHONE, name=NAME, email="wang@example.com")
        message = make_message(
            s, investor_id=investor.id, user_id="u_wang", campaign_id=7, status="failed", attempts=3,
            recipient_masked="+86 139****5678", error_code="isv.MOBILE_NUMBER_ILLEGAL",
            error=f"invalid mobile {NATIONAL}", provider="aliyun", created_at=T0, updated_at=T0,
            content={"text": f"{NAME_SLOT}您好，50元红包已到账。回T退订", "template_code": "SMS_1",
                     "params": {"name": NAME_SLOT}})  # as stored: the name is filled in when it is sent
        return investor.id, message.id


# --- who may see what -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "marketer", "approver", "agent", "analyst"])
def test_every_staff_role_sees_the_message_pages(client, login, role):
    login(role)
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "消息触达" in response.get_data(as_text=True)


def test_a_stranger_is_sent_to_sign_in(client):
    for url in [*PAGES, "/messages/settings", "/messages/export.csv"]:
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url


@pytest.mark.parametrize("role", ["marketer", "approver", "agent", "analyst"])
def test_only_administrators_open_the_channel_settings(client, login, role):
    login(role)
    assert client.get("/messages/settings").status_code == 403
    assert client.post("/messages/settings", data={"quiet_hours": "off"}).status_code == 403
    assert 'href="/messages/settings"' not in client.get("/messages").get_data(as_text=True)


@pytest.mark.parametrize("role", ["approver", "agent", "analyst"])
def test_roles_that_may_not_manage_messages_can_neither_retry_nor_edit_templates(app, client, login, role, wang):
    _investor_id, message_id = wang
    login(role)
    html = client.get("/messages").get_data(as_text=True)
    assert 'name="ids"' not in html and "retry-all" not in html
    assert client.post("/messages/retry", data={"ids": [str(message_id)]}).status_code == 403
    assert client.post(f"/messages/{message_id}/retry").status_code == 403
    assert client.get("/messages/templates/new").status_code == 403
    assert _get(app, message_id).status == "failed"


def test_the_navigation_offers_the_message_pages(client, login):
    login("analyst")
    html = client.get("/").get_data(as_text=True)
    assert 'href="/messages"' in html and "发送记录、渠道健康与模板" in html


# --- masking ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["analyst", "marketer", "approver"])
def test_no_page_export_or_api_answer_shows_a_full_phone_or_the_name_to_a_role_without_pii(
        app, client, login, wang, role):
    investor_id, message_id = wang
    login(role)
    answers = {
        "list": client.get("/messages").get_data(as_text=True),
        "filtered": client.get("/messages?user_id=u_wang").get_data(as_text=True),
        "detail": client.get(f"/messages/{message_id}").get_data(as_text=True),
        "health": client.get("/messages/health").get_data(as_text=True),
        "csv": client.get("/messages/export.csv").get_data(as_text=True),
        "api": client.get("/api/v1/messages").get_data(as_text=True),
        "investor": client.get(f"/investors/{investor_id}").get_data(as_text=True),
    }
    for where, text in answers.items():
        assert NATIONAL not in text, where
        assert NAME not in text, where
        assert "\u2063" not in text, where  # nor the name slot as stored
    assert "139****5678" in answers["list"] and "139****5678" in answers["csv"]
    assert "****5678" in answers["detail"]  # the provider's error, with the number hidden
    assert 'id="content-hidden"' in answers["detail"]


def test_a_role_with_pii_sees_the_rendered_content_of_a_message(client, login, wang):
    _investor_id, message_id = wang
    login("agent")
    html = client.get(f"/messages/{message_id}").get_data(as_text=True)
    assert f"{NAME}您好，50元红包已到账。回T退订" in html  # the slot filled with the investor's name
    assert f"<span class=\"mono\">name</span>: {NAME}" in html
    assert 'id="content-hidden"' not in html and "\u2063" not in html
    assert NATIONAL in html  # the provider's error as it came
    assert "139****5678" in client.get("/messages").get_data(as_text=True)


def test_the_message_page_shows_the_name_as_it_is_now_and_a_mass_send_as_it_went(app, client, login):
    with get_db(app).session_scope(write=True) as s:
        investor = make_investor(s, name="<b>李&四</b>")
        mail = make_message(s, investor_id=investor.id, channel="email",
                            content={"subject": f"{NAME_SLOT}，欢迎", "text": f"{NAME_SLOT}您好",
                                     "html": f"<p>{NAME_SLOT}您好</p>"})
        mass = make_message(s, investor_id=investor.id, channel="wechat",
                            content={"wechat_kind": "mass", "text": f"{NAME_SLOT}您好，理财节来了"})
        mail_id, mass_id = mail.id, mass.id
    login("admin")
    html = client.get(f"/messages/{mail_id}").get_data(as_text=True)
    assert "&lt;b&gt;李&amp;四&lt;/b&gt;，欢迎" in html and "&lt;b&gt;李&amp;四&lt;/b&gt;您好" in html
    # The HTML part holds the name escaped once; the frame's srcdoc attribute escapes it once more.
    assert "&lt;p&gt;&amp;lt;b&amp;gt;李&amp;amp;四&amp;lt;/b&amp;gt;您好&lt;/p&gt;" in html
    html = client.get(f"/messages/{mass_id}").get_data(as_text=True)
    assert "<pre class=\"bg-light p-2 mb-0 text-wrap\">您好，理财节来了</pre>" in html  # one text for all: no name
    assert "\u2063" not in html


def test_email_html_is_shown_in_a_sandboxed_frame_and_never_inline(app, client, login):
    message_id = _message(app, channel="email", content={"subject": "欢迎", "text": "t",
                                                         "html": '<p onclick="x()">Hi</p><script>alert(1)</script>'})
    login("agent")
    html = client.get(f"/messages/{message_id}").get_data(as_text=True)
    assert 'sandbox=""' in html and "srcdoc=" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- the delivery log -------------------------------------------------------------------------------


def test_the_log_lists_messages_newest_first_with_labels_and_shanghai_times(app, client, login):
    old = _message(app, status="delivered", created_at=T0, sent_at=T0 + timedelta(seconds=5))
    new = _message(app, status="deferred", hold_reason="quiet_hours", channel="email",
                   created_at=T0 + timedelta(hours=1))
    login("analyst")
    html = client.get("/messages").get_data(as_text=True)

    ids = [int(i) for i in re.findall(r'<tr data-message="(\d+)">', html)]
    assert ids == [new, old]
    assert "已送达" in html and "暂缓" in html and "免打扰时段" in html and "邮件" in html
    assert "2026-12-01 10:00:00" in html and "2026-12-01 10:00:05" in html and "2026-12-01 11:00:00" in html


def test_the_log_filters_by_campaign_channel_status_user_and_creation_day(app, client, login):
    a = _message(app, campaign_id=1, channel="sms", status="failed", user_id="u_a", created_at=T0)
    b = _message(app, campaign_id=2, channel="email", status="sent", user_id="u_b", created_at=T0)
    c = _message(app, campaign_id=1, channel="sms", status="sent", user_id="u_a",
                 created_at=T0 + timedelta(days=2))
    login("analyst")

    def ids(query: str) -> list[int]:
        html = client.get("/messages?" + query).get_data(as_text=True)
        return sorted(int(i) for i in re.findall(r'<tr data-message="(\d+)">', html))

    assert ids("campaign_id=1") == [a, c]
    assert ids("channel=email") == [b]
    assert ids("status=sent") == [b, c]
    assert ids("user_id=u_a") == [a, c]
    assert ids("start=2026-12-03") == [c]
    assert ids("end=2026-12-01") == [a, b]
    assert ids("start=2026-12-01&end=2026-12-01&campaign_id=1") == [a]
    # A refused filter is said and dropped, never a crash.
    html = client.get("/messages?campaign_id=abc&start=2026-13-01").get_data(as_text=True)
    assert "活动 ID 须为正整数" in html and "日期须写作 YYYY-MM-DD" in html
    assert len(re.findall(r'<tr data-message="', html)) == 3


def test_the_log_pages_fifty_at_a_time(app, client, login):
    with get_db(app).session_scope(write=True) as s:
        for i in range(55):
            make_message(s, created_at=T0 + timedelta(minutes=i))
    login("analyst")
    first = client.get("/messages").get_data(as_text=True)
    second = client.get("/messages?page=2").get_data(as_text=True)
    assert len(re.findall(r'<tr data-message="', first)) == 50
    assert len(re.findall(r'<tr data-message="', second)) == 5
    assert "共 55 条" in first


def test_an_empty_log_explains_itself(client, login):
    login("analyst")
    assert "还没有发送过消息" in client.get("/messages").get_data(as_text=True)
    assert "没有符合条件的消息" in client.get("/messages?status=dead").get_data(as_text=True)


# --- retry ------------------------------------------------------------------------------------------


def test_retrying_selected_messages_requeues_only_the_retryable_ones_and_is_audited(app, client, login):
    later = T0 + timedelta(days=1)
    failed = _message(app, status="failed", attempts=3, error_code="isp.SYSTEM_ERROR", error="busy",
                      due_at=later)
    dead = _message(app, status="dead", attempts=8, hold_reason=None)
    sent = _message(app, status="sent", attempts=1)
    sending = _message(app, status="sending", attempts=1, claimed_by="worker-1")
    login("marketer")

    response = client.post("/messages/retry", data={"ids": [str(failed), str(dead), str(sent), str(sending)],
                                                    "status": ""})
    assert response.status_code == 302

    for message_id in (failed, dead):
        m = _get(app, message_id)
        assert (m.status, m.attempts, m.hold_reason) == ("queued", 0, None)
        assert m.due_at < datetime.now(UTC) + timedelta(seconds=5)
    assert _get(app, failed).error == "busy"  # kept until the next try says otherwise
    assert _get(app, sent).status == "sent" and _get(app, sending).status == "sending"
    [entry] = _audit(app, "messages.retried")
    assert entry.details["count"] == 2 and entry.details["ids"] == sorted([failed, dead, sent, sending])
    assert "已重新排队 2 条消息" in client.get("/messages").get_data(as_text=True)


def test_retrying_everything_matching_the_filter_says_how_many_first_and_touches_only_those(app, client, login):
    mine = [_message(app, campaign_id=5, status=s) for s in ("failed", "capped", "unreachable", "delivered")]
    other = _message(app, campaign_id=6, status="failed")
    login("admin")
    html = client.get("/messages?campaign_id=5").get_data(as_text=True)
    assert "将重新排队 3 条符合当前筛选条件的消息" in html
    assert re.search(r'id="retry-all-form"\s+data-confirm=', html)

    client.post("/messages/retry", data={"scope": "all", "campaign_id": "5"})

    assert [_get(app, i).status for i in mine] == ["queued", "queued", "queued", "delivered"]
    assert _get(app, other).status == "failed"
    [entry] = _audit(app, "messages.retried")
    assert entry.details == {"count": 3, "filters": {"campaign_id": "5"}}


def test_one_message_can_be_retried_from_its_page(app, client, login):
    message_id = _message(app, status="skipped_no_consent")
    login("marketer")
    html = client.get(f"/messages/{message_id}").get_data(as_text=True)
    assert 'id="retry-one"' in html
    client.post(f"/messages/{message_id}/retry")
    assert _get(app, message_id).status == "queued"
    client.post(f"/messages/{message_id}/retry")  # now queued: nothing more to do
    assert len(_audit(app, "messages.retried")) == 2
    assert 'id="retry-one"' not in client.get(f"/messages/{message_id}").get_data(as_text=True)


# --- export and detail ------------------------------------------------------------------------------


def test_the_export_is_the_filtered_list_masked_and_audited(app, client, login, wang):
    _message(app, campaign_id=8, status="sent")
    login("analyst")
    response = client.get("/messages/export.csv?campaign_id=7")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = response.get_data(as_text=True).lstrip("\ufeff").strip().splitlines()
    assert lines[0].startswith("id,created_at,campaign_id,user_id,channel,class,status")
    assert len(lines) == 2 and "u_wang" in lines[1] and "失败" in lines[1] and "2026-12-01 10:00:00" in lines[1]
    [entry] = _audit(app, "messages.exported")
    assert entry.details == {"rows": 1, "filters": {"campaign_id": "7"}}


def test_a_message_page_shows_its_fields_history_and_fallback(app, client, login):
    first = _message(app, channel="wechat", status="unreachable", content={"wechat_kind": "template", "data": {}},
                     fallback="sms", error_code="43004", error="require subscribe")
    second = _message(app, channel="sms", status="delivered", fallback_of=first, sent_at=T0,
                      delivered_at=T0 + timedelta(minutes=1))
    login("analyst")
    html = client.get(f"/messages/{second}").get_data(as_text=True)
    assert "已送达（回执）" in html and "2026-12-01 10:01:00" in html
    assert f'href="/messages/{first}"' in html and "本消息替代了它" in html
    assert "require subscribe" in client.get(f"/messages/{first}").get_data(as_text=True)
    assert client.get("/messages/987654").status_code == 404


# --- channel health ---------------------------------------------------------------------------------


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


def test_health_counts_each_channel_by_status_over_a_day_and_a_week(app, client, login, now):
    with get_db(app).session_scope(write=True) as s:
        for status in ("delivered", "delivered", "delivered", "sent", "failed"):
            make_message(s, channel="sms", status=status, created_at=now - timedelta(hours=2),
                         sent_at=now - timedelta(minutes=30))
        make_message(s, channel="sms", status="failed", created_at=now - timedelta(days=3),
                     updated_at=now - timedelta(days=3), error_code="isv.BLACK_KEY_CONTROL_LIMIT", error="黑名单")
        make_message(s, channel="sms", status="sent", created_at=now - timedelta(days=9))  # out of the week
        make_message(s, channel="email", status="queued", created_at=now - timedelta(hours=3))
        make_message(s, channel="email", status="sent", created_at=now - timedelta(hours=1),
                     sent_at=now - timedelta(minutes=10))
    login("analyst")
    html = client.get("/messages/health").get_data(as_text=True)

    sms = html[html.index('id="health-sms"'):html.index('id="health-email"')]
    assert re.search(r'data-status-row="delivered">.*?data-period="day">3<.*?data-period="week">3<', sms, re.S)
    assert re.search(r'data-status-row="failed">.*?data-period="day">1<.*?data-period="week">2<', sms, re.S)
    assert re.search(r'data-stat="sent_last_hour">5<', sms)
    assert re.search(r'data-stat="delivery_rate">50.0%<', sms)  # 3 / (1 sent + 3 delivered + 2 failed)
    assert "isv.BLACK_KEY_CONTROL_LIMIT" in sms and "黑名单" in sms
    assert 'data-provider="console"' in sms
    email = html[html.index('id="health-email"'):html.index('id="health-webhook"')]
    assert re.search(r'data-stat="waiting">1<', email) and "3 小时" in email
    assert re.search(r'data-stat="delivery_rate">—<', email)  # no receipts: no rate
    assert "未配置" in email  # no SMTP URL


def test_health_shows_a_paused_channel_and_the_wechat_mass_quota_of_the_month(app, client, login, now):
    with get_db(app).session_scope(write=True) as s:
        s.add(WechatMassJob(msg_id="m1", campaign_id=3, recipients=1200, sent_at=now - timedelta(minutes=5),
                            status="send success", total_count=1200, filter_count=1180, sent_count=1175,
                            error_count=5, finished_at=now))
        s.add(WechatMassJob(msg_id="m0", recipients=10, sent_at=now - timedelta(days=40)))
    login("admin")
    client.post("/messages/settings", data={"wechat_paused": "true"})
    html = client.get("/messages/health").get_data(as_text=True)
    wechat = html[html.index('id="health-wechat"'):html.index('id="health-sms"')]
    assert 'data-paused="1"' in wechat
    assert re.search(r'id="mass-quota">3<', html)
    assert 'data-job="m1"' in html and "1,175" in html and 'data-job="m0"' not in html


def _count_queries(app, url: str, client) -> int:  # type: ignore[no-untyped-def]
    statements: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    engine = get_db(app).engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", before)
    return len(statements)


def test_the_health_page_reads_a_fixed_number_of_queries_however_many_messages(app, client, login, now):
    login("analyst")
    _message(app, channel="sms", status="failed", created_at=now, updated_at=now, error="x")
    few = _count_queries(app, "/messages/health", client)
    with get_db(app).session_scope(write=True) as s:
        for i in range(40):
            make_message(s, channel=("sms", "email", "wechat", "webhook")[i % 4],
                         status=("failed", "sent", "queued", "delivered")[i % 4], created_at=now - timedelta(hours=i),
                         updated_at=now - timedelta(hours=i), error=f"e{i}", sent_at=now)
        s.add(WechatMassJob(msg_id="m9", recipients=2, sent_at=now))
    many = _count_queries(app, "/messages/health", client)
    assert many == few
    assert many <= 8  # user, settings, three health queries, mass jobs (and the session's own reads)


# --- the investor page ------------------------------------------------------------------------------


def test_the_investor_page_shows_consent_reachability_and_a_link_to_their_messages(app, client, login, wang):
    from channels.services import mark_unreachable, record_statement

    investor_id, _message_id = wang
    with get_db(app).session_scope(write=True) as s:
        record_statement(session=s, investor_id=investor_id, channel="sms", granted=True, occurred_at=T0,
                         source="platform_event", event_id="evt_c1")
        record_statement(session=s, investor_id=investor_id, channel="email", granted=False, occurred_at=T0,
                         source="unsubscribe_link")
        mark_unreachable(session=s, investor_id=investor_id, channel="sms", address=PHONE,
                         code="isv.MOBILE_NUMBER_ILLEGAL", reason="illegal", now=T0)
    login("analyst")
    html = client.get(f"/investors/{investor_id}").get_data(as_text=True)
    start = html.index('id="reachability"')
    card = html[start:html.index("</table>", start)]
    assert re.search(r'data-channel="sms">.*?data-consent="granted".*?data-unreachable="isv.MOBILE_NUMBER_ILLEGAL"',
                     card, re.S)
    assert 'data-consent="withdrawn"' in card and "退订链接" in card
    assert re.search(r'data-channel="wechat">.*?data-consent="none".*?无联系方式', card, re.S)
    assert 'href="/messages?user_id=u_wang"' in card
