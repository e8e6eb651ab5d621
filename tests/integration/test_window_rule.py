"""The funnel's window rule in SQL (`growth.db.within_days_after`): `at ≤ start + days × 24 h`, exact to the
microsecond on both databases — SQLite's fast julianday test settles all but the last second, where the exact
text comparison decides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import Column, Integer, MetaData, Table, bindparam, insert, select

from growth.db import UTCDateTime, get_db, within_days_after

START = datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
WHOLE = datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC)  # no fraction; the deadline crosses a month end
CASES = [  # (start, at − (start + days), within?)
    (START, timedelta(0), True),
    (START, timedelta(microseconds=1), False),
    (START, timedelta(microseconds=-1), True),
    (START, timedelta(milliseconds=400), False),
    (START, timedelta(milliseconds=-400), True),
    (START, timedelta(seconds=1, microseconds=1), False),
    (START, timedelta(seconds=-1, microseconds=-1), True),
    (START, timedelta(days=-40), True),  # a step dated before the start counts
    (START, timedelta(days=3), False),
    (WHOLE, timedelta(0), True),
    (WHOLE, timedelta(microseconds=1), False),
    (WHOLE, timedelta(microseconds=-1), True),
]


@pytest.mark.parametrize("days", [1, 30, 365])
def test_the_window_rule_is_exact_to_the_microsecond_on_each_side_of_the_deadline(app: Flask, days: int) -> None:
    meta = MetaData()
    table = Table("window_rule_probe", meta, Column("id", Integer, primary_key=True),
                  Column("start", UTCDateTime), Column("at", UTCDateTime))
    engine = get_db(app).engine
    meta.create_all(engine)
    try:
        rows = [{"id": i, "start": start, "at": start + timedelta(days=days) + offset}
                for i, (start, offset, _within) in enumerate(CASES)]
        rows.append({"id": len(CASES), "start": START, "at": None})
        with engine.begin() as conn:
            conn.execute(insert(table), rows)
            by_column = set(conn.scalars(select(table.c.id).where(within_days_after(table.c.at, table.c.start,
                                                                                    days))))
            by_parameter = set(conn.scalars(select(table.c.id).where(
                within_days_after(table.c.at, table.c.start, bindparam("days", days)))))
    finally:
        meta.drop_all(engine)
    expected = {i for i, (_start, _offset, within) in enumerate(CASES) if within}
    assert by_column == expected
    assert by_parameter == expected
