"""Steps the campaign browser tests share: sending investors through the events API, opening an editor."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import orjson
from playwright.sync_api import Page

from tests.e2e.conftest import WEBHOOK_SECRET
from tests.events import signed_headers


def send_events(base_url: str, events: list[dict[str, Any]]) -> None:
    """Send platform events through the real, signed events API."""
    body = orjson.dumps({"events": events})
    request = urllib.request.Request(base_url + "/api/v1/events", data=body,
                                     headers=signed_headers(body, WEBHOOK_SECRET), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def open_editor_once_the_channel_is_known(page: Page, campaign_type: str, channel: str) -> None:
    """Open a type's editor after the processor has projected the investors (and their acquisition channel)."""
    deadline = time.monotonic() + 30
    while True:
        page.goto(f"/campaigns/new?type={campaign_type}")
        if page.locator(f"option[value={channel}]").count() or time.monotonic() > deadline:
            return
        page.wait_for_timeout(500)  # the background processor works on its own schedule
