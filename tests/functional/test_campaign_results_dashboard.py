"""The campaign results page (活动效果) and its API: filters in the URL, the empty state, refused filters in Chinese
and English, charts and a table, the CSV, and who may open it."""

from __future__ import annotations

import html as html_lib
import json
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine

from growth.db import get_db
from tests.factories import make_token
from tests.integration.test_campaign_results_dashboard import CAMPAIGNS, NOW, World, generate, store

PAGE, API = "/dashboards/campaigns", "/api/v1/dashboards/campaigns"
OCTOBER = {"start": "2026-10-01", "end": "2026-10-31"}


@pytest.fixture
def app_config() -> dict:
    return {"IDLE_TIMEOUT": timedelta(days=1)}


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def world(app) -> World:  # type: ignore[no-untyped-def]
    w = generate(20261201, CAMPAIGNS)
    store(app, w)
    return w


def _figure(html: str, chart_id: str) -> dict:
    found = re.search(rf'id="{chart_id}" data-figure="([^"]*)"', html)
    assert found, chart_id
    return json.loads(html_lib.unescape(found.group(1)))


def test_an_empty_period_shows_the_empty_state_and_the_definitions(client, login):
    login("analyst")
    response = client.get(PAGE)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="campaigns-empty"' in html and 'id="campaigns-definitions"' in html
    assert 'id="campaigns-table"' not in html and "campaigns-lift-chart" not in html


def test_the_page_shows_a_forest_plot_a_per_yuan_chart_and_a_row_per_campaign(client, login, world):
    login("marketer")
    response = client.get(PAGE, query_string=OCTOBER)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    shown = [c for c in world.campaigns if c.name != "九月旧活动"]
    for camp in shown:
        assert f'data-campaign="{camp.id}"' in html
    assert f'data-campaign="{world.campaigns[5].id}"' not in html  # nobody entered it in October
    forest = _figure(html, "campaigns-lift-chart")
    trace = forest["data"][0]
    assert trace["error_x"]["array"] and len(trace["y"]) == len(trace["x"])
    assert all(label.startswith("#") for label in trace["y"])
    # The campaign without a holdout has no lift: it is in the table, not in the forest plot.
    no_holdout = world.campaigns[2]
    assert not any(label.startswith(f"#{no_holdout.id} ") for label in trace["y"])
    assert "无对照组" in html
    _figure(html, "campaigns-per-yuan-chart")
    assert 'id="campaigns-kpis"' in html
    assert "format=csv" in html and 'id="campaigns-csv"' in html
    assert 'href="/campaigns/' in html  # each row links to its campaign's page


def test_filters_stay_in_the_url_and_select_campaigns(client, login, world):
    login("analyst")
    html = client.get(PAGE, query_string={**OCTOBER, "type": "cashback", "status": "paused"}).get_data(as_text=True)
    assert f'data-campaign="{world.campaigns[6].id}"' in html
    assert f'data-campaign="{world.campaigns[0].id}"' not in html
    assert '<option value="cashback" selected>' in html and '<option value="paused" selected>' in html
    assert "type=cashback" in html and "status=paused" in html  # the CSV and sort links keep the filters
    html = client.get(PAGE, query_string={**OCTOBER, "type": "broadcast"}).get_data(as_text=True)
    assert 'id="campaigns-empty"' in html


def test_pages_of_campaigns_link_to_each_other(client, login, world):
    login("analyst")
    html = client.get(PAGE, query_string={**OCTOBER, "per_page": "2"}).get_data(as_text=True)
    assert html.count("data-campaign=") == 2 and "page=2" in html
    html = client.get(PAGE, query_string={**OCTOBER, "per_page": "2", "page": "50"}).get_data(as_text=True)
    assert 'id="campaigns-empty"' in html and "这一页没有活动" in html


REFUSED = ({"type": "lottery"}, {"status": "done"}, {"sort": "phone"}, {"order": "up"}, {"page": "0"},
           {"per_page": "1000"}, {"period": "fortnight"},
           {"period": "custom", "start": "2026-12-02", "end": "2026-12-01"},
           {"start": "2026-02-30", "end": "2026-03-01"})


def test_refused_filters_answer_400_on_the_page_and_422_on_the_api_in_both_languages(app, client, login):
    login("analyst")
    for args in REFUSED:
        response = client.get(PAGE, query_string=args)
        assert response.status_code == 400, args
        assert "campaigns-error" in response.get_data(as_text=True)
    with get_db(app).session_scope(write=True) as s:
        token = make_token(s, role="analyst")
    for args in REFUSED:
        response = client.get(API, query_string=args, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 422, args
        assert response.json["errors"], args
    both = client.get(API, query_string={"type": "lottery", "sort": "phone"},
                      headers={"Authorization": f"Bearer {token}"}).json["errors"]
    assert {e["path"] for e in both} == {"type", "sort"}
    assert "未知的活动类型" in client.get(PAGE, query_string={"type": "lottery"}).get_data(as_text=True)
    client.get("/lang/en")
    html = client.get(PAGE, query_string={"type": "lottery"}).get_data(as_text=True)
    assert "Unknown campaign type" in html and "未知的活动类型" not in html


def test_the_csv_has_a_row_per_campaign_and_the_columns_of_the_api(client, login, world):
    login("analyst")
    response = client.get(PAGE, query_string={**OCTOBER, "format": "csv", "per_page": "1"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = response.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0].startswith("id,name,type,status,members,treated,holdout")
    assert len(lines) == 1 + 6  # every campaign of the filter, not one page
    assert "campaign-results-2026-10-01-2026-10-31.csv" in response.headers["Content-Disposition"]


def test_every_role_finds_the_page_in_the_menu_and_may_open_it_and_the_api(app, client, login):
    for role in ("analyst", "marketer", "approver", "agent", "admin"):
        login(role)
        assert 'href="/dashboards/campaigns"' in client.get("/").get_data(as_text=True), role
        assert client.get(PAGE).status_code == 200, role
        client.post("/logout")
        with get_db(app).session_scope(write=True) as s:
            token = make_token(s, role=role)
        api = app.test_client()  # a bearer token alone, no session cookie
        assert api.get(API, headers={"Authorization": f"Bearer {token}"}).status_code == 200, role


def test_without_signing_in_the_page_sends_to_login_and_the_api_refuses(client):
    assert client.get(PAGE).status_code in (302, 401)
    assert client.get(API).status_code == 401


def test_the_api_is_described_in_the_openapi_document(client, login):
    login("analyst")
    spec = client.get("/api/v1/openapi.json").json
    operation = spec["paths"]["/api/v1/dashboards/campaigns"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"period", "start", "end", "type", "status", "sort",
                                                             "order", "page", "per_page"}
    assert "CampaignResultsRow" in spec["components"]["schemas"]


def test_the_english_page_has_no_chinese_left_but_the_campaigns_names(client, login, world):
    login("analyst")
    client.get("/lang/en")
    html = client.get(PAGE, query_string=OCTOBER).get_data(as_text=True)
    assert "Campaign results" in html
    names = {c.name for c in world.campaigns}
    cjk = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
    main = html.split("<main", 1)[1].split("</main>", 1)[0] if "<main" in html else html
    left = [line for line in main.splitlines() if cjk.search(line) and not any(n in line for n in names)
            and "data-figure" not in line]
    assert left == []

