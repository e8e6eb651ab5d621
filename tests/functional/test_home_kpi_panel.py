"""The home page's KPI panel per role, its period links, its errors and the KPI page."""

from __future__ import annotations

import pytest

from growth.auth.permissions import Permission, Role, role_has


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_the_kpi_panel_is_on_the_home_page_exactly_for_roles_that_may_read_it(client, login, role):
    login(role)
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    shown = role_has(role, Permission.KPIS_VIEW)
    assert ('id="home-kpis"' in html) is shown
    assert (client.get("/dashboards/kpis").status_code == 200) is shown
    if role == Role.AGENT:
        assert client.get("/dashboards/kpis").status_code == 403


def test_agents_do_not_get_the_panel_and_analysts_and_marketers_do():
    assert not role_has(Role.AGENT, Permission.KPIS_VIEW)
    assert all(role_has(r, Permission.KPIS_VIEW) for r in (Role.ANALYST, Role.MARKETER, Role.ADMIN))


def test_the_panel_offers_every_period_in_the_url_and_links_only_to_dashboards_the_role_may_open(client, login):
    login("analyst")
    html = client.get("/?period=30d").get_data(as_text=True)
    for key in ("today", "7d", "30d", "this_month"):
        assert f'href="/?period={key}"' in html
    assert 'data-period="30d"' in html and 'aria-current="true"' in html
    assert "/dashboards/funnel?" in html  # registrations and first investors
    assert "/dashboards/economics?" in html  # volume
    assert 'href="/rewards/"' in html or 'href="/rewards"' in html  # incentive spend: analysts read the ledger
    assert 'id="kpi-details" href="/dashboards/kpis?period=30d"' in html


def test_a_bad_period_shows_its_message_in_the_panel_and_the_default_figures(client, login):
    login("marketer")
    response = client.get("/?period=fortnight")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="kpi-error"' in html and "today、7d、30d" in html
    assert 'data-period="7d"' in html
    assert client.get("/dashboards/kpis?period=fortnight").status_code == 400
    client.get("/lang/en")
    english = client.get("/?period=fortnight").get_data(as_text=True)
    assert "The period must be" in english


def test_the_kpi_page_shows_an_empty_state_a_table_and_charts(client, login):
    login("analyst")
    html = client.get("/dashboards/kpis?period=7d").get_data(as_text=True)
    assert 'id="kpi-empty"' in html
    assert 'id="kpi-csv"' in html
