"""An analyst opens every dashboard: charts render, tables show, nothing errs and no request leaves the host."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import WEBHOOK_SECRET, Staff
from tests.events import event, investment, signed_headers


@pytest.fixture(scope="module")
def book(base_url: str) -> None:
    """Investors from two channels and a referral, with every step and investments, sent through the real API."""
    now = datetime.now(UTC) - timedelta(minutes=1)
    events = []
    for i in range(12):
        uid = f"dash_{i}"
        at = now - timedelta(days=50 - i * 4, hours=i)
        data = {"channel_code": ("dash_sem", "dash_feed")[i % 2]} if i % 3 else {"referral_code": "dash_0"}
        events += [event("user.registered", uid, at, data, phone=f"+86139000{i:05d}", name=f"看板用户{i}"),
                   event("user.kyc_verified", uid, at + timedelta(hours=1 + i)),
                   event("user.card_bound", uid, at + timedelta(hours=2 + i)),
                   event("funds.deposited", uid, at + timedelta(hours=3 + i), {"deposit_id": f"d{uid}",
                                                                               "amount": "20000.00"})]
        if i % 4:
            events.append(investment(uid, at + timedelta(days=1 + i % 5), f"i{uid}", amount="10000.00",
                                     term_days=90))
        if i % 4 == 1:
            events.append(investment(uid, at + timedelta(days=9), f"j{uid}", amount="5000.00", term_days=30))
    body = orjson.dumps({"events": events})
    request = urllib.request.Request(base_url + "/api/v1/events", data=body,
                                     headers=signed_headers(body, WEBHOOK_SECRET), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _dashboards(page: Page) -> list[str]:
    """Return the dashboards the navigation offers the signed-in person."""
    hrefs = page.eval_on_selector_all('a[href^="/dashboards/"]', "links => links.map(a => a.getAttribute('href'))")
    return sorted({h.split("?")[0] for h in hrefs})


def _charts_render(page: Page, path: str, *, empty_ok: bool = False) -> None:
    """Open a page (reloading while the server's worker still processes the book) and wait for every chart; a
    page with nothing to show for the book (`empty_ok`) must say so."""
    for _ in range(1 if empty_ok else 60):
        page.goto(path)
        if page.locator(".plotly-chart").count():
            break
        page.wait_for_timeout(250)
    charts = page.locator(".plotly-chart")
    if empty_ok and not charts.count():
        expect(page.locator(".empty-state").first).to_be_visible()
        return
    assert charts.count(), f"{path} drew no chart"
    for k in range(charts.count()):
        expect(charts.nth(k).locator(".main-svg").first).to_be_visible()
    expect(page.locator("table").first).to_be_visible()


def test_an_analyst_opens_every_dashboard_and_each_draws_its_charts_offline(
    page: Page, staff: dict[str, Staff], sign_in: Callable[[Staff], None], book: None,
) -> None:
    sign_in(staff["analyst"])
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    days = f"start={(today - timedelta(days=80)).isoformat()}&end={today.isoformat()}"
    paths = _dashboards(page)
    assert {"/dashboards/funnel", "/dashboards/economics", "/dashboards/referrals", "/dashboards/kpis"} <= set(paths)
    for path in paths:
        # The book has no campaign: the campaign results page shows its empty state (its charts are tested
        # with a campaign in tests/functional/test_campaign_results_dashboard.py).
        _charts_render(page, f"{path}?{days}", empty_ok=path == "/dashboards/campaigns")
    for group_by in ("channel", "week", "campaign", "referral"):
        _charts_render(page, f"/dashboards/funnel?{days}&group_by={group_by}")
        expect(page.locator("#funnel-groups tbody tr").first).to_be_visible()
    expect(page.locator("#funnel-money")).to_contain_text("¥")
    page.goto("/")  # the home page's KPI strip draws its trends too
    home_charts = page.locator(".plotly-chart")
    assert home_charts.count()
    for k in range(home_charts.count()):
        expect(home_charts.nth(k).locator(".main-svg").first).to_be_visible()
