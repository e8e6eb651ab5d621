"""The CRM worklist in a real browser: the scheduler's rules give an agent a task for a stalled investor; the
agent reaches it with the keyboard (j / k, Enter), logs a call with a next follow-up, and the follow-up appears;
an agent sends a library template from a task, sees its checks first, and the task closes."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
from playwright.sync_api import Browser, Locator, Page, expect
from standardwebhooks import Webhook

from growth.timeutil import SHANGHAI
from tests.e2e.conftest import WEBHOOK_SECRET, Staff

RUN = str(int(time.time()))


def _register_stalled_investor(base_url: str, suffix: str = "", phone: str = "+8613700004444") -> str:
    """Register an investor two days ago who never did KYC (the registered_no_kyc rule); return their id."""
    uid, now = f"e2e_crm_{RUN}{suffix}", datetime.now(UTC)
    body = orjson.dumps({"events": [{
        "id": f"evt_{uid}", "type": "user.registered", "occurred_at": (now - timedelta(days=2)).isoformat(),
        "user": {"id": uid, "phone": phone}, "data": {}}]})
    msg_id = f"e2e_crm_{RUN}{suffix}"
    request = urllib.request.Request(base_url + "/api/v1/events", data=body, method="POST", headers={
        "Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(WEBHOOK_SECRET).sign(msg_id, now, body.decode())})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert orjson.loads(response.read())["rejected"] == []
    return uid


def _wait_for_task(page: Page, uid: str) -> Locator:
    """Open the worklist until the investor's registered_no_kyc task is on it; return its row."""
    page.goto("/crm?reason=registered_no_kyc")
    ours = page.locator("tr[data-crm-row]", has_text=uid)
    for _ in range(40):  # the processor projects the event, then the scheduler's CRM job makes and assigns the task
        if ours.count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(ours).to_have_count(1)
    return ours


def test_an_agent_works_a_task_from_the_keyboard_and_the_next_follow_up_appears(
        page: Page, base_url: str, staff: dict[str, Staff], sign_in: Callable[[Staff], None]) -> None:
    uid = _register_stalled_investor(base_url)
    sign_in(staff["agent"])
    ours = _wait_for_task(page, uid)
    expect(ours).to_contain_text("137****4444")
    task_url = ours.get_attribute("data-href")
    rows = page.locator("tr[data-crm-row]")

    for _ in range(rows.count()):  # j moves down the list until our row is the selected one
        page.keyboard.press("j")
        if ours.get_attribute("aria-selected") == "true":
            break
    expect(ours).to_have_class(re.compile("table-active"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(re.escape(task_url or "-") + "$"))
    expect(page.locator("#investor-link")).to_have_text(uid)

    when = (datetime.now(UTC) + timedelta(days=3)).astimezone(SHANGHAI)
    page.get_by_label("通话结果").select_option(label="接通-有意向")
    page.get_by_label("备注", exact=True).fill("客户想先了解新手标")
    page.get_by_label("下次回访（北京时间，可不填）").fill(when.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="保存并完成任务").click()

    expect(page.locator(".alert-success")).to_contain_text("通话已记录")
    page.goto("/crm?reason=follow_up")
    expect(page.locator("tr[data-crm-row]", has_text=uid)).to_contain_text("约定回访")
    page.goto("/crm?reason=registered_no_kyc&status=done")
    expect(page.locator("tr[data-crm-row]", has_text=uid)).to_have_count(1)


def _add_service_template(browser: Browser, base_url: str, marketer: Staff, name: str) -> None:
    """A marketer adds a service SMS template to the library, in a browser of their own."""
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", base_url=base_url)
    tab = context.new_page()
    try:
        tab.goto("/login")
        tab.get_by_label("邮箱").fill(marketer.email)
        tab.get_by_label("密码").fill(marketer.password)
        tab.locator("#login-submit").click()
        expect(tab).to_have_url(re.compile(r"/$"))
        tab.goto("/messages/templates/new")
        tab.locator("#t-name").fill(name)
        tab.locator("#t-channel").select_option("sms")
        tab.locator("#t-class").select_option("service")
        tab.locator("#t-body").fill("{{ investor.name }}您好，您预约的回访已确认，客服稍后联系您。")
        tab.locator("#save-template").click()
        expect(tab).to_have_url(re.compile(r"/messages/templates/\d+$"))
    finally:
        context.close()


def test_an_agent_opens_an_investor_from_the_worklist_logs_a_call_books_the_next_and_sends_a_template(
        page: Page, browser: Browser, base_url: str, staff: dict[str, Staff],
        sign_in: Callable[[Staff], None]) -> None:
    """The issue's story: worklist → the investor (one click) → a call with its outcome and the next follow-up
    → a templated message, its checks and preview seen first; the task closes and the follow-up is next."""
    name = f"回访确认 {RUN}"
    _add_service_template(browser, base_url, staff["marketer"], name)
    uid = _register_stalled_investor(base_url, "_msg", phone="+8613700005555")
    sign_in(staff["agent"])
    ours = _wait_for_task(page, uid)
    ours.get_by_role("link", name=uid).click()  # one click from the worklist to the investor
    expect(page).to_have_url(re.compile(r"/investors/\d+$"))
    investor_url = page.url
    expect(page.locator("#crm-open-tasks")).to_contain_text("注册未实名")

    when = (datetime.now(UTC) + timedelta(days=2)).astimezone(SHANGHAI)
    page.locator("#call-task").select_option(index=1)  # the open task, closed by this call
    page.get_by_label("通话结果").select_option(label="接通-有意向")
    page.locator("#call-note").fill("客户愿意完成实名，约后天再联系")
    page.get_by_label("下次回访（北京时间，可不填）").fill(when.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="保存通话").click()
    expect(page.locator(".alert-success")).to_be_visible()
    expect(page.locator('#timeline-entries [data-kind="call"]').first).to_contain_text("接通-有意向")
    expect(page.locator("#crm-open-tasks")).to_contain_text("约定回访")  # the next follow-up, booked by the call
    expect(page.locator("#crm-open-tasks")).not_to_contain_text("注册未实名")

    page.locator("#send-message").click()
    page.get_by_label("模板").select_option(label=f"{name} · 服务通知")
    page.get_by_role("button", name="预览").click()
    expect(page.locator("#send-checks")).to_have_attribute("data-class", "service")
    expect(page.locator("#message-class")).to_contain_text("不需营销同意")
    expect(page.locator("#sms-length")).to_contain_text("计 1 条")
    expect(page.locator("#message-preview")).to_contain_text("您预约的回访已确认")
    expect(page.locator("body")).not_to_contain_text("13700005555")
    page.get_by_role("button", name="发送", exact=True).click()
    expect(page.locator(".alert-success")).to_contain_text("消息已进入发送队列")

    page.goto(investor_url)
    expect(page.locator('#timeline-entries [data-kind="message"]').first).to_contain_text("短信")
    page.goto("/crm?reason=registered_no_kyc&status=done")
    expect(page.locator("tr[data-crm-row]", has_text=uid)).to_have_count(1)
    page.goto("/crm?reason=follow_up")
    expect(page.locator("tr[data-crm-row]", has_text=uid)).to_contain_text("约定回访")
