from datetime import UTC, datetime, timedelta

from growth.events.processor import drain
from growth.investors.models import Investor
from tests.events import event, investment, post_events


def test_signed_events_become_an_investor_with_milestones(app, client, session):
    t0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    events = [
        event("user.registered", "u1", t0, {"channel_code": "baidu_sem"}, phone="13800138000", name="张三"),
        event("user.kyc_verified", "u1", t0 + timedelta(hours=1)),
        investment("u1", t0 + timedelta(days=1), "inv1"),
        investment("u1", t0 + timedelta(days=2), "inv2", amount="500.50"),
    ]
    response = post_events(client, events)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json == {"accepted": 4, "duplicates": 0, "rejected": []}
    assert post_events(client, events).json == {"accepted": 0, "duplicates": 4, "rejected": []}
    assert drain(app) == 4
    inv = session.query(Investor).one()
    assert inv.phone == "+8613800138000"
    assert inv.registered_at == t0
    assert inv.repeat_investment_at == t0 + timedelta(days=2)
    assert inv.investment_total_fen == 150050
