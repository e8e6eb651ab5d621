"""insert_many and update_many write exactly what the ORM would, on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select

from growth.db import among, among_ids, get_db, insert_many, update_many
from growth.investors.models import Investment, Investor

T = Investment.__table__
AT = datetime(2026, 11, 30, 2, 15, 30, 123456, tzinfo=UTC)


def _investor(session) -> int:
    inv = Investor(platform_user_id="u1", referral_code="R1")
    session.add(inv)
    session.flush()
    return inv.id


def test_inserted_rows_come_back_with_their_ids_and_values_intact(app):
    with get_db(app).session_scope(write=True) as s:
        owner = _investor(s)
        rows = [{"investment_id": f"i{n}", "investor_id": owner, "amount_fen": 100 * n, "started_at": AT,
                 "maturity_date": date(2026, 12, 30), "status": "active", "reward_ids": ["r1", "r2"],
                 "redeemed_fen": 0, "matured_principal_fen": 0, "interest_fen": 0} for n in range(1, 4)]
        returned = insert_many(s.connection(), T, rows, returning=("id", "investment_id"))
        assert sorted(key for _id, key in returned) == ["i1", "i2", "i3"]
    with get_db(app).session_scope() as s:
        stored = {i.investment_id: i for i in s.scalars(select(Investment))}
        assert {i.id for i in stored.values()} == {row_id for row_id, _key in returned}
        assert stored["i2"].amount_fen == 200
        assert stored["i2"].started_at == AT
        assert stored["i2"].maturity_date == date(2026, 12, 30)
        assert stored["i2"].reward_ids == ["r1", "r2"]


def test_updated_rows_change_by_key_and_others_stay(app):
    with get_db(app).session_scope(write=True) as s:
        owner = _investor(s)
        base = {"investor_id": owner, "status": "active", "reward_ids": [], "redeemed_fen": 0,
                "matured_principal_fen": 0, "interest_fen": 0}
        ids = dict((key, row_id) for row_id, key in insert_many(
            s.connection(), T, [{"investment_id": k, **base} for k in ("a", "b")], returning=("id", "investment_id")))
        update_many(s.connection(), T, [{"id": ids["a"], "status": "matured", "matured_at": AT, "interest_fen": 7,
                                         "product_name": "季季丰"}])
    with get_db(app).session_scope() as s:
        a, b = (s.scalar(select(Investment).where(Investment.investment_id == k)) for k in ("a", "b"))
        assert (a.status, a.matured_at, a.interest_fen, a.product_name) == ("matured", AT, 7, "季季丰")
        assert (b.status, b.matured_at, b.interest_fen, b.product_name) == ("active", None, 0, None)


def test_nothing_to_write_is_a_no_op(app):
    with get_db(app).session_scope(write=True) as s:
        assert insert_many(s.connection(), T, [], returning=("id",)) == []
        update_many(s.connection(), T, [])


def test_among_ids_matches_exactly_the_rows_among_matches(app):
    with get_db(app).session_scope(write=True) as s:
        owner = _investor(s)
        base = {"investor_id": owner, "status": "active", "reward_ids": [], "redeemed_fen": 0,
                "matured_principal_fen": 0, "interest_fen": 0}
        ids = sorted(row_id for (row_id,) in insert_many(
            s.connection(), T, [{"investment_id": f"i{n}", **base} for n in range(8)], returning=("id",)))
        dialect = s.get_bind().dialect.name
        for wanted in ([ids[5], ids[1], ids[3]], [ids[2]], [], [ids[0], ids[7], 10**9]):
            found = set(s.scalars(select(T.c.id).where(among_ids(T.c.id, wanted, dialect=dialect))))
            assert found == set(s.scalars(select(T.c.id).where(among(T.c.id, wanted, dialect=dialect))))
            assert found == set(wanted) & set(ids)
