"""The channel economics page: filters in the URL with presets, empty state, refused filters, charts and a
sortable table of the API's numbers, a fixed number of queries, and who may open it."""

from __future__ import annotations

import html as html_lib
import json
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import event

from growth.acquisition.models import AcquisitionChannel, ChannelCost
from growth.db import get_db
from growth.timeutil import local_date
from tests.factories import make_investor

PAGE = "/dashboards/economics"


def _channels(app, days: int = 3) -> None:  # type: ignore[no-untyped-def]
    today = local_date(datetime.now(UTC))
    with get_db(app).session_scope(write=True) as s:
        for n, (code, name) in enumerate((("baidu_sem", "百度SEM"), ("wdzj", "网贷之家"))):
            channel = AcquisitionChannel(code=code, name=name, kind="sem")
            s.add(channel)
            s.flush()
            for back in range(days):
                s.add(ChannelCost(channel_id=channel.id, day=today - timedelta(days=back), amount_fen=10_000 * (n + 1)))
            for k in range(n + 2):
                make_investor(s, channel_id=channel.id, registered_at=datetime.now(UTC) - timedelta(days=k),
                              first_investment_at=None)
        make_investor(s, registered_at=datetime.now(UTC), first_investment_at=None)  # organic: no cost


def test_an_empty_period_shows_the_empty_state_and_the_definitions(client, login):
    login("analyst")
    html = client.get(PAGE).get_data(as_text=True)
    assert 'id="economics-empty"' in html and 'id="economics-definitions"' in html
    assert 'id="economics-table"' not in html


def test_the_page_shows_every_channel_with_charts_a_sortable_table_and_a_total(app, client, login):
    _channels(app)
    login("marketer")
    response = client.get(PAGE, query_string={"period": "7d", "window_days": "30"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for chart in ("economics-spend-chart", "economics-unit-chart", "economics-roi-chart"):
        assert f'id="{chart}"' in html
    assert "data-sortable" in html and "/static/sortable." in html
    assert 'data-code="baidu_sem"' in html and 'data-code="wdzj"' in html and 'data-code="total"' in html
    assert 'data-code="organic"' in html
    # The ROI chart compares what was spent: organic (no acquisition cost) is in the table, not the chart.
    roi = json.loads(html_lib.unescape(re.search(r'id="economics-roi-chart" data-figure="([^"]*)"', html).group(1)))
    assert roi["data"][0]["x"] == ["百度SEM", "网贷之家"]
    assert "¥900.00" in html  # the total cost: 3 days × (100 + 200)
    assert 'id="economics-immature"' in html  # everyone registered within the last 30 days
    assert 'href="/dashboards/economics?period=7d&amp;window_days=30&amp;format=csv"' in html


def test_presets_and_custom_dates_select_the_period(app, client, login):
    login("analyst")
    today = local_date(datetime.now(UTC))
    last = today.replace(day=1) - timedelta(days=1)
    html = client.get(PAGE, query_string={"period": "last_month"}).get_data(as_text=True)
    assert f"{last.replace(day=1).isoformat()} 至 {last.isoformat()}" in html
    html = client.get(PAGE, query_string={"start": "2026-11-01", "end": "2026-11-30"}).get_data(as_text=True)
    assert "2026-11-01 至 2026-11-30" in html and 'value="2026-11-01"' in html


def test_refused_filters_answer_400_with_the_reason_beside_the_form(client, login):
    login("analyst")
    for args in ({"window_days": "0"}, {"period": "custom", "start": "2026-12-02", "end": "2026-12-01"},
                 {"period": "fortnight"}):
        response = client.get(PAGE, query_string=args)
        assert response.status_code == 400, args
        assert "economics-error" in response.get_data(as_text=True)


def test_the_page_reads_the_same_number_of_queries_however_many_channels(app, client, login, db_kind):
    login("analyst")
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    engine = get_db(app).engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        client.get(PAGE)
        none = len(seen)
        seen.clear()
        _channels(app, days=10)
        seen.clear()
        assert client.get(PAGE).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert len(seen) == none + 1  # the channels' names, read only when there are rows


def test_every_role_finds_the_page_in_the_menu_and_may_open_it(client, login):
    for role in ("analyst", "agent"):  # §7 gives the figures to all staff: aggregates, nobody's personal data
        login(role)
        assert 'href="/dashboards/economics"' in client.get("/").get_data(as_text=True)
        assert client.get(PAGE).status_code == 200
        client.post("/logout")
