"""Migration 0003_consent moves each investor's consent JSON into the consent ledger and state, and back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect, text

from growth.migrate import alembic_config, upgrade


def test_the_consent_json_becomes_platform_statements_and_states_and_comes_back_on_downgrade(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO investors (id, platform_user_id, referral_code, investment_count, investment_total_fen,"
            " holdings_fen, deposit_total_fen, withdrawal_total_fen, consent) VALUES"
            " (1, 'u1', 'R1', 0, 0, 0, 0, 0, :c1), (2, 'u2', 'R2', 0, 0, 0, 0, 0, '{}')"),
            {"c1": '{"sms": {"granted": false, "at": "2026-10-01T02:00:00.500000+00:00"},'
                   ' "email": {"granted": true, "at": "2026-10-02T02:00:00+00:00"}}'})
    upgrade(url, "0003_consent")
    with engine.connect() as conn:
        assert "consent" not in {c["name"] for c in inspect(conn).get_columns("investors")}
        states = conn.execute(text("SELECT investor_id, channel, granted, occurred_at, source FROM consent_states"
                                   " ORDER BY channel")).all()
        statements = conn.execute(text("SELECT investor_id, channel, granted, source, event_id FROM"
                                       " consent_statements ORDER BY channel")).all()
    assert [tuple(s) for s in states] == [(1, "email", 1, "2026-10-02 02:00:00.000000", "platform_event"),
                                          (1, "sms", 0, "2026-10-01 02:00:00.500000", "platform_event")]
    assert [tuple(s) for s in statements] == [(1, "email", 1, "platform_event", None),
                                              (1, "sms", 0, "platform_event", None)]

    command.downgrade(alembic_config(url), "0001")
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT id, consent FROM investors ORDER BY id")).all())
        assert "consent_states" not in inspect(conn).get_table_names()
    engine.dispose()
    assert rows[2] == "{}"
    assert '"sms": {"granted": false, "at": "2026-10-01T02:00:00.500000+00:00"}' in rows[1]
