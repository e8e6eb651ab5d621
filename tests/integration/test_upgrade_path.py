"""From the first released schema (0001) with data to head, on SQLite and PostgreSQL: the data survives and works.

The database is built at revision 0001 and filled with raw SQL of THAT schema (the models of today would
not fit it): an acquisition channel with a link and clicks, a cost, three investors at different funnel
steps with one investment and one deposit, the events they came from (already processed: the cursor is at
the end of the log), a staff member and an audit entry. After `upgrade` to head the rows are all there,
the staff member signs in with their old password hash, the funnel API counts the three investors right,
and the processor processes a new event on top of the old log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import create_engine, text

from growth import crypto
from growth.app import create_app
from growth.auth import services as auth_services
from growth.config import TestConfig
from growth.db import get_db
from growth.events.processor import drain
from growth.migrate import is_current, upgrade
from tests.events import event, investment, post_events
from tests.integration import test_migrations

empty_database_url = test_migrations.empty_database_url  # a fresh database per test, on each kind

PASSWORD = "old-password-2025"
DAY = "2026-11-"


def at(day: int, hour: int = 2) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=UTC)  # 10:00 in Beijing: the same calendar day there


def stored(value: datetime, dialect: str) -> Any:
    """A timestamp as the 0001 schema stores it (SQLite: SQLAlchemy's naive UTC text)."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else value


def fill_first_schema(url: str) -> None:
    """Insert representative rows with raw SQL of revision 0001."""
    engine = create_engine(url)
    dialect = engine.dialect.name

    def t(day: int, hour: int = 2) -> Any:
        return stored(at(day, hour), dialect)

    investors = [
        # id, user, code, phone, registered, kyc, card, deposit, first investment, channel, counts
        (1, "u_old_a", "OLDA0001", "+8613800000001", t(2), t(2, 3), t(2, 4), t(3), t(3, 3), 1, 1, 500_000, 500_000),
        (2, "u_old_b", "OLDB0002", "+8613800000002", t(5), None, None, None, None, None, 0, 0, 0),
        (3, "u_old_c", "OLDC0003", "+8613800000003", t(6), t(6, 5), None, None, None, 1, 0, 0, 0),
    ]
    events = [event("user.registered", "u_old_a", at(2), {"channel_code": "wx-ads"}, event_id="evt_old_1",
                    phone="+8613800000001", name="老张"),
              event("user.kyc_verified", "u_old_a", at(2, 3), event_id="evt_old_2"),
              event("user.card_bound", "u_old_a", at(2, 4), event_id="evt_old_3"),
              event("funds.deposited", "u_old_a", at(3), {"deposit_id": "d_old_1", "amount": "5000.00"},
                    event_id="evt_old_4"),
              investment("u_old_a", at(3, 3), "inv_old_1", amount="5000.00", event_id="evt_old_5"),
              event("user.registered", "u_old_b", at(5), event_id="evt_old_6"),
              event("user.registered", "u_old_c", at(6), {"channel_code": "wx-ads"}, event_id="evt_old_7"),
              event("user.kyc_verified", "u_old_c", at(6, 5), event_id="evt_old_8")]
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO acquisition_channels (id, code, name, kind, owner, notes, active, auto_created, created_at) "
            "VALUES (1, 'wx-ads', '微信广告', 'paid', '市场部', '', true, false, :at)"), {"at": t(1)})
        conn.execute(text(
            "INSERT INTO tracking_links (id, channel_id, code, name, landing_url, utm_source, utm_medium, "
            "utm_campaign, utm_content, utm_term, active, created_by, created_at) VALUES (1, 1, 'lnk1', '双十一', "
            "'https://www.example.com/register', 'wx', 'cpc', 'double11', '', '', true, 'ops@example.com', :at)"),
            {"at": t(1)})
        for n in (1, 2):
            conn.execute(text(
                "INSERT INTO clicks (id, click_id, link_id, channel_id, at, ip, user_agent, referrer) "
                "VALUES (:id, :click, 1, 1, :at, '203.0.113.0', 'Mozilla/5.0', '')"),
                {"id": n, "click": f"clk_old_{n}", "at": t(2, 1)})
        conn.execute(text(
            "INSERT INTO channel_costs (id, channel_id, day, amount_fen, note, entered_by, updated_at) "
            "VALUES (1, 1, :day, 1234500, '11月投放', 'ops@example.com', :at)"),
            {"day": datetime(2026, 11, 2).date(), "at": t(2)})
        for (i, uid, code, phone, reg, kyc, card, dep, inv, channel, count, total, holdings) in investors:
            conn.execute(text(
                "INSERT INTO investors (id, platform_user_id, referral_code, phone, phone_at, registered_at, "
                "kyc_verified_at, card_bound_at, first_deposit_at, first_investment_at, channel_id, "
                "investment_count, investment_total_fen, holdings_fen, deposit_total_fen, withdrawal_total_fen, "
                "last_activity_at, consent) VALUES (:id, :uid, :code, :phone, :reg, :reg, :kyc, :card, :dep, :inv, "
                ":channel, :count, :total, :holdings, :deposit, 0, :reg, '{}')"),
                {"id": i, "uid": uid, "code": code, "phone": phone, "reg": reg, "kyc": kyc, "card": card, "dep": dep,
                 "inv": inv, "channel": channel, "count": count, "total": total, "holdings": holdings,
                 "deposit": 500_000 if dep else 0})
        conn.execute(text(
            "INSERT INTO funds_movements (id, kind, external_id, investor_id, amount_fen, occurred_at) "
            "VALUES (1, 'deposit', 'd_old_1', 1, 500000, :at)"), {"at": t(3)})
        conn.execute(text(
            "INSERT INTO investments (id, investment_id, investor_id, product_id, product_name, term_days, "
            "annual_rate_bp, amount_fen, started_at, maturity_date, status, reward_ids, redeemed_fen, "
            "matured_principal_fen, interest_fen) VALUES (1, 'inv_old_1', 1, 'p30', '30天标', 30, 800, 500000, "
            ":at, :maturity, 'active', '[]', 0, 0, 0)"), {"at": t(3, 3), "maturity": datetime(2026, 12, 3).date()})
        for seq, e in enumerate(events, start=1):
            conn.execute(text(
                "INSERT INTO platform_events (seq, event_id, type, occurred_at, user_id, payload, received_at) "
                "VALUES (:seq, :id, :type, :at, :user, :payload, :at)"),
                {"seq": seq, "id": e["id"], "type": e["type"], "user": e["user"]["id"],
                 "at": stored(datetime.fromisoformat(e["occurred_at"]), dialect), "payload": orjson.dumps(e).decode()})
        conn.execute(text("INSERT INTO processor_cursors (name, position, updated_at) VALUES ('projections', :n, :at)"),
                     {"n": len(events), "at": t(6, 6)})
        conn.execute(text(
            "INSERT INTO staff_users (id, email, name, role, password_hash, active, session_version, created_at) "
            "VALUES (1, 'admin@example.com', '老管理员', 'admin', :hash, true, 1, :at)"),
            {"hash": auth_services._hasher.hash(PASSWORD), "at": t(1)})
        conn.execute(text(
            "INSERT INTO audit_entries (id, at, actor_id, actor, action, target_type, target_id, details) "
            "VALUES (1, :at, 1, 'admin@example.com', 'channel.created', 'channel', '1', '{}')"), {"at": t(1)})
        if dialect == "postgresql":  # rows with explicit ids: move the sequences past them, as the app would
            for table in ("acquisition_channels", "tracking_links", "clicks", "channel_costs", "investors",
                          "funds_movements", "investments", "platform_events", "staff_users", "audit_entries"):
                key = "seq" if table == "platform_events" else "id"
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', '{key}'), "
                                  f"(SELECT max({key}) FROM {table}))"))
    engine.dispose()


