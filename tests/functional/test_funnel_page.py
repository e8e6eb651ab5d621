"""The funnel page: every group shown, distinct colours, week dates, open windows flagged, bad dates refused."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from growth.acquisition.models import AcquisitionChannel
from growth.db import get_db
from tests.factories import make_investor, make_token

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)  # Thursday 2026-12-03 12:00 in Shanghai, ISO week 2026-W49


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def _figures(page: str) -> dict[str, dict]:
    """Return the page's Plotly figures by the id of their element."""
    return {k: json.loads(html.unescape(m)) for k, m in re.findall(r'id="([^"]+)" data-figure="([^"]*)"', page)}


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr data-key="([^"]+)"', page)


def _twenty_channels(app) -> dict[str, int]:
    """Create 20 channels with 1..20 investors each, registered 60 days ago; return sizes by code."""
    sizes = {}
    with get_db(app).session_scope(write=True) as s:
        for i in range(20):
            channel = AcquisitionChannel(code=f"ch{i:02d}", name=f"渠道{i:02d}")
            s.add(channel)
            s.flush()
            sizes[channel.code] = i + 1
            for _ in range(i + 1):
                make_investor(s, channel_id=channel.id, registered_at=NOW - timedelta(days=60),
                              kyc_verified_at=NOW - timedelta(days=59))
    return sizes


def test_the_funnel_shows_twenty_channel_groups_when_there_are_twenty(app, client, login, frozen):
    sizes = _twenty_channels(app)
    login("analyst")

    page = client.get("/dashboards/funnel?group_by=channel&start=2026-09-01&end=2026-12-03")

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    rows = _rows(text)
    assert sorted(rows) == sorted(sizes)  # every group in the table, none dropped
    assert rows == sorted(sizes, key=lambda k: -sizes[k])  # largest first
    chart = _figures(text)["funnel-groups-chart"]
    names = [trace["name"] for trace in chart["data"]]
    # The ten largest drawn one by one, the other ten summed into an explicit "others" group.
    assert names[:10] == [f"渠道{i:02d}" for i in range(19, 9, -1)]
    assert names[10] == "其他（10 个分组）"
    assert chart["data"][10]["customdata"][0] == sum(range(1, 11))
    assert 'id="funnel-show-all"' in text


def test_showing_all_groups_draws_every_channel_in_its_own_colour(app, client, login, frozen):
    sizes = _twenty_channels(app)
    login("analyst")

    text = client.get("/dashboards/funnel?group_by=channel&start=2026-09-01&end=2026-12-03&show=all").get_data(
        as_text=True)

    traces = _figures(text)["funnel-groups-chart"]["data"]
    assert len(traces) == len(sizes) == 20
    colours = [t["marker"]["color"] for t in traces]
    assert len(set(colours)) == 20, colours


def test_the_funnel_api_returns_every_one_of_twenty_groups(app, client, frozen):
    sizes = _twenty_channels(app)
    with get_db(app).session_scope(write=True) as s:
        token = make_token(s, role="analyst")

    body = client.get("/api/v1/funnel?group_by=channel&start=2026-09-01&end=2026-12-03",
                      headers={"Authorization": f"Bearer {token}"}).json

    assert set(body) == {"steps", "window_days", "total", "groups"}  # the contract's shape, unchanged
    assert {g["key"]: g["counts"][0] for g in body["groups"]} == sizes
    assert all(set(g) == {"key", "label", "counts"} for g in body["groups"])


def test_week_groups_show_their_dates_once_every_week_and_mark_partial_and_immature_weeks(app, client, login, frozen):
    with get_db(app).session_scope(write=True) as s:
        for weeks_ago in range(20):  # one registration every Wednesday noon, 2026-W30 .. 2026-W49
            make_investor(s, registered_at=datetime(2026, 12, 2, 12, tzinfo=SH) - timedelta(weeks=weeks_ago))
    login("analyst")

    # The range starts on a Tuesday (2026-07-21, in W30) and runs to today (Thursday of W49).
    text = client.get("/dashboards/funnel?group_by=week&start=2026-07-21&end=2026-12-03&window_days=30").get_data(
        as_text=True)

    keys = _rows(text)
    assert len(keys) == 20 and keys[0] == "2026-W30" and keys[-1] == "2026-W49"  # the newest week is there
    row = re.search(r'<tr data-key="2026-W48">(.*?)</tr>', text, re.S).group(1)
    first_cell = re.sub(r"<[^>]+>", " ", row.split("</td>")[0])
    assert first_cell.split() == ["2026-W48", "·", "11-23–11-29", "窗口未满", "100%"]  # the key once, with dates
    assert "2026-W48<br>11-23–11-29" in _figures(text)["funnel-groups-chart"]["data"][0]["x"]
    partial = re.findall(r'<tr data-key="([^"]+)">(?:(?!</tr>).)*week-partial', text, re.S)
    assert partial == ["2026-W30", "2026-W49"]  # cut by the range's start, and the running week
    immature = re.findall(r'<tr data-key="([^"]+)">(?:(?!</tr>).)*group-immature', text, re.S)
    # Registered less than 30 days before now (2026-11-03 12:00 Shanghai or later): W45 .. W49.
    assert immature == ["2026-W45", "2026-W46", "2026-W47", "2026-W48", "2026-W49"]
    assert 'id="funnel-immature"' in text


def test_a_cohort_older_than_the_window_is_not_flagged(app, client, login, frozen):
    with get_db(app).session_scope(write=True) as s:
        make_investor(s, registered_at=NOW - timedelta(days=40))
    login("analyst")

    text = client.get("/dashboards/funnel?group_by=week&start=2026-10-01&end=2026-12-03").get_data(as_text=True)

    assert "group-immature" not in text and 'id="funnel-immature"' not in text


@pytest.mark.parametrize("query", [
    "start=0001-01-01&end=9999-12-31", "start=0001-01-01", "end=9999-12-31", "start=1999-12-31",
    "end=2100-01-01", "start=2026-12-01&end=2026-11-01", "start=2026-02-30", "window_days=%EF%BC%91",
])
def test_out_of_range_or_reversed_dates_are_refused_with_400_on_the_page_and_the_api(app, client, login, query):
    with get_db(app).session_scope(write=True) as s:
        token = make_token(s, role="analyst")
    api = client.get(f"/api/v1/funnel?{query}", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 400
    assert api.json["error"] and api.json["field"] in {"start", "end", "window_days"}
    login("analyst")

    page = client.get(f"/dashboards/funnel?{query}")

    assert page.status_code == 400
    text = page.get_data(as_text=True)
    assert 'id="funnel-error"' in text and "<form" in text  # the message beside the form to correct it


def test_chart_numbers_are_full_integers_with_separators(app, client, login, frozen):
    with get_db(app).session_scope(write=True) as s:
        make_investor(s, registered_at=NOW - timedelta(days=3))
    login("analyst")

    text = client.get("/dashboards/funnel?group_by=week&start=2026-11-01&end=2026-12-03").get_data(as_text=True)

    figures = _figures(text)
    funnel, weekly = figures["funnel-chart"], figures["funnel-groups-chart"]
    assert "%{value:,d}" in funnel["data"][0]["texttemplate"]
    assert funnel["layout"]["xaxis"]["tickformat"] == ",d"
    assert weekly["layout"]["yaxis"]["tickformat"] == ",d"
