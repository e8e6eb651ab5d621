"""The KPI and referral-growth APIs: described in the served OpenAPI document (checked on real answers), token
permissions, and the KPI periods' days at the edges of Shanghai days."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema_rs
import orjson
import pytest

from dashboards.kpis import kpi_period
from growth.db import get_db
from tests.factories import make_investor, make_token

KPIS, REFERRALS = "/api/v1/dashboards/kpis", "/api/v1/dashboards/referrals"
SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def tokens(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        make_investor(s, registered_at=datetime.now(UTC), first_investment_at=datetime.now(UTC))
        return {role: make_token(s, role=role) for role in ("analyst", "agent", "marketer")}


def test_both_operations_are_described_and_their_real_answers_match_the_description(client, tokens):
    doc = orjson.loads(client.get("/api/v1/openapi.json").get_data())
    checked = set()

    def check(path: str, response: Any) -> None:
        described = doc["paths"][path]["get"]["responses"][str(response.status_code)]
        schema = {**described["content"]["application/json"]["schema"], "components": doc["components"]}
        errors = [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(response.json)]
        assert errors == [], (path, response.status_code, errors)
        checked.add((path, response.status_code))

    def get(path: str, token: str | None, **params: str) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.get(path, query_string=params, headers=headers)

    for period in ("today", "7d", "30d", "this_month"):
        check(KPIS, get(KPIS, tokens["analyst"], period=period))
    check(KPIS, get(KPIS, tokens["marketer"], period="year"))
    check(KPIS, get(KPIS, tokens["agent"]))
    check(KPIS, get(KPIS, None))
    check(REFERRALS, get(REFERRALS, tokens["agent"]))  # every staff role reads the referral program
    check(REFERRALS, get(REFERRALS, tokens["analyst"], start="2026-13-01"))
    check(REFERRALS, get(REFERRALS, None))
    assert {s for _p, s in checked} == {200, 401, 403, 422}
    older = orjson.loads(client.get("/api/docs/openapi-3.0.json").get_data())
    assert {KPIS, REFERRALS} <= older["paths"].keys()


@pytest.mark.parametrize(("now", "key", "start", "end"), [
    (datetime(2026, 12, 9, 23, 59, 59, tzinfo=SH), "today", date(2026, 12, 9), date(2026, 12, 9)),
    (datetime(2026, 12, 10, 0, 0, 0, tzinfo=SH), "today", date(2026, 12, 10), date(2026, 12, 10)),
    (datetime(2026, 12, 10, 0, 0, 0, tzinfo=SH), "7d", date(2026, 12, 4), date(2026, 12, 10)),
    (datetime(2026, 11, 30, 23, 59, 59, tzinfo=SH), "this_month", date(2026, 11, 1), date(2026, 11, 30)),
    (datetime(2026, 12, 1, 0, 0, 0, tzinfo=SH), "this_month", date(2026, 12, 1), date(2026, 12, 1)),
    (datetime(2026, 12, 1, 0, 0, 0, tzinfo=SH), "30d", date(2026, 11, 2), date(2026, 12, 1)),
])
def test_a_period_takes_its_days_from_the_shanghai_calendar(now, key, start, end):
    period = kpi_period(key, now=now.astimezone(UTC))
    assert (period.start, period.end) == (start, end)
    # The previous period: the same number of days just before, as long to the microsecond, ending at the same
    # time of day.
    assert (period.previous_end - period.previous_start).days == (end - start).days
    assert (period.previous_end - start).days == -1
    assert period.previous_hi - period.previous_lo == period.hi - period.lo
    assert period.lo == datetime(start.year, start.month, start.day, tzinfo=SH)
