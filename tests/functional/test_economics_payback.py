"""Channel economics' payback days: shown when the platform's service-fee rate is configured, as the API's figure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from math import ceil

import pytest

from growth.acquisition.models import AcquisitionChannel, ChannelCost
from growth.db import get_db
from growth.investors.models import Investment
from growth.timeutil import local_date
from tests.factories import make_investor, make_token

PAGE = "/dashboards/economics"


@pytest.fixture
def app_config() -> dict:
    return {"ECONOMICS_SERVICE_FEE_RATE": "0.0300"}


def _book(app) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC) - timedelta(hours=1)
    with get_db(app).session_scope(write=True) as s:
        channel = AcquisitionChannel(code="sem", name="SEM", kind="sem")
        s.add(channel)
        s.flush()
        s.add(ChannelCost(channel_id=channel.id, day=local_date(now), amount_fen=50_000))
        investor = make_investor(s, channel_id=channel.id, registered_at=now - timedelta(days=1),
                                 first_investment_at=now)
        s.add(Investment(investment_id="i1", investor_id=investor.id, amount_fen=1_000_000, term_days=180,
                         started_at=now, status="active"))


def test_the_api_and_the_page_give_the_payback_days_from_the_configured_fee_rate(app, client, session, login):
    _book(app)
    token = make_token(session, role="analyst")
    session.commit()
    body = client.get("/api/v1/acquisition/economics", headers={"Authorization": f"Bearer {token}"}).json
    (row,) = [c for c in body["channels"] if c["code"] == "sem"]
    # ¥10,000 for 180 days = ¥4,931.51 annualised; its fees at 3 % are ¥147.95 a 30-day window; ¥500 repaid after
    # ⌈30 × 500 ÷ (0.03 × 10,000 × 180 ÷ 365)⌉ days.
    assert row["payback_days"] == ceil(30 * 500 / (0.03 * 10_000 * 180 / 365)) == 102
    login("analyst")
    html = client.get(PAGE).get_data(as_text=True)
    assert "回本天数" in html and "102 天" in html and "3.00%" in html
    csv = client.get(PAGE, query_string={"format": "csv"}).get_data(as_text=True)
    assert csv.splitlines()[0].endswith("payback_days") and ",102" in csv


def test_a_bad_fee_rate_stops_the_app_with_what_is_expected(tmp_path):
    from growth.app import create_app
    from tests.conftest import TestConfig

    config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    config.update(DATABASE_URL=f"sqlite:///{tmp_path / 'growth.db'}", ECONOMICS_SERVICE_FEE_RATE="3%")
    with pytest.raises(ValueError, match="ECONOMICS_SERVICE_FEE_RATE must be an annual rate between 0 and 1"):
        create_app(config)
