"""The main pages on a 390 px phone: no sideways page scroll, no console errors; Swagger UI works under the CSP."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import WEBHOOK_SECRET, PageLog, Staff
from tests.events import event, investment, signed_headers

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}


def _send(base_url: str, events: list[dict]) -> None:
    body = orjson.dumps({"events": events})
    request = urllib.request.Request(base_url + "/api/v1/events", data=body,
                                     headers=signed_headers(body, WEBHOOK_SECRET), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@pytest.fixture(scope="module")
def sample(base_url: str) -> None:
    """Investors of a channel the platform names by code, with a few steps each, sent through the real API."""
    now = datetime.now(UTC) - timedelta(minutes=1)
    events = []
    for i in range(6):
        uid = f"m390_{i}"
        at = now - timedelta(days=40 - i * 7)
        events += [event("user.registered", uid, at, {"channel_code": "mobile_check_channel"},
                         phone=f"+86138000{i:05d}", name=f"测试用户{i}"),
                   event("user.kyc_verified", uid, at + timedelta(hours=1)),
                   event("funds.deposited", uid, at + timedelta(hours=2), {"deposit_id": f"d{uid}",
                                                                           "amount": "123456.78"}),
                   investment(uid, at + timedelta(hours=3), f"i{uid}", amount="100000.00")]
    _send(base_url, events)


def _hrefs(page: Page) -> list[str]:
    return page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")


def _no_page_overflow(page: Page, path: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{path} scrolls sideways on a phone: {width}px wide"


@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_the_main_pages_fit_a_390px_phone_without_console_errors(
    page: Page, page_log: PageLog, staff: dict[str, Staff], sign_in: Callable[[Staff], None], sample: None,
    language: str,
) -> None:
    sign_in(staff["admin"])
    page.set_viewport_size(PHONE)
    page.goto(f"/lang/{language}")  # English words are longer: both languages must fit

    # The processor runs in the background of `growth serve`: wait for the investors to appear.
    page.goto("/investors")
    investors: list[str] = []
    for _ in range(30):
        investors = [h for h in _hrefs(page) if re.fullmatch(r"/investors/\d+", h)]
        if investors:
            break
        page.wait_for_timeout(500)
        page.reload()
    page.goto("/acquisition/channels")
    channels = [h for h in _hrefs(page) if re.fullmatch(r"/acquisition/channels/\d+(\?.*)?", h)]
    assert investors and channels
    investor, channel_href = investors[0], channels[0]

    paths = ["/", "/dashboards/funnel", "/dashboards/funnel?group_by=channel", "/dashboards/funnel?group_by=week",
             "/dashboards/economics?period=90d", "/dashboards/cohorts",
             "/acquisition/channels", channel_href, "/investors", investor, "/events/", "/admin/audit/", "/admin/users",
             "/account/tokens", "/api/docs", "/messages", "/messages/health", "/messages/settings",
             "/messages/templates", "/messages/templates/new", "/crm?scope=all", "/crm/settings",
             f"{investor}/message"]
    for path in paths:
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("networkidle")
        _no_page_overflow(page, path)
    assert page_log.unexpected_errors() == []


def test_the_channel_economics_page_draws_its_charts_and_sorts_its_table_on_a_phone(
    page: Page, page_log: PageLog, staff: dict[str, Staff], sign_in: Callable[[Staff], None], sample: None,
) -> None:
    sign_in(staff["marketer"])
    page.set_viewport_size(PHONE)
    page.goto("/dashboards/economics?period=90d")
    for _ in range(30):  # the processor runs in the background of `growth serve`
        if page.locator("#economics-table").count():
            break
        page.wait_for_timeout(500)
        page.reload()
    for chart in ("#economics-spend-chart", "#economics-unit-chart", "#economics-roi-chart"):
        expect(page.locator(f"{chart} .main-svg").first).to_be_visible()
    rows = page.locator("#economics-table tbody tr")
    expect(rows.filter(has_text="mobile_check_channel")).to_have_count(1)
    registrations = page.locator("#economics-table thead th").nth(3)
    registrations.get_by_role("button").click()
    expect(registrations).to_have_attribute("aria-sort", "descending")
    values = [float(v) for v in page.locator("#economics-table tbody tr td:nth-child(4)").evaluate_all(
        "cells => cells.map(c => c.getAttribute('data-value'))")]
    assert values == sorted(values, reverse=True)
    registrations.get_by_role("button").click()
    expect(registrations).to_have_attribute("aria-sort", "ascending")
    _no_page_overflow(page, "/dashboards/economics")
    assert page_log.unexpected_errors() == []


def test_the_cohorts_page_draws_its_heatmap_and_table_on_a_phone_and_a_desktop(
    page: Page, page_log: PageLog, staff: dict[str, Staff], sign_in: Callable[[Staff], None], sample: None,
) -> None:
    sign_in(staff["marketer"])  # the e2e server has no analyst account; marketers may view funnels too
    page.set_viewport_size(PHONE)
    page.goto("/dashboards/cohorts")
    for _ in range(30):  # the processor runs in the background of `growth serve`
        if page.locator("#retention-table").count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(page.locator("#retention-chart .main-svg").first).to_be_visible()
    expect(page.locator("#retention-table tbody tr").first).to_be_visible()
    _no_page_overflow(page, "/dashboards/cohorts")  # the heatmap scrolls inside its card, not the page
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto("/dashboards/cohorts?base=registrations&days=30")
    expect(page.locator("#retention-chart .main-svg").first).to_be_visible()
    assert page_log.foreign_requests() == []
    assert page_log.unexpected_errors() == []


def test_the_funnel_chart_labels_are_full_integers_and_every_week_is_listed(
    page: Page, staff: dict[str, Staff], sign_in: Callable[[Staff], None], sample: None,
) -> None:
    sign_in(staff["admin"])
    start = (datetime.now(UTC) - timedelta(days=60)).date().isoformat()
    # The server's worker processes the sample in the background: reload until it shows.
    for _ in range(60):
        page.goto(f"/dashboards/funnel?group_by=week&start={start}")
        if page.locator("#funnel-groups tbody tr").count():
            break
        page.wait_for_timeout(250)
    expect(page.locator("#funnel-groups tbody tr").first).to_be_visible()
    expect(page.locator(".plotly-chart .main-svg").first).to_be_visible()
    texts = page.eval_on_selector_all(".plotly-chart text", "els => els.map(e => e.textContent || '')")
    assert texts and not any(re.search(r"\d[kKM]$", t) for t in texts)  # never "32.187k"
    labels = page.locator("#funnel-groups tbody tr td:first-child").all_inner_texts()
    assert all(re.match(r"\d{4}-W\d{2} · \d{2}-\d{2}–", label) for label in labels), labels


def test_the_api_docs_render_inside_the_app_with_its_navigation(
    page: Page, staff: dict[str, Staff], sign_in: Callable[[Staff], None],
) -> None:
    sign_in(staff["marketer"])
    page.goto("/api/docs")
    expect(page.locator("#mainnav")).to_be_attached()
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()  # Swagger UI ran under the CSP
    expect(page.locator(".swagger-ui .opblock-summary-path").filter(has_text="/api/v1/funnel")).to_have_count(1)
