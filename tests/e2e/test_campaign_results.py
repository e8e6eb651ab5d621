"""The second half of the campaign story: an approved rate-boost campaign runs on schedule by itself (the
`growth worker` child of `growth serve`: scheduler, runner, fulfilment, delivery), and its page shows the
outcome — members, grants, messages — with charts that render without a console error, in Chinese and
English, on a 1440 px screen and a 390 px phone (screenshots in tests/e2e/artifacts/).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import Error as PlaywrightError

from tests.e2e.campaign_steps import open_editor_once_the_channel_is_known, send_events
from tests.e2e.conftest import ARTIFACTS, Staff
from tests.events import event

pytestmark = pytest.mark.e2e

CHANNEL = "e2e_results_channel"
PEOPLE = 6
RUN_TIMEOUT = 240  # the run waits for its minute, then the scheduler, runner, fulfilment and delivery take turns
WIDE = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
SHANGHAI_OFFSET = timedelta(hours=8)


@pytest.fixture(scope="module")
def audience(base_url: str) -> None:
    """Investors of one acquisition channel, sent through the real events API."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    events = [event("user.registered", f"res_e2e_{i}", now - timedelta(days=3), {"channel_code": CHANNEL},
                    phone=f"+86136000{i:05d}", name=f"效果用户{i}") for i in range(PEOPLE)]
    send_events(base_url, events)



def _sign_in(page: Page, person: Staff) -> None:
    page.goto("/login")
    page.get_by_label("邮箱").fill(person.email)
    page.get_by_label("密码").fill(person.password)
    page.locator("#login-submit").click()
    expect(page).to_have_url(re.compile(r"/$"))


def _tile(page: Page, name: str) -> str:
    return page.locator(f'[data-tile="{name}"] .fs-5').inner_text().strip()


def _screenshot(page: Page, name: str, viewport: dict[str, int]) -> None:
    page.set_viewport_size(viewport)
    page.wait_for_timeout(300)  # Plotly resizes its charts to the new width
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"campaign-results-{name}.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"], f"{name}: the page scrolls sideways ({width}px)"


def test_an_approved_campaign_runs_on_schedule_and_its_page_shows_the_outcome(
    page: Page, browser: Browser, base_url: str, staff: dict[str, Staff], sign_in: Callable[[Staff], None],
    audience: None,
) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(staff["marketer"])
    open_editor_once_the_channel_is_known(page, "rate_boost", CHANNEL)
    page.get_by_label("活动名称").fill("定时加息提醒")
    # A service notice about the investor's own reward: no consent, caps or quiet hours, so the outcome does
    # not depend on the time of day the test runs at.
    page.locator("#f-class").select_option("service")
    page.locator("#when-schedule").check()
    page.locator("#schedule-at").check()
    # The next whole minute at least 40 s away (the field has minutes only): after the approval, before long.
    at = (datetime.now(UTC) + SHANGHAI_OFFSET + timedelta(seconds=100)).replace(second=0, microsecond=0)
    page.locator("#f-schedule-at").fill(at.strftime("%Y-%m-%dT%H:%M"))
    page.locator("#add-condition").click()
    page.locator(".condition-row").nth(0).get_by_label("条件").select_option("channel")
    page.locator(".condition-row").nth(0).get_by_label("取值").select_option([CHANNEL])
    expect(page.locator("#audience-count")).to_have_text(str(PEOPLE))
    page.locator("#f-holdout_percent").fill("50")
    # A rate boost granted without an investment has no maximum cost, so the budget limits the count only.
    page.locator("#f-budget-max_amount").fill("")
    expect(page.locator("#check-ok")).to_be_visible()
    page.locator("#save-campaign").click()
    expect(page.locator("#campaign-status [data-status]")).to_have_attribute("data-status", "draft")
    expect(page.locator("#next-runs")).to_contain_text(at.strftime("%Y-%m-%d %H:%M"))
    expect(page.locator("#misfire-policy")).to_contain_text("补跑一次")
    page.locator("#action-submit").click()
    expect(page.locator("#campaign-status [data-status]")).to_have_attribute("data-status", "pending_approval")
    campaign_url = page.url

    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", base_url=base_url)
    try:
        approver = context.new_page()
        approver.on("dialog", lambda dialog: dialog.accept())
        _sign_in(approver, staff["approver"])
        approver.goto(campaign_url)
        approver.locator("#action-approve").click()
        expect(approver.locator("#campaign-status [data-status]")).to_have_attribute("data-status", "scheduled")
    finally:
        context.close()

    page.goto("/campaigns")
    expect(page.locator("#run-calendar")).to_contain_text("定时加息提醒")
    expect(page.locator(f'#run-calendar [data-day="{at.date().isoformat()}"]')).to_contain_text(at.strftime("%H:%M"))

    # Nobody presses anything now: the worker's scheduler starts the run at its time and the rest follows.
    page.goto(campaign_url)
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        page.wait_for_load_state("load")
        try:
            running = page.locator('#campaign-runs[data-in-progress="true"]').count()
            done = (not running and page.locator('#campaign-runs #run-list').count()
                    and page.locator('[data-tile="members"]').count()
                    and _tile(page, "messages").split(" / ")[0] == _tile(page, "granted") != "0")
        except PlaywrightError:  # the page reloaded itself while we looked: look again
            running, done = 1, False
        if done or time.monotonic() > deadline:
            break
        page.wait_for_timeout(3000)
        if not running:  # while a run is in progress the page polls and reloads itself: a reload of ours would race it
            page.reload()
    assert done, f"the campaign did not run and finish within {RUN_TIMEOUT} s"

    expect(page.locator("#campaign-status [data-status]")).to_have_attribute("data-status", "finished")
    assert _tile(page, "members") == str(PEOPLE)
    treated, holdout = int(_tile(page, "treated")), int(_tile(page, "holdout"))
    assert treated + holdout == PEOPLE
    assert _tile(page, "granted") == str(treated)
    assert _tile(page, "messages") == f"{treated} / {treated}"  # the console SMS provider sends each one
    expect(page.locator("#run-list [data-run]")).to_have_count(1)
    expect(page.locator("#run-list .run-counts")).to_contain_text(f"已处理 {PEOPLE} / 选中 {PEOPLE} 人")
    for chart in ("#messages-chart", "#burn-chart"):
        expect(page.locator(f"{chart} .main-svg").first).to_be_visible()
    expect(page.locator("#no-conversion")).to_be_visible()  # nobody has invested since: no empty chart frame

    _screenshot(page, "zh-1440", WIDE)
    _screenshot(page, "zh-390", PHONE)
    page.set_viewport_size(WIDE)  # the language menu sits in the collapsed menu on a phone
    page.locator("#langmenu").click()
    page.locator("#lang-en").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#campaign-results")).to_contain_text("Lift")
    _screenshot(page, "en-1440", WIDE)
    _screenshot(page, "en-390", PHONE)
