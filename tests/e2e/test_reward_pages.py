"""The reward pages in a real browser: a manual grant and a revoke at 1440 px, every page fitting a 390 px phone."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import WEBHOOK_SECRET, PageLog, Staff
from tests.events import event, signed_headers

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}


def _register(base_url: str, user_id: str) -> None:
    body = orjson.dumps({"events": [event("user.registered", user_id, datetime.now(UTC) - timedelta(days=1),
                                          phone="+8613900001111", name="赵奖励")]})
    request = urllib.request.Request(base_url + "/api/v1/events", data=body,
                                     headers=signed_headers(body, WEBHOOK_SECRET), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _grant_voucher(page: Page, user_id: str) -> str:
    """Grant a 50-yuan voucher through the form, once the background processor has projected the investor."""
    for _ in range(60):  # the rewards API answers 404 until the investor exists
        if page.request.get(f"/api/v1/investors/{user_id}/rewards").status == 200:
            break
        page.wait_for_timeout(500)
    page.goto(f"/rewards/grant?user_id={user_id}")
    page.select_option("#kind", "voucher")
    page.fill("#amount", "50.00")
    page.fill("#valid_days", "30")
    page.fill("#reason", "客诉补偿")
    page.click("#grant-submit")
    expect(page).to_have_url(re.compile(r"/rewards/\d+$"))
    return page.url.rsplit("/", 1)[1]


def test_an_admin_grants_and_revokes_a_voucher_and_every_reward_page_fits_a_phone(
    page: Page, page_log: PageLog, staff: dict[str, Staff], sign_in: Callable[[Staff], None], base_url: str,
) -> None:
    _register(base_url, "rw_e2e_1")
    sign_in(staff["admin"])
    page.set_viewport_size(DESKTOP)
    reward_id = _grant_voucher(page, "rw_e2e_1")
    expect(page.locator('[data-status="granted"]')).to_be_visible()
    page.fill("#revoke-reason", "误发")
    page.once("dialog", lambda dialog: dialog.accept())  # the confirmation before a destructive action
    page.click("#revoke-form button[type=submit]")
    expect(page.locator('h1 [data-status="revoked"]')).to_be_visible()
    expect(page.locator('#entries [data-entry="revoked"]')).to_be_visible()

    page.set_viewport_size(PHONE)
    for language in ("zh_CN", "en"):
        page.goto(f"/lang/{language}")
        paths = ["/rewards/", f"/rewards/{reward_id}", "/rewards/budgets", "/rewards/liability", "/rewards/grant",
                 "/rewards/requests"]
        page.goto("/rewards/budgets")
        paths += [h for h in page.eval_on_selector_all("a[href]", "a => a.map(x => x.getAttribute('href'))")
                  if re.fullmatch(r"/rewards/budgets/\d+", h)][:1]
        for path in paths:
            response = page.goto(path)
            assert response is not None and response.status == 200, path
            page.wait_for_load_state("networkidle")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{path} scrolls sideways on a phone: {width}px wide"
    assert page_log.unexpected_errors() == []
