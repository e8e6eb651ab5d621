"""The investor 360 page through the test client: timeline, tags, reveal reasons, calls and notes from the page,
its query count, masking, and the page in English."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from growth.audit.models import AuditEntry
from growth.auth.models import StaffUser
from growth.crm.models import CrmCall, CrmNote, CrmTask
from growth.db import get_db
from growth.investors.models import InvestorTag
from growth.timeutil import SHANGHAI, utcnow
from tests.factories import PASSWORD, make_investor, make_message
from tests.investor360 import EMAIL, NAME, PHONE, make_rich_investor

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


@pytest.fixture
def rich(app):  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return make_rich_investor(s, now=utcnow())


def _audit(app, action: str) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def _kinds(html: str) -> list[str]:
    return re.findall(r'class="timeline-entry[^"]*" data-kind="(\w+)"', html)


# --- the timeline ---------------------------------------------------------------------------------


def test_the_page_shows_one_timeline_of_every_kind_with_filter_chips(client, login, rich, db_kind):
    login("agent")
    html = client.get(f"/investors/{rich.investor_id}").get_data(as_text=True)
    kinds = _kinds(html)
    assert set(kinds) == {"milestone", "investment", "funds", "reward", "message", "campaign", "call", "note", "task"}
    assert kinds[0] == "investment" and "天后到期" in html  # the coming maturity first
    assert re.findall(r'data-chip="(\w+)"', html) == ["all", "milestone", "investment", "funds", "reward", "message",
                                                      "campaign", "call", "note", "task"]
    assert "进入活动「双十二加息」" in html and "通话：接通-有意向" in html and "客户偏好短期产品" in html
    assert f'href="/crm/tasks/{rich.task_closed}"' in html
    assert f'href="/messages/{rich.message_id}"' in html  # agents may read the delivery log
    assert f'href="/rewards/{rich.reward_id}"' not in html  # … but not the reward ledger: no link, the entry stays
    assert "抵扣红包 ¥50.00" in html


def test_a_chip_filters_the_timeline_and_pages_go_older(client, login, rich, db_kind):
    login("admin")
    html = client.get(f"/investors/{rich.investor_id}?kind=call&kind=note").get_data(as_text=True)
    assert _kinds(html) == ["note", "call"]
    chip = rf'data-chip="call"\s+href="/investors/{rich.investor_id}\?kind=note#timeline"'
    assert re.search(chip, html)  # an active chip's link turns it off
    first = _kinds(client.get(f"/investors/{rich.investor_id}").get_data(as_text=True))
    assert len(first) == 20 and 'id="timeline-older"' in client.get(f"/investors/{rich.investor_id}").get_data(
        as_text=True)
    second = _kinds(client.get(f"/investors/{rich.investor_id}?tl_page=2").get_data(as_text=True))
    assert len(second) == 2 and second[-1] == "milestone"


def test_an_investor_with_no_history_shows_an_empty_timeline_and_no_tasks(app, client, login, db_kind):
    with get_db(app).session_scope(write=True) as s:
        investor_id = make_investor(s, registered_at=None).id
    login("agent")
    html = client.get(f"/investors/{investor_id}").get_data(as_text=True)
    assert "还没有任何记录" in html and 'id="crm-no-tasks"' in html and 'id="no-tags"' in html
    assert "没有这些类型的记录" in client.get(f"/investors/{investor_id}?kind=call").get_data(as_text=True)


def _selects(app, client, url: str) -> int:  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    engine = get_db(app).engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", before)
    return len(seen)


def test_the_investor_page_reads_a_fixed_number_of_queries_however_long_the_history(app, client, login, rich,
                                                                                      db_kind):
    login("agent")
    url = f"/investors/{rich.investor_id}"
    few = _selects(app, client, url)
    with get_db(app).session_scope(write=True) as s:
        now = utcnow()
        for n in range(40):
            at = now - timedelta(hours=n)
            make_message(s, investor_id=rich.investor_id, created_at=at, updated_at=at)
            s.add(CrmCall(investor_id=rich.investor_id, agent_id=rich.agent_id, outcome="no_answer", created_at=at))
            s.add(CrmNote(investor_id=rich.investor_id, author_id=rich.agent_id, body=f"n{n}", created_at=at))
            s.add(InvestorTag(investor_id=rich.investor_id, tag=f"t{n}", created_at=at))
    many = _selects(app, client, url)
    assert many == few
    assert many <= 40  # the page's own reads (profile, events, consent, rewards, referrals …) + 9 timeline + CRM + tags


# --- masking --------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["agent", "analyst", "marketer"])
def test_without_a_reveal_the_page_holds_no_full_phone_email_or_name_even_with_messages_and_calls(
        client, login, rich, role, db_kind):
    login(role)
    for url in (f"/investors/{rich.investor_id}", f"/investors/{rich.investor_id}?kind=message",
                f"/investors/{rich.investor_id}?tl_page=2"):
        html = client.get(url).get_data(as_text=True)
        assert "13800138000" not in html and PHONE not in html and EMAIL not in html
        assert NAME not in html and "三丰" not in html
    html = client.get(f"/investors/{rich.investor_id}?kind=message").get_data(as_text=True)
    assert "张**" in html and "****8000" in html  # the message text, masked


# --- tags -----------------------------------------------------------------------------------------


def test_an_agent_adds_a_trimmed_tag_once_and_removes_it_each_audited(app, client, login, rich, db_kind):
    login("agent")
    url = f"/investors/{rich.investor_id}"
    response = client.post(f"{url}/tags", data={"tag": "  高净值  "})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"{url}#tags")
    assert client.post(f"{url}/tags", data={"tag": "高净值"}).status_code == 302  # again: nothing new
    html = client.get(url).get_data(as_text=True)
    assert 'data-tag="高净值"' in html and 'href="/investors?tag=%E9%AB%98%E5%87%80%E5%80%BC"' in html
    assert [e.details for e in _audit(app, "investor.tagged")] == [{"tag": "高净值"}]
    assert 'data-confirm="确定移除标签“高净值”？"' in html

    assert client.post(f"{url}/tags/remove", data={"tag": "高净值"}).status_code == 302
    assert 'data-tag="高净值"' not in client.get(url).get_data(as_text=True)
    (removed,) = _audit(app, "investor.untagged")
    assert removed.details == {"tag": "高净值"} and removed.target_id == str(rich.investor_id)


@pytest.mark.parametrize(("tag", "message"), [
    ("", "请输入标签"),
    ("   ", "请输入标签"),
    ("x" * 51, "标签最多 50 个字"),
    ("vip\x07", "标签不能包含控制字符或不可见字符"),
    ("v\u200bip", "标签不能包含控制字符或不可见字符"),
    ("a\nb", "标签不能包含控制字符或不可见字符"),
])
def test_a_bad_tag_is_refused_with_a_clear_error_and_nothing_stored(app, client, login, rich, tag, message, db_kind):
    login("marketer")
    response = client.post(f"/investors/{rich.investor_id}/tags", data={"tag": tag})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with get_db(app).session_scope() as s:
        assert s.scalars(select(InvestorTag)).all() == []
    assert _audit(app, "investor.tagged") == []


def test_tag_errors_read_in_english_after_choosing_english(client, login, rich, db_kind):
    login("agent")
    client.get("/lang/en")
    html = client.post(f"/investors/{rich.investor_id}/tags", data={"tag": "x" * 51}).get_data(as_text=True)
    assert "A tag has at most 50 characters" in html


def test_a_read_only_role_sees_tags_but_may_not_change_them(app, client, login, rich, db_kind):
    with get_db(app).session_scope(write=True) as s:
        s.add(InvestorTag(investor_id=rich.investor_id, tag="vip", created_at=utcnow()))
    login("analyst")
    html = client.get(f"/investors/{rich.investor_id}").get_data(as_text=True)
    assert 'data-tag="vip"' in html and 'id="tag-form"' not in html and "tag-remove" not in html
    assert client.post(f"/investors/{rich.investor_id}/tags", data={"tag": "x"}).status_code == 403
    assert client.post(f"/investors/{rich.investor_id}/tags/remove", data={"tag": "vip"}).status_code == 403


def test_the_list_filters_by_tag_and_shows_tag_chips_as_does_the_worklist(app, client, rich, db_kind):
    with get_db(app).session_scope(write=True) as s:
        other = make_investor(s, platform_user_id="u_other")
        s.add(InvestorTag(investor_id=rich.investor_id, tag="vip", created_at=utcnow()))
        s.add(InvestorTag(investor_id=other.id, tag="回访中", created_at=utcnow()))
        email = s.get_one(StaffUser, rich.agent_id).email
    client.post("/login", data={"email": email, "password": PASSWORD})  # the agent whose task it is
    html = client.get("/investors?tag=vip").get_data(as_text=True)
    assert "u_rich" in html and "u_other" not in html and 'data-tag="vip"' in html
    assert 'value="vip"' in html  # the filter keeps its value
    html = client.get("/investors").get_data(as_text=True)
    assert "u_rich" in html and "u_other" in html and 'data-tag="回访中"' in html
    assert "没有符合条件的投资人" in client.get("/investors?tag=nobody").get_data(as_text=True)
    html = client.get("/crm").get_data(as_text=True)
    assert f'data-task="{rich.task_open}"' in html and 'data-tag="vip"' in html


def test_the_csv_export_follows_the_tag_filter_and_records_it(app, client, login, rich, db_kind):
    with get_db(app).session_scope(write=True) as s:
        make_investor(s, platform_user_id="u_other")
        s.add(InvestorTag(investor_id=rich.investor_id, tag="vip", created_at=utcnow()))
    login("marketer")
    body = client.get("/investors/export.csv?tag=vip").get_data(as_text=True)
    assert "u_rich" in body and "u_other" not in body
    assert _audit(app, "investor.exported")[-1].details["filters"]["tag"] == "vip"


# --- reveal with a reason -------------------------------------------------------------------------


def test_a_reveal_without_a_reason_is_refused_and_not_audited(app, client, login, rich, db_kind):
    login("agent")
    response = client.post(f"/investors/{rich.investor_id}/reveal", data={})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "请选择查看完整信息的原因" in html
    assert "reveal-box" in html and 'id="reveal-box" open' in html and PHONE not in html
    response = client.post(f"/investors/{rich.investor_id}/reveal", data={"reason": "other", "reason_text": "  "})
    assert response.status_code == 400 and "选择“其他”时请填写具体原因" in response.get_data(as_text=True)
    response = client.post(f"/investors/{rich.investor_id}/reveal", data={"reason": "curious"})
    assert response.status_code == 400
    assert _audit(app, "investor.pii_revealed") == []
    assert "13800138000" not in client.get(f"/investors/{rich.investor_id}").get_data(as_text=True)


def test_a_reveal_with_a_reason_is_audited_with_it_and_the_audit_page_names_it(app, client, login, rich, db_kind):
    login("admin")
    response = client.post(f"/investors/{rich.investor_id}/reveal",
                           data={"reason": "other", "reason_text": " 客户来电  要求核对 "})
    assert response.status_code == 302
    assert "+86 13800138000" in client.get(f"/investors/{rich.investor_id}").get_data(as_text=True)
    client.post(f"/investors/{rich.investor_id}/reveal", data={"reason": "complaint"})
    first, second = _audit(app, "investor.pii_revealed")
    assert first.details == {"platform_user_id": "u_rich", "reason": "other", "reason_text": "客户来电 要求核对"}
    assert second.details["reason"] == "complaint" and "reason_text" not in second.details
    html = client.get("/admin/audit/?action=investor.pii_revealed").get_data(as_text=True)
    assert "客户投诉" in html and "客户来电 要求核对" in html


def test_the_reveal_form_offers_the_common_reasons(client, login, rich, db_kind):
    login("agent")
    html = client.get(f"/investors/{rich.investor_id}").get_data(as_text=True)
    form = html[html.index('id="reveal-form"'):html.index("</form>", html.index('id="reveal-form"'))]
    assert all(label in form for label in ("回访客户", "核实身份", "客户投诉", "其他"))
    assert 'name="reason" required' in form and 'name="reason_text"' in form


# --- calls and notes from the page ----------------------------------------------------------------


def test_an_agent_logs_a_call_without_a_task_and_it_joins_the_timeline(app, client, login, rich, db_kind):
    agent = login("agent")
    later = (utcnow() + timedelta(days=2)).astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    response = client.post(f"/investors/{rich.investor_id}/call",
                           data={"task_id": "", "outcome": "not_interested", "note": "暂无资金",
                                 "next_follow_up": later})
    assert response.status_code == 302 and response.headers["Location"].endswith("#crm")
    with get_db(app).session_scope() as s:
        call = s.scalars(select(CrmCall).where(CrmCall.agent_id == agent.id)).one()
        assert call.task_id is None and call.outcome == "not_interested" and call.note == "暂无资金"
        # No task was named, so none is closed; the investor's open follow-up moves to this agent and time.
        follow = s.get_one(CrmTask, rich.task_open)
        assert follow.status == "open" and follow.assignee_id == agent.id
        assert follow.due_at.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M") == later
    html = client.get(f"/investors/{rich.investor_id}?kind=call").get_data(as_text=True)
    assert "通话：接通-无意向" in html and "暂无资金" in html


def test_a_call_on_one_of_the_investors_tasks_closes_it(app, client, login, rich, db_kind):
    login("admin")  # managers may log on another agent's task
    response = client.post(f"/investors/{rich.investor_id}/call",
                           data={"task_id": str(rich.task_open), "outcome": "interested", "note": ""})
    assert response.status_code == 302
    with get_db(app).session_scope() as s:
        assert s.get_one(CrmTask, rich.task_open).status == "done"
        assert s.scalars(select(CrmCall).where(CrmCall.task_id == rich.task_open)).one().outcome == "interested"
    html = client.get(f"/investors/{rich.investor_id}").get_data(as_text=True)
    assert 'id="crm-no-tasks"' in html


def test_a_call_is_refused_with_the_error_at_its_field_and_the_form_kept(app, client, login, rich, db_kind):
    login("agent")
    url = f"/investors/{rich.investor_id}/call"
    response = client.post(url, data={"outcome": "", "note": "留着"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "请选择通话结果" in html and ">留着</textarea>" in html
    response = client.post(url, data={"outcome": "interested", "next_follow_up": "2001-01-01T10:00"})
    assert response.status_code == 400 and "下次回访时间须晚于现在" in response.get_data(as_text=True)
    with get_db(app).session_scope(write=True) as s:
        stranger = make_investor(s)
        foreign = CrmTask(investor_id=stranger.id, reason="dormant", due_at=utcnow(), cause_key="dormant:x",
                          source_key=f"{stranger.id}:dormant")
        s.add(foreign)
        s.flush()
        foreign_id = foreign.id
    response = client.post(url, data={"task_id": str(foreign_id), "outcome": "interested"})
    assert response.status_code == 400 and "请选择该投资人的待处理任务" in response.get_data(as_text=True)
    with get_db(app).session_scope() as s:
        assert s.scalars(select(CrmCall).where(CrmCall.note == "留着")).all() == []
        assert s.get_one(CrmTask, foreign_id).status == "open"


def test_do_not_contact_from_the_page_withdraws_consent_and_cancels_open_tasks(app, client, login, rich, db_kind):
    login("agent")
    client.post(f"/investors/{rich.investor_id}/call", data={"outcome": "do_not_contact"})
    with get_db(app).session_scope() as s:
        assert s.get_one(CrmTask, rich.task_open).status == "cancelled"
    html = client.get(f"/investors/{rich.investor_id}").get_data(as_text=True)
    assert html.count('data-consent="withdrawn"') == 3


def test_an_agent_adds_a_note_from_the_page_and_an_empty_one_is_refused(app, client, login, rich, db_kind):
    login("agent")
    url = f"/investors/{rich.investor_id}/note"
    assert client.post(url, data={"body": "  客户下周出差  "}).status_code == 302
    response = client.post(url, data={"body": "   "})
    assert response.status_code == 400 and "备注须为 1 到 2000 个字" in response.get_data(as_text=True)
    with get_db(app).session_scope() as s:
        assert [n.body for n in s.scalars(select(CrmNote).order_by(CrmNote.id))][-1] == "客户下周出差"
    assert "客户下周出差" in client.get(f"/investors/{rich.investor_id}?kind=note").get_data(as_text=True)


def test_roles_without_crm_work_see_the_owner_and_tasks_but_no_forms_and_may_not_post(client, login, rich, db_kind):
    login("analyst")
    html = client.get(f"/investors/{rich.investor_id}").get_data(as_text=True)
    assert 'id="crm-owner"' in html and f'data-task="{rich.task_open}"' in html
    assert 'id="investor-call-form"' not in html and 'id="investor-note-form"' not in html
    assert client.post(f"/investors/{rich.investor_id}/call", data={"outcome": "interested"}).status_code == 403
    assert client.post(f"/investors/{rich.investor_id}/note", data={"body": "x"}).status_code == 403


def test_the_crm_panel_names_the_owner_and_links_open_tasks(app, client, login, rich, db_kind):
    login("agent")
    html = client.get(f"/investors/{rich.investor_id}").get_data(as_text=True)
    owner = html[html.index('id="crm-owner"'):html.index("</dd>", html.index('id="crm-owner"'))]
    assert "agent " in owner
    assert f'<a href="/crm/tasks/{rich.task_open}">约定回访</a>' in html
    assert 'id="investor-actions"' in html  # where other actions on the investor (a templated message) go


# --- English --------------------------------------------------------------------------------------


def test_the_investor_360_page_is_english_after_choosing_english(app, client, login, db_kind):
    with get_db(app).session_scope(write=True) as s:
        investor_id = make_investor(s, platform_user_id="u_en", name="Ann Lee", phone="+8613912345678").id
    login("admin")
    client.get("/lang/en")
    client.post(f"/investors/{investor_id}/tags", data={"tag": "vip"})
    client.post(f"/investors/{investor_id}/call", data={"outcome": "interested", "note": "ok"})
    client.post(f"/investors/{investor_id}/note", data={"body": "prefers email"})
    html = client.get(f"/investors/{investor_id}").get_data(as_text=True)
    chrome = html[html.index("<main"):html.index("</main>")] if "<main" in html else html
    start, end = chrome.index('id="tags"'), chrome.index('id="reachability"')
    assert [line for line in chrome[start:end].splitlines() if CJK.search(line)] == []
    assert "Timeline" in html and "Log a call" in html and "Call: Reached – interested" in html
