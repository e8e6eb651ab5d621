"""A marketer builds a rate-boost campaign in the browser; an approver, in another browser, approves it.

The live audience count follows the segment builder, the live compliance check blocks a banned phrase
until it is fixed, and the campaign pages fit a 390 px phone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.campaign_steps import open_editor_once_the_channel_is_known, send_events
from tests.e2e.conftest import PageLog, Staff
from tests.events import event, investment

pytestmark = pytest.mark.e2e

CHANNEL = "e2e_campaign_channel"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def investors(base_url: str) -> None:
    """Five investors of one channel, three of whom have invested, sent through the real events API."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    events = []
    for i in range(5):
        uid = f"camp_e2e_{i}"
        events.append(event("user.registered", uid, now - timedelta(days=10), {"channel_code": CHANNEL},
                            phone=f"+86137000{i:05d}", name=f"活动用户{i}"))
        if i < 3:
            events.append(investment(uid, now - timedelta(days=5), f"inv_camp_{i}", amount="5000.00"))
    send_events(base_url, events)



def test_a_marketer_builds_a_rate_boost_and_an_approver_approves_it(
    page: Page, browser: Browser, base_url: str, staff: dict[str, Staff], sign_in: Callable[[Staff], None],
    investors: None,
) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(staff["marketer"])
    page.locator("#nav-marketing").click()  # campaigns sit in the "营销" menu
    page.locator("#mainnav").get_by_role("link", name="活动", exact=True).click()
    page.locator("#new-campaign").click()
    page.locator(".type-card[data-type=rate_boost]").click()
    expect(page.get_by_role("heading", name="新建活动")).to_be_visible()
    open_editor_once_the_channel_is_known(page, "rate_boost", CHANNEL)

    page.get_by_label("活动名称").fill("浏览器加息周")
    count = page.locator("#audience-count")
    expect(count).not_to_have_text("—")

    page.locator("#add-condition").click()
    row = page.locator(".condition-row").nth(0)
    row.get_by_label("条件").select_option("channel")
    page.locator(".condition-row").nth(0).get_by_label("取值").select_option([CHANNEL])
    expect(count).to_have_text("5")

    page.locator("#add-condition").click()  # investment count ≥ 1 by default
    expect(page.locator(".condition-row")).to_have_count(2)
    expect(count).to_have_text("3")

    sms = page.locator("[data-bind='msg:sms.text']")
    sms.fill("{{ investor.name }}您好，保本加息1%限时开启。投资有风险，理财需谨慎。回T退订")
    problem = page.locator("#live-check-body li[data-code=banned_phrase]")
    expect(problem).to_be_visible()
    expect(problem).to_contain_text("保本")
    expect(sms).to_have_class(re.compile(r"is-invalid"))
    expect(page.locator(".problem-note[data-code=banned_phrase]")).to_be_visible()

    sms.fill("{{ investor.name }}您好，加息1%限时开启。投资有风险，理财需谨慎。回T退订")
    expect(page.locator("#check-ok")).to_be_visible()
    expect(sms).not_to_have_class(re.compile(r"is-invalid"))
    expect(page.locator("#live-preview .sms-parts")).to_contain_text("1 条短信")

    page.locator("#save-campaign").click()
    expect(page.locator("#campaign-status [data-status]")).to_have_attribute("data-status", "draft")
    expect(page.locator("#compliance-ok")).to_be_visible()
    expect(page.locator("#summary-audience")).to_contain_text(CHANNEL)
    campaign_url = page.url

    page.locator("#action-submit").click()
    expect(page.locator("#campaign-status [data-status]")).to_have_attribute("data-status", "pending_approval")
    expect(page.locator("#action-approve")).to_have_count(0)  # a marketer does not approve

    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", base_url=base_url)
    try:
        approver = context.new_page()
        approver.on("dialog", lambda dialog: dialog.accept())
        errors: list[str] = []
        approver.on("pageerror", lambda exc: errors.append(str(exc)))
        approver.goto("/login")
        approver.get_by_label("邮箱").fill(staff["approver"].email)
        approver.get_by_label("密码").fill(staff["approver"].password)
        approver.locator("#login-submit").click()
        expect(approver).to_have_url(re.compile(r"/$"))
        approver.goto(campaign_url)
        approver.locator("#action-approve").click()
        expect(approver.locator("#campaign-status [data-status]")).to_have_attribute("data-status", "active")
        expect(approver.locator("#campaign-history [data-action=approve]")).to_contain_text(staff["approver"].name)
        assert errors == []
    finally:
        context.close()

    page.reload()
    expect(page.locator("#campaign-status")).to_contain_text("进行中")


def test_the_campaign_pages_fit_a_390px_phone(
    page: Page, page_log: PageLog, staff: dict[str, Staff], sign_in: Callable[[Staff], None],
) -> None:
    sign_in(staff["marketer"])
    page.set_viewport_size(PHONE)
    page.goto("/campaigns/new")
    page.locator(".type-card[data-type=new_user]").click()
    page.locator("#save-campaign").click()
    expect(page.locator("#campaign-status [data-status]")).to_have_attribute("data-status", "draft")
    for path in ["/campaigns", "/campaigns/new", "/campaigns/new?type=referral", urlsplit(page.url).path]:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways on a phone: {width}px wide"
