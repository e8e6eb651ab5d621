"""The CRM worklist in a real browser: the scheduler's rules give an agent a task for a stalled investor; the
agent reaches it with the keyboard (j / k, Enter), logs a call with a next follow-up, and the follow-up appears."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
from playwright.sync_api import Page, expect
from standardwebhooks import Webhook

from growth.timeutil import SHANGHAI
from tests.e2e.conftest import WEBHOOK_SECRET, Staff

RUN = str(int(time.time()))


def _register_stalled_investor(base_url: str) -> str:
    """Register an investor two days ago who never did KYC (the registered_no_kyc rule); return their id."""
    uid, now = f"e2e_crm_{RUN}", datetime.now(UTC)
    body = orjson.dumps({"events": [{
        "id": f"evt_{uid}", "type": "user.registered", "occurred_at": (now - timedelta(days=2)).isoformat(),
        "user": {"id": uid, "phone": "+8613700004444"}, "data": {}}]})
    msg_id = f"e2e_crm_{RUN}"
    request = urllib.request.Request(base_url + "/api/v1/events", data=body, method="POST", headers={
        "Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(WEBHOOK_SECRET).sign(msg_id, now, body.decode())})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert orjson.loads(response.read())["rejected"] == []
    return uid


def test_an_agent_works_a_task_from_the_keyboard_and_the_next_follow_up_appears(
        page: Page, base_url: str, staff: dict[str, Staff], sign_in: Callable[[Staff], None]) -> None:
    uid = _register_stalled_investor(base_url)
    sign_in(staff["agent"])
    page.goto("/crm?reason=registered_no_kyc")
    ours = page.locator("tr[data-crm-row]", has_text=uid)
    for _ in range(40):  # the processor projects the event, then the scheduler's CRM job makes and assigns the task
        if ours.count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(ours).to_have_count(1)
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
