"""`growth events replay` resets and rebuilds EVERY registered projection to the same state.

The checks iterate over the app's registry, so a projection registered later is covered without a
new test: its owned tables and columns are dumped before and after the replay, and right after the
reset nothing it derived from the log may be left.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner
from flask import Flask
from flask.cli import ScriptInfo
from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from channels.services import consent_of, record_statement
from growth.cli import cli
from growth.crypto import keyring
from growth.db import get_db
from growth.events.processor import drain, reset_projections
from growth.investors.models import FundsMovement, Investor
from growth.investors.rules import name_form, referral_code_for
from growth.projections import Projection, Projections, column_default, projections_of
from tests.events import event, investment, post_events

T0 = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)


def history(n: int) -> list[dict[str, Any]]:
    """Return a history touching every projection: codes, late referrers, money, investments, consent."""
    events: list[dict[str, Any]] = []
    for i in range(n):
        uid, at = f"r{i}", T0 + i * H
        data: dict[str, Any] = {}
        if i % 4 == 1:
            data = {"channel_code": "baidu_sem" if i % 8 == 1 else "brand_new_code"}
        elif i % 4 == 2:
            data = {"referral_code": referral_code_for(f"r{i + 1}")}  # the referrer comes later
        events.append(event("user.registered", uid, at, data, phone=f"139{i:08d}", name=f"投资人{i}"))
        events.append(event("user.kyc_verified", uid, at + H, email=f"{uid}@example.com"))
        events.append(event("funds.deposited", uid, at + 2 * H, {"deposit_id": f"{uid}-d", "amount": "1000.00"}))
        events.append(event("funds.withdrawn", uid, at + 3 * D, {"withdrawal_id": f"{uid}-w", "amount": "10.00"}))
        events.append(investment(uid, at + 4 * H, f"{uid}-a", amount="600.00"))
        if i % 3 == 0:
            events.append(event("investment.matured", uid, at + 40 * D,
                                {"investment_id": f"{uid}-a", "amount": "600.00", "interest": "2.50"}))
        events.append(event("user.consent_changed", uid, at + 6 * H, {"channel": "sms", "granted": i % 2 == 0}))
        events.append(event("user.consent_changed", uid, at + 6 * H, {"channel": "email", "granted": True}))
    return events


# --- reading a projection's state -------------------------------------------------------------------


def _shared_tables(projections: Projections) -> set[Table]:
    return {t for p in projections for t in (*p.columns, *p.keeps)}


def _value_columns(table: Table) -> list[str]:
    """Every column but a surrogate key (rebuilt rows get new ids; rows pointing at them are compared by value)."""
    return [c.key for c in table.columns if c is not table.autoincrement_column]


def _rows(session: Session, table: Table, names: list[str]) -> list[tuple[Any, ...]]:
    rows = session.execute(select(*(table.c[n] for n in names))).all()
    return sorted((tuple(r) for r in rows), key=repr)


def dump(session: Session, projection: type[Projection]) -> dict[str, Any]:
    """Return everything a projection owns: its tables whole, its columns of shared rows (by row id)."""
    out: dict[str, Any] = {}
    for table in projection.tables:
        out[table.name] = _rows(session, table, _value_columns(table))
    for table, names in projection.columns.items():
        out[f"{table.name}.{'/'.join(names)}"] = _rows(session, table, [*(c.key for c in table.primary_key), *names])
    return out


def dumps(app: Flask) -> dict[str, dict[str, Any]]:
    with get_db(app).session_scope() as s:
        return {p.name: dump(s, p) for p in projections_of(app)}


# --- what the reset must leave ------------------------------------------------------------------------


def declaration_problems(projections: Projections) -> list[str]:
    """Return what the declarations miss: a shared column nobody owns or keeps, a table or column owned twice."""
    problems: list[str] = []
    owners: dict[str, str] = {}
    for p in projections:
        for name in [t.name for t in p.tables] + [f"{t.name}.{c}" for t, cs in p.columns.items() for c in cs]:
            if name in owners:
                problems.append(f"{name} is owned by {owners[name]} and {p.name}")
            owners[name] = p.name
    for table in _shared_tables(projections):
        declared = {c.key for c in table.primary_key}
        for p in projections:
            declared.update(p.columns.get(table, ()), p.keeps.get(table, ()))
        # A generated column (the investors' search keys) is the database's function of owned columns.
        problems += [f"{table.name}.{c.key} is neither owned by a projection nor kept by a replay"
                     for c in table.columns if c.key not in declared and c.computed is None]
    return problems


def reset_problems(session: Session, projections: Projections) -> list[str]:
    """Return what a reset left behind: derived rows in an owned table, an owned column off its default."""
    problems: list[str] = []
    for p in projections:
        for table in p.tables:
            where = p.derived_rows(table)
            if where is None and p.after_reset.__func__ is not Projection.after_reset.__func__:  # type: ignore[attr-defined]
                continue  # rebuilt from the rows the reset keeps: checked by the dumps around the replay
            query = select(func.count()).select_from(table)
            left = session.scalar(query if where is None else query.where(where))
            if left:
                problems.append(f"{p.name}: {left} derived rows left in {table.name}")
        for table, names in p.columns.items():
            for name in names:
                default = column_default(table.c[name])
                values = {v for (v,) in session.execute(select(table.c[name]).distinct())}
                if values - {default}:
                    problems.append(f"{p.name}: {table.name}.{name} not back to {default!r}")
    return problems


# --- tests --------------------------------------------------------------------------------------------


def _populate(app: Flask, client: Any) -> None:
    response = post_events(client, history(12))
    assert response.json["rejected"] == [] and response.json["duplicates"] == 0
    drain(app, limit=7)  # several batches: late referrers span them
    _rewards(app, client)
    with get_db(app).session_scope(write=True) as s:
        inv = s.scalars(select(Investor).where(Investor.platform_user_id == "r0")).one()
        # Told to us directly, not by the platform: a replay must keep it (and its effect on the state).
        assert record_statement(session=s, investor_id=inv.id, channel="sms", granted=False, occurred_at=T0 + 9 * D,
                                source="unsubscribe_link", evidence={"link": "u/abc"})


def _rewards(app: Flask, client: Any) -> None:
    """Grant a voucher (not in the log: a replay keeps it) and use it, and a reward we never granted, on investments."""
    from growth.rewards.rules import Terms
    from growth.rewards.services import budget_for, grant

    with get_db(app).session_scope(write=True) as s:
        inv = s.scalars(select(Investor).where(Investor.platform_user_id == "r1")).one()
        budget = budget_for("manual", "manual", session=s, now=T0)
        voucher = grant(session=s, key="replay-voucher", investor_id=inv.id, kind="voucher", budget=budget,
                        terms=Terms(amount_fen=5000, valid_days=30), actor="test", now=T0 + 2 * D)
        ref = f"rw_{voucher.id}"
    uses = [investment("r1", T0 + 3 * D, "r1-b", amount="6000.00", reward_ids=[ref, "rw_987654"]),
            investment("r2", T0 + 3 * D, "r2-b", reward_ids=[ref])]
    assert post_events(client, uses).json["rejected"] == []
    drain(app)


def test_every_column_of_a_shared_row_is_owned_by_one_projection_or_kept(app):
    assert len(projections_of(app)) >= 4
    assert declaration_problems(projections_of(app)) == []


def test_the_replay_command_rebuilds_every_registered_projection_to_the_same_state(app, client):
    _populate(app, client)
    before = dumps(app)
    assert all(any(rows for rows in state.values()) for state in before.values()), before  # none is trivially empty

    result = CliRunner().invoke(cli, ["events", "replay", "--yes"], obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code == 0, result.output
    assert dumps(app) == before


def test_a_reset_leaves_nothing_any_registered_projection_derived_from_the_log(app, client):
    _populate(app, client)
    before = dumps(app)
    projections = projections_of(app)
    with get_db(app).session_scope(write=True) as s:
        reset_projections(session=s, projections=projections)
    with get_db(app).session_scope() as s:
        assert reset_problems(s, projections) == []
        inv = s.scalars(select(Investor).where(Investor.platform_user_id == "r0")).one()
        # Only the statement from the unsubscribe link is left, and the state follows it.
        assert consent_of(session=s, investor_id=inv.id) == {
            "sms": {"granted": False, "at": T0 + 9 * D, "source": "unsubscribe_link"}}
    drain(app)
    assert dumps(app) == before


def test_a_projection_whose_reset_forgets_a_table_or_a_column_is_caught(app, client):
    _populate(app, client)
    real = list(projections_of(app))

    def sloppy_registry() -> Iterator[type[Projection]]:
        for p in real:
            if p.name != "investors":
                yield p
                continue
            # Its reset forgets the fund movements and the phone column, as a hand-written list would.
            columns = {t: tuple(c for c in cs if c != "phone") for t, cs in p.columns.items()}
            yield p.configured(tables=tuple(t for t in p.tables if t is not FundsMovement.__table__),
                               columns=columns)

    sloppy = Projections()
    for p in sloppy_registry():
        sloppy.register(p)
    assert declaration_problems(sloppy) == ["investors.phone is neither owned by a projection nor kept by a replay"]
    with get_db(app).session_scope(write=True) as s:
        reset_projections(session=s, projections=sloppy)
    with get_db(app).session_scope() as s:
        assert reset_problems(s, projections_of(app)) == [
            "investors: 24 derived rows left in funds_movements",
            "investors: investors.phone not back to None",
        ]


def test_the_search_hashes_go_with_a_reset_and_come_back_with_the_replay(app, client):
    _populate(app, client)
    keys = select(Investor.platform_user_id, Investor.phone, Investor.name, Investor.phone_index,
                  Investor.phone_tail_index, Investor.name_index,
                  Investor.email_index).order_by(Investor.platform_user_id)
    with get_db(app).session_scope() as s:
        before = s.execute(keys).all()
    assert any(row.phone for row in before) and any(row.name for row in before)
    ring = keyring()
    assert all(row.phone_index == (ring.blind(row.phone, "phone") if row.phone else None) for row in before)
    assert all(row.name_index == (ring.blind(name_form(row.name), "name") if row.name else None) for row in before)
    with get_db(app).session_scope(write=True) as s:
        reset_projections(session=s, projections=projections_of(app))
    with get_db(app).session_scope() as s:
        assert {tuple(r)[3:] for r in s.execute(keys)} == {(None, None, None, None)}
    drain(app)
    with get_db(app).session_scope() as s:
        assert s.execute(keys).all() == before
