"""Input the database cannot hold is refused in one layer: out-of-range numbers and NUL characters.

The sweeps are built from `app.url_map`, so routes added later are covered without touching this file.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from werkzeug.routing import IntegerConverter, Rule

from campaigns.services import create as create_campaign
from channels.models import MessageTemplate
from growth.acquisition.models import AcquisitionChannel, TrackingLink
from growth.auth.permissions import Permission, require
from growth.crm.models import CrmTask
from growth.db import get_db
from growth.inputs import ID_MAX
from growth.rewards.rules import Terms
from growth.rewards.services import budget_for, grant
from tests.factories import make_investor, make_message, make_token

HUGE = "9" * 20  # beyond BIGINT: OverflowError on SQLite, out of range on PostgreSQL
# Query arguments some view reads as a number (pages, filter ids, sizes); sent to every GET route.
NUMBER_ARGS = ("page", "clicks_page", "costs_page", "channel", "scale", "window_days")
# Date ranges of the funnel belong to the dashboards' own validation.
FUNNEL = {"dashboards.funnel_page", "dashboards_api.funnel"}
NUL_MESSAGE = "空字符"


@pytest.fixture
def rows(app: Flask) -> int:
    """One row of each kind a route id can name, all with id 1; return that id."""
    with get_db(app).session_scope(write=True) as s:
        channel = AcquisitionChannel(code="baidu_sem", name="百度SEM")
        s.add(channel)
        s.flush()
        s.add(TrackingLink(channel_id=channel.id, code="abc123", name="落地页",
                           landing_url="https://www.example.com/", created_by="test"))
        investor = make_investor(s, platform_user_id="u_1", registered_at=datetime(2026, 3, 1, tzinfo=UTC))
        make_message(s)
        at = datetime(2026, 3, 1, tzinfo=UTC)
        grant(session=s, key="inputs", investor_id=investor.id, kind="cash", terms=Terms(amount_fen=100),
              budget=budget_for("manual", "manual", session=s, now=at), actor="test", now=at)
        s.add(MessageTemplate(name="模板", channel="sms", message_class="service", body="您好",
                              updated_at=datetime(2026, 3, 1, tzinfo=UTC)))
        s.add(CrmTask(investor_id=investor.id, reason="registered_no_kyc", due_at=at, source_key=f"{investor.id}:kyc",
                      cause_key="inputs"))
        create_campaign({"name": "活动", "type": "broadcast", "schedule": {"at": "2026-12-10T10:00:00+08:00"}},
                        session=s, actor_id=None, now=datetime(2026, 3, 1, tzinfo=UTC))
        return channel.id


def _int_rules(app: Flask) -> list[Rule]:
    return [rule for rule in app.url_map.iter_rules()
            if any(isinstance(conv, IntegerConverter) for conv in rule._converters.values())]


def _build(rule: Rule, value: object) -> str:
    values = {name: value if isinstance(conv, IntegerConverter) else "x" for name, conv in rule._converters.items()}
    built = rule.build(values, append_unknown=False)
    assert built is not None
    return built[1]


def test_every_int_part_of_a_url_is_bounded_to_what_an_id_column_holds(app):
    rules = _int_rules(app)
    assert rules, "the app has routes with ids"
    adapter = app.url_map.bind("localhost")
    for rule in rules:
        method = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})[0]
        assert adapter.match(_build(rule, ID_MAX), method=method)[0] == rule.endpoint
        with pytest.raises(Exception, match="404"):
            adapter.match(_build(rule, ID_MAX + 1), method=method)


@pytest.mark.parametrize("too_big", [HUGE, str(ID_MAX + 1)])
def test_an_id_too_big_for_an_id_column_is_a_404_on_every_route_and_method(app, client, login, too_big):
    login("admin")
    failures = []
    for rule in _int_rules(app):
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            url = _build(rule, 424242).replace("424242", too_big)  # built as a valid id, then made too big
            response = client.open(url, method=method)
            if response.status_code != 404:
                failures.append(f"{method} {url}: {response.status_code}")
    assert failures == []


@pytest.mark.parametrize("too_big", [HUGE, str(ID_MAX + 1)])
def test_huge_page_numbers_and_filter_ids_never_crash_a_page(app, client, login, rows, too_big):
    login("admin")
    with get_db(app).session_scope(write=True) as s:
        token = {"Authorization": f"Bearer {make_token(s, role='admin')}"}
    failures = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or set()) or rule.endpoint in {"static", "bootstrap.static"}:
            continue
        if any(not isinstance(conv, IntegerConverter) for conv in rule._converters.values()):
            continue  # file names and codes: no numbers to overflow
        if rule.endpoint == "observability.readyz":
            continue  # 503 by design here: no `growth worker` beats in a test (tests/functional/test_probes.py)
        url = _build(rule, rows)
        for name in NUMBER_ARGS:
            if rule.endpoint in FUNNEL and name == "window_days":
                continue
            headers = token if url.startswith("/api/") else {}
            response = client.get(url, query_string={name: too_big}, headers=headers)
            if response.status_code >= 500 or response.status_code == 404:
                failures.append(f"{url}?{name}={too_big}: {response.status_code}")
    assert failures == []


def test_a_huge_page_is_clamped_and_a_bad_filter_id_is_a_400_with_a_message(client, login, rows):
    login("admin")
    assert client.get(f"/investors?page={HUGE}").status_code == 200
    assert client.get(f"/events/?page={HUGE}").status_code == 200
    assert client.get(f"/admin/audit/?page={HUGE}").status_code == 200
    assert client.get(f"/acquisition/channels/{rows}?clicks_page={HUGE}&costs_page={HUGE}").status_code == 200
    refused = client.get(f"/investors?channel={HUGE}")
    assert refused.status_code == 400 and "筛选条件 channel 的值无效" in refused.get_data(as_text=True)


# --- NUL characters -------------------------------------------------------------------------------


def _refused_as_page(response) -> bool:  # type: ignore[no-untyped-def]
    return response.status_code == 400 and NUL_MESSAGE in response.get_data(as_text=True)


def test_a_nul_in_a_query_argument_is_refused_on_every_page(client, login, rows):
    login("admin")
    for url in ("/investors?q=%00", "/investors?q=u_1%00", "/investors/export.csv?q=%00", "/admin/audit/?actor=a%00",
                "/events/?user_id=%00", "/acquisition/channels?q=%00", f"/acquisition/channels/{rows}?x=%00",
                "/dashboards/funnel?group_by=%00"):
        assert _refused_as_page(client.get(url)), url


def test_a_nul_in_a_form_field_is_refused(app, client, login):
    refused = client.post("/login", data={"email": "a\x00@example.com", "password": "x"})
    assert _refused_as_page(refused)
    login("admin")
    refused = client.post("/acquisition/channels/new", data={"code": "nul_code", "name": "坏\x00名字", "kind": "other"})
    assert _refused_as_page(refused)
    with get_db(app).session_scope() as s:
        assert s.query(AcquisitionChannel).count() == 0


def test_a_nul_in_the_path_of_a_public_route_is_refused(client):
    assert _refused_as_page(client.get("/t/abc%00"))


def test_a_nul_in_an_api_query_or_json_body_is_a_json_400(app):
    @app.route("/api/v1/_nul_probe", methods=["POST"])
    @require(Permission.HOME)
    def nul_probe():  # type: ignore[no-untyped-def]
        return {"ok": True}

    with get_db(app).session_scope(write=True) as s:
        token = {"Authorization": f"Bearer {make_token(s, role='admin')}"}
    client = app.test_client()
    refused = client.get("/api/v1/funnel?group_by=%00", headers=token)
    assert refused.status_code == 400 and "NUL" in refused.get_json()["error"]
    refused = client.post("/api/v1/_nul_probe", json={"a": [{"b": "x\u0000"}]}, headers=token)
    assert refused.status_code == 400 and "NUL" in refused.get_json()["error"]
    refused = client.post("/api/v1/_nul_probe", json={"a\u0000": 1}, headers=token)
    assert refused.status_code == 400
    assert client.post("/api/v1/_nul_probe", json={"a": "fine"}, headers=token).get_json() == {"ok": True}


def test_the_signed_events_api_keeps_refusing_nul_per_event_as_its_contract_says(client):
    from tests.events import event, post_events

    bad = event("user.kyc_verified", "u_1", datetime(2026, 3, 1, tzinfo=UTC), name="张\x00三")
    response = post_events(client, [bad])
    assert response.status_code == 200
    assert response.get_json()["rejected"][0]["errors"] == [
        "user.name: must not contain the NUL character (\\u0000)"]
