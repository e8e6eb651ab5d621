"""The cohorts page and its API: filters in the URL, heatmap and tables, CSVs, empty states, refused filters in
both languages, a fixed number of queries, the API's description, and who may see it."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema_rs
import orjson
import pytest
import time_machine
from sqlalchemy import event

from growth.acquisition.models import AcquisitionChannel
from growth.db import get_db
from growth.investors.models import Investment
from tests.factories import make_investor, make_token

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)  # 2026-12-03 12:00 in Shanghai
PAGE, API = "/dashboards/cohorts", "/api/v1/dashboards/cohorts"


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def _figures(page: str) -> dict[str, dict]:
    return {k: json.loads(html.unescape(v)) for k, v in re.findall(r'id="([a-z-]+)"[^>]*? data-figure="([^"]*)"', page)}


def _book(app, people: int = 3) -> None:  # type: ignore[no-untyped-def]
    """Investors of two channels registered in October and November, investing, and one maturity re-invested."""
    with get_db(app).session_scope(write=True) as s:
        channel = AcquisitionChannel(code="baidu_sem", name="百度SEM", kind="sem")
        s.add(channel)
        s.flush()
        for n in range(people):
            for registered, cid in ((datetime(2026, 10, 5, tzinfo=SH), channel.id), (datetime(2026, 11, 5, tzinfo=SH),
                                                                                      None)):
                inv = make_investor(s, registered_at=registered.astimezone(UTC), channel_id=cid,
                                    first_investment_at=registered.astimezone(UTC) + timedelta(days=1))
                start = registered.astimezone(UTC) + timedelta(days=1)
                s.add(Investment(investment_id=f"{inv.platform_user_id}-a", investor_id=inv.id, amount_fen=100_000,
                                 term_days=30, started_at=start, matured_at=start + timedelta(days=30),
                                 matured_principal_fen=100_000, status="matured"))
                if n == 0:  # re-invests 2 days after the maturity
                    s.add(Investment(investment_id=f"{inv.platform_user_id}-b", investor_id=inv.id, amount_fen=50_000,
                                     term_days=30, started_at=start + timedelta(days=32)))


def test_an_empty_book_shows_both_empty_states_and_the_definitions(client, login, frozen):
    login("analyst")
    response = client.get(PAGE)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="retention-empty"' in page and 'id="reinvestment-empty"' in page
    assert 'id="retention-table"' not in page and 'id="reinvestment-table"' not in page
    assert 'id="retention-base"' in page and 'id="reinvestment-definition"' in page
    # The default range is the last twelve months, in the URL's form fields.
    assert 'value="2026-01"' in page and 'value="2026-12"' in page


def test_the_page_shows_a_heatmap_and_a_table_of_the_same_numbers(app, client, login, frozen):
    _book(app)
    login("marketer")
    response = client.get(PAGE, query_string={"from": "2026-10", "to": "2026-11"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    figures = _figures(page)
    heat = figures["retention-chart"]["data"][0]
    assert heat["type"] == "heatmap" and heat["y"] == ["2026-10", "2026-11"] and heat["x"] == ["M0", "M1", "M2"]
    # October: 3 first investors, all active in M0 (100 %), one in M1 (its re-investment 2026-11-07), none in M2.
    assert heat["z"] == [[100.0, 33.3, 0.0], [100.0, 0.0, None]]
    assert heat["text"][0][2] == "0.0%*" and heat["text"][1][2] == ""  # the current month marked, unreached blank
    assert '<tr data-month="2026-10">' in page and 'data-offset="1" data-investors="1"' in page
    assert "33.3%" in page
    maturity = figures["reinvestment-chart"]["data"]
    assert [t["type"] for t in maturity] == ["bar", "bar", "scatter", "scatter"]
    assert 'id="reinvestment-table"' in page and "¥500.00" in page  # one re-investment of ¥500 after November's
    assert 'href="/dashboards/cohorts?format=csv&amp;table=retention&amp;from=2026-10&amp;to=2026-11' in page


def test_the_channel_filter_and_the_base_change_the_numbers(app, client, login, frozen):
    _book(app)
    login("analyst")
    token = _token(app)
    answer = client.get(API, query_string={"from": "2026-10", "to": "2026-11", "channel": "baidu_sem",
                                           "base": "registrations"}, headers=_auth(token)).json
    assert [c["registrations"] for c in answer["cohorts"]] == [3, 0]
    assert answer["cohorts"][0]["cells"][0] == {"offset": 0, "month": "2026-10", "investors": 3, "rate": "1.0000",
                                                "incomplete": False}
    organic = client.get(API, query_string={"from": "2026-10", "to": "2026-11", "channel": "organic"},
                         headers=_auth(token)).json
    assert [c["registrations"] for c in organic["cohorts"]] == [0, 3]  # investors without a channel are organic
    assert organic["reinvestment"]["months"][1]["reinvested_investors"] == 0  # November's maturities are Dec's


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _token(app, role: str = "analyst") -> str:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return make_token(s, role=role)


REFUSED = [({"from": "2026-13"}, "from"), ({"to": "26-01"}, "to"), ({"from": "2026-11", "to": "2026-10"}, "from"),
           ({"to": "2027-01"}, "to"), ({"from": "2020-01", "to": "2026-01"}, "from"), ({"base": "people"}, "base"),
           ({"days": "0"}, "days"), ({"days": "366"}, "days"), ({"days": "7x"}, "days"),
           ({"channel": "nowhere"}, "channel"), ({"from": "1999-12"}, "from")]


def test_refused_filters_answer_400_on_the_page_and_422_in_the_api_in_both_languages(app, client, login, frozen):
    login("analyst")
    token = _token(app)
    for args, path in REFUSED:
        response = client.get(PAGE, query_string=args)
        assert response.status_code == 400, args
        assert "cohorts-error" in response.get_data(as_text=True)
        answer = client.get(API, query_string=args, headers=_auth(token))
        assert answer.status_code == 422, args
        assert [e["path"] for e in answer.json["errors"]] == [path], args
    chinese = client.get(PAGE, query_string={"days": "0"}).get_data(as_text=True)
    assert "复投窗口应为 1 到 365 之间的整数（天）。" in chinese
    client.get("/lang/en")
    english = client.get(PAGE, query_string={"days": "0"}).get_data(as_text=True)
    assert "between 1 and 365" in english and "复投窗口应为" not in english


def test_the_page_and_the_api_read_the_same_number_of_queries_however_big_the_book(app, client, login, db_kind,
                                                                                    frozen):
    login("analyst")
    token = _token(app)
    with get_db(app).session_scope(write=True) as s:
        s.add(AcquisitionChannel(code="baidu_sem", name="百度SEM", kind="sem"))
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    engine = get_db(app).engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        counts = []
        for book in (0, 3, 12):
            if book:
                _book_more(app, book)
            for url, headers in ((PAGE, {}), (API, _auth(token)), (API + "?channel=baidu_sem", _auth(token))):
                seen.clear()
                assert client.get(url, headers=headers).status_code == 200
                counts.append(len([s for s in seen if "investments" in s or "investors" in s
                                   or "acquisition_channels" in s]))
    finally:
        event.remove(engine, "before_cursor_execute", before)
    # Page: the channels for the filter + 2 retention + 2 re-investment; API: 4, and 1 to check a named channel.
    assert counts == [5, 4, 5] * 3


_serial = iter(range(10_000))


def _book_more(app, people: int) -> None:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        for _ in range(people):
            n = next(_serial)
            at = NOW - timedelta(days=40 + n % 200)
            inv = make_investor(s, registered_at=at, first_investment_at=at)
            s.add(Investment(investment_id=f"q{n}-a", investor_id=inv.id, amount_fen=10_000, term_days=7,
                             started_at=at, matured_at=at + timedelta(days=7), matured_principal_fen=10_000))
            s.add(Investment(investment_id=f"q{n}-b", investor_id=inv.id, amount_fen=10_000, term_days=7,
                             started_at=at + timedelta(days=8)))


def test_the_api_answers_match_its_description(app, client, frozen):
    _book(app)
    doc = orjson.loads(client.get("/api/v1/openapi.json").get_data())
    operation = doc["paths"][API]["get"]
    assert operation["security"] == [{"bearerAuth": []}]
    seen = set()
    for response in (client.get(API, headers=_auth(_token(app))),
                     client.get(API, query_string={"from": "2026-10", "to": "2026-11"}, headers=_auth(_token(app))),
                     client.get(API, query_string={"days": "x"}, headers=_auth(_token(app))),
                     client.get(API), client.get(API, headers=_auth(_token(app, "agent")))):
        described = operation["responses"][str(response.status_code)]
        schema: dict[str, Any] = {**described["content"]["application/json"]["schema"],
                                  "components": doc["components"]}
        assert [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(response.json)] == []
        seen.add(response.status_code)
    assert seen == {200, 401, 403, 422}
    older = orjson.loads(client.get("/api/docs/openapi-3.0.json").get_data())
    assert API in older["paths"]


def test_analysts_marketers_and_approvers_find_it_in_the_menu_and_agents_may_not_open_it(client, login):
    for role in ("analyst", "marketer", "approver"):
        login(role)
        assert f'href="{PAGE}"' in client.get("/").get_data(as_text=True)
        assert client.get(PAGE).status_code == 200
        client.post("/logout")
    login("agent")
    assert f'href="{PAGE}"' not in client.get("/").get_data(as_text=True)
    assert client.get(PAGE).status_code == 403
    assert client.get(PAGE, query_string={"format": "csv"}).status_code == 403