def test_a_database_of_the_first_schema_with_data_upgrades_to_head_and_the_app_works_on_it(
        empty_database_url, tmp_path, monkeypatch):
    url = empty_database_url
    upgrade(url, "0001")
    fill_first_schema(url)
    crypto.configure(crypto.parse_keys(TestConfig.DATA_KEYS))  # 0022 encrypts the profiles with the app's keys
    upgrade(url)
    assert is_current(url)

    engine = create_engine(url)
    with engine.connect() as conn:
        counts = {table: conn.scalar(text(f"SELECT count(*) FROM {table}")) for table in (
            "acquisition_channels", "tracking_links", "clicks", "channel_costs", "investors", "funds_movements",
            "investments", "platform_events", "staff_users", "audit_entries")}
        phone, channel = conn.execute(text(
            "SELECT phone, channel_id FROM investors WHERE platform_user_id = 'u_old_a'")).one()
        logged = conn.scalar(text("SELECT payload FROM platform_events WHERE event_id = 'evt_old_1'"))
    engine.dispose()
    assert counts == {"acquisition_channels": 1, "tracking_links": 1, "clicks": 2, "channel_costs": 1,
                      "investors": 3, "funds_movements": 1, "investments": 1, "platform_events": 8,
                      "staff_users": 1, "audit_entries": 1}
    # Stored encrypted since 0022 (a token of the current key), the same phone once opened.
    assert phone.startswith("test$") and "13800000001" not in phone and channel == 1
    assert crypto.keyring().open(phone, "investors.phone") == "+8613800000001"
    assert "13800000001" not in logged and "老张" not in logged and '"$sealed":"test$' in logged  # the log too

    monkeypatch.setenv("GROWTH_INSTANCE_PATH", str(tmp_path / "instance"))
    config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    app = create_app(config | {"DATABASE_URL": url})
    try:
        client = app.test_client()
        signed_in = client.post("/login", data={"email": "admin@example.com", "password": PASSWORD})
        assert signed_in.status_code == 302  # the old password hash still signs in

        def funnel() -> list[int]:
            response = client.get("/api/v1/funnel?start=2026-11-01&end=2026-11-30&group_by=none")
            assert response.status_code == 200, response.get_data(as_text=True)
            return response.get_json()["total"]["counts"]

        assert funnel() == [3, 2, 1, 1, 1, 0]

        late = event("user.registered", "u_new_d", at(20), {"channel_code": "wx-ads"}, event_id="evt_new_1")
        second = investment("u_old_a", at(21), "inv_new_1", amount="1000.00", event_id="evt_new_2")
        assert post_events(client, [late, second]).status_code in (200, 202)
        assert drain(app) == 2
        assert funnel() == [4, 2, 1, 1, 1, 1]  # a newcomer, and investor A's repeat investment
        found = client.get("/investors", query_string={"q": "+86 138 0000 0001"}).get_data(as_text=True)
        assert "u_old_a" in found  # the search finds an upgraded phone by its keyed hash
        with get_db(app).session_scope() as session:
            assert session.scalar(text("SELECT investment_count FROM investors WHERE platform_user_id = 'u_old_a'")
                                  ) == 2
            assert session.scalar(text("SELECT channel_id FROM investors WHERE platform_user_id = 'u_new_d'")) == 1
    finally:
        get_db(app).dispose()


def test_the_first_revision_is_the_one_this_test_builds_on():
    from alembic.script import ScriptDirectory

    from growth.migrate import alembic_config

    assert ScriptDirectory.from_config(alembic_config("sqlite://")).get_base() == "0001"
