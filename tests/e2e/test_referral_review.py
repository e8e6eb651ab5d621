"""The referral review queue in a real browser: flagged referrals arrive as signed platform events, an admin
approves one and rejects another, each with a note and a confirmation dialog."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
from playwright.sync_api import Dialog, Page, expect
from standardwebhooks import Webhook

from growth.investors.rules import referral_code_for
from tests.e2e.conftest import WEBHOOK_SECRET, Staff

RUN = str(int(time.time()))  # the server lives for the whole session: ids of this test's own


def _post_events(base_url: str, events: list[dict]) -> None:
    body = orjson.dumps({"events": events})
    msg_id, now = f"e2e_ref_{RUN}", datetime.now(UTC)
    request = urllib.request.Request(base_url + "/api/v1/events", data=body, method="POST", headers={
        "Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(WEBHOOK_SECRET).sign(msg_id, now, body.decode())})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert orjson.loads(response.read())["rejected"] == []


def _flagged_referrals(base_url: str) -> tuple[str, str]:
    """Register a referrer and two referees with virtual-operator phones (flagged for review); return their ids."""
    at = datetime.now(UTC) - timedelta(days=40)
    referrer, first, second = f"e2e_ref_{RUN}", f"e2e_fan1_{RUN}", f"e2e_fan2_{RUN}"

    def registered(uid: str, phone: str, data: dict) -> dict:
        return {"id": f"evt_{uid}", "type": "user.registered", "occurred_at": at.isoformat(),
                "user": {"id": uid, "phone": phone}, "data": data}

    _post_events(base_url, [
        registered(referrer, "+8613800001111", {"ip": "198.51.100.1"}),
        registered(first, "+8617000002222", {"referral_code": referral_code_for(referrer), "ip": "203.0.113.2"}),
        registered(second, "+8616500003333", {"referral_code": referral_code_for(referrer), "ip": "203.0.113.3"}),
    ])
    return first, second


def test_an_admin_approves_one_flagged_referral_and_rejects_another_with_notes(
        page: Page, base_url: str, staff: dict[str, Staff], sign_in: Callable[[Staff], None]) -> None:
    first, second = _flagged_referrals(base_url)
    sign_in(staff["admin"])
    dialogs: list[str] = []

    def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.goto("/referrals/review")
    card = page.locator(f'[data-referee="{first}"]')
    for _ in range(30):  # the background processor projects the events within a few seconds
        if card.count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(card).to_contain_text("虚拟运营商")
    expect(card).to_contain_text("170****2222")  # masked until an audited reveal
    expect(card).not_to_contain_text("+8617000002222")

    card.get_by_label("审核备注（必填）").fill("电话回访确认是真实好友")
    card.get_by_role("button", name="通过").click()
    expect(page.locator(".alert-success")).to_contain_text("已审核：通过")
    expect(page.locator(f'[data-referee="{first}"]')).to_have_count(0)
    assert dialogs and "不可撤销" in dialogs[-1]

    other = page.locator(f'[data-referee="{second}"]')
    other.get_by_label("审核备注（必填）").fill("虚拟号段，无法联系")
    other.get_by_role("button", name="拒绝").click()
    expect(page.locator(".alert-success")).to_contain_text("已拒绝")
    expect(page.locator(f'[data-referee="{second}"]')).to_have_count(0)

    page.goto("/referrals/?status=rejected")
    expect(page.locator("#referrals")).to_contain_text(second)
    page.goto("/referrals/?status=pending")
    expect(page.locator("#referrals")).to_contain_text(first)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/referrals/review")
    expect(page.locator("h1")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    expect(page).to_have_url(re.compile(r"/referrals/review$"))
