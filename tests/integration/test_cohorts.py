"""GET /api/v1/dashboards/cohorts (and the page's CSVs) against a plain-Python computation of every cell.

The data are generated and sent as signed events through the processor: registrations on the last second of a
month and the first second of the next (23:59:59 vs 00:00:00 Asia/Shanghai), a registration that arrives late and
moves its investor into the previous month, investments dated before registering, on both sides of a month's
edge, maturities on both sides of a month's edge, new investments exactly `days` × 24 h after a maturity and a
second later, and investments and maturities that arrive after the first batch was processed. The expected
figures use none of the project's code: only the generated truth and the page's definitions.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from growth.acquisition.models import AcquisitionChannel
from growth.db import get_db
from growth.events.processor import drain
from tests.events import event, investment, post_events
from tests.factories import make_token

SH = ZoneInfo("Asia/Shanghai")
CHANNELS = {"baidu_sem": "百度SEM", "wdzj": "网贷之家"}
WINDOWS = (7, 1, 30)


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=SH)


def month_of(at: datetime) -> str:
    return at.astimezone(SH).strftime("%Y-%m")


def months_between(a: str, b: str) -> int:
    return (int(b[:4]) - int(a[:4])) * 12 + int(b[5:]) - int(a[5:])


def add_months(month: str, n: int) -> str:
    k = int(month[:4]) * 12 + int(month[5:]) - 1 + n
    return f"{k // 12:04d}-{k % 12 + 1:02d}"


def rate(num: int, den: int) -> str | None:
    if not den:
        return None
    return str((Decimal(num) / Decimal(den)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


@dataclass
class Inv:
    investment_id: str
    at: datetime
    fen: int
    term: int
    matured_at: datetime | None = None
    late: bool = False  # its events arrive after the first drain


@dataclass
class Person:
    uid: str
    channel: str
    registered: datetime
    data: dict[str, Any]
    late_registration: datetime | None = None  # a later registration (another channel) that arrives first
    investments: list[Inv] = field(default_factory=list)


REGISTRATION_EDGES = [local(2026, 3, 31, 23, 59, 59), local(2026, 4, 1), local(2026, 2, 28, 23, 59, 59),
                      local(2026, 3, 1), local(2025, 12, 31, 23, 59, 59), local(2026, 1, 1)]


def generate(seed: int, now: datetime, n: int = 130) -> list[Person]:
    rng = random.Random(seed)
    latest = now - timedelta(days=1)
    start, span = local(2025, 11, 20), (latest - local(2025, 11, 20)).total_seconds()
    people: list[Person] = []
    for i in range(n):
        uid = f"c{i:04d}"
        registered = REGISTRATION_EDGES[i] if i < len(REGISTRATION_EDGES) else start + timedelta(
            seconds=rng.uniform(0, span))
        roll = rng.random()
        if roll < 0.55:
            code = rng.choice(list(CHANNELS))
            data, channel = {"channel_code": code}, code
        else:
            data, channel = {}, "organic"
        p = Person(uid, channel, registered.astimezone(UTC), data)
        if i == 0 or rng.random() < 0.1:  # the first arrives at 00:00:05 the next day: another month for person 0
            p.late_registration = p.registered + timedelta(seconds=6 if i == 0 else rng.uniform(3600, 40 * 3600))
        _investments(rng, p, latest, edge=i)
        people.append(p)
    return people


def _investments(rng: random.Random, p: Person, latest: datetime, edge: int) -> None:
    """Give a person investments (some before registering, some on a month's edge) and maturities, some of them
    followed by a new investment exactly `days` × 24 h later or a second after that."""
    times: list[datetime] = []
    if edge in (0, 1, 2, 3):  # the March/April and February/March edges, in Shanghai time
        times += [local(2026, 3, 31, 23, 59, 59), local(2026, 4, 1)]
    if rng.random() < 0.2:
        times.append(p.registered - timedelta(days=rng.uniform(0.5, 40)))  # dated before registering
    for _ in range(rng.choice([0, 1, 1, 2, 3, 4])):
        times.append(p.registered + timedelta(seconds=rng.uniform(0, 300 * 86400) ** 1.0))
    k = 0
    for at in sorted(times):
        if at > latest:
            continue
        k += 1
        inv = Inv(f"{p.uid}-i{k}", at.astimezone(UTC), rng.randint(100_000, 5_000_000), rng.choice([7, 30, 60, 90]),
                  late=rng.random() < 0.25)
        p.investments.append(inv)
    for inv in list(p.investments):
        if rng.random() < 0.55:
            matured = inv.at + timedelta(days=inv.term, seconds=rng.uniform(0, 7200))
            if rng.random() < 0.15:  # on a month's edge
                matured = rng.choice([local(2026, 4, 30, 23, 59, 59), local(2026, 5, 1)]).astimezone(UTC)
                if matured <= inv.at or any(i.matured_at == matured for i in p.investments):
                    continue
            if matured > latest:
                continue
            inv.matured_at = matured
            roll = rng.random()
            if roll < 0.5:  # a new investment after it: exactly on a window's end, a second after, or inside
                gap = rng.choice([timedelta(days=w) for w in WINDOWS] + [timedelta(days=w, seconds=1) for w in WINDOWS]
                                 + [timedelta(hours=rng.uniform(0, 20 * 24))])
                at = matured + gap
                if at <= latest:
                    k += 1
                    p.investments.append(Inv(f"{p.uid}-i{k}", at, rng.randint(100_000, 5_000_000), 30,
                                             late=rng.random() < 0.25))


def _send(app, client, people: list[Person], seed: int) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed + 1)
    first, late = [], []
    for p in people:
        if p.late_registration is not None:
            first.append(event("user.registered", p.uid, p.late_registration, {"channel_code": "wdzj"}))
            late.append(event("user.registered", p.uid, p.registered, p.data))
        else:
            first.append(event("user.registered", p.uid, p.registered, p.data))
        for inv in p.investments:
            out = late if inv.late else first
            out.append(investment(p.uid, inv.at, inv.investment_id, amount=yuan(inv.fen), term_days=inv.term))
            if inv.matured_at is not None:
                # Maturities arrive late more often than not: the platform reports them in a nightly batch.
                (late if rng.random() < 0.6 else first).append(event(
                    "investment.matured", p.uid, inv.matured_at,
                    {"investment_id": inv.investment_id, "amount": yuan(inv.fen), "interest": "12.34"}))
    rng.shuffle(first)
    rng.shuffle(late)
    for chunk in (first, late):
        for k in range(0, len(chunk), 400):
            assert post_events(client, chunk[k:k + 400]).json["rejected"] == []
        drain(app, limit=47)


def expected(people: list[Person], first: str, last: str, now: datetime, *, base: str = "investors",
             channel: str | None = None, days: int = 7) -> dict[str, Any]:
    """Compute every cell and every maturity month plainly from the generated truth."""
    current = month_of(now)
    chosen = [p for p in people if channel is None or p.channel == channel]
    cohorts = []
    width = months_between(first, current) + 1
    month = first
    while month <= last:
        members = [p for p in chosen if month_of(p.registered) == month]
        firsts = sum(1 for p in members if p.investments)
        size = firsts if base == "investors" else len(members)
        cells: list[dict[str, Any] | None] = []
        for offset in range(width):
            at = add_months(month, offset)
            if at > current:
                cells.append(None)
                continue
            active = sum(1 for p in members if any(
                month_of(max(i.at, p.registered)) == at for i in p.investments))
            cells.append({"offset": offset, "month": at, "investors": active, "rate": rate(active, size),
                          "incomplete": at == current})
        cohorts.append({"month": month, "registrations": len(members), "first_investors": firsts, "base": size,
                        "cells": cells})
        month = add_months(month, 1)

    window = timedelta(days=days)
    rows: dict[str, dict[str, Any]] = {}
    for p in chosen:
        maturities = [i for i in p.investments if i.matured_at is not None]
        for i in maturities:
            r = rows.setdefault(month_of(i.matured_at), _zero())  # type: ignore[arg-type]
            r["matured"] += 1
            r["principal"] += i.fen
            r["people"].add(p.uid)
        for j in p.investments:
            before = [i for i in maturities if i is not j and i.matured_at <= j.at]  # type: ignore[operator]
            if not before:
                continue
            owner = max(before, key=lambda i: i.matured_at)  # type: ignore[arg-type,return-value]
            if j.at - owner.matured_at <= window:  # type: ignore[operator]
                r = rows.setdefault(month_of(owner.matured_at), _zero())  # type: ignore[arg-type]
                r["again_people"].add(p.uid)
                r["again"] += 1
                r["again_fen"] += j.fen
    months, total = [], _zero()
    month = first
    total_people = total_again_people = 0
    while month <= last:
        r = rows.get(month, _zero())
        months.append(_shaped(month, r, len(r["people"]), len(r["again_people"]), now, days))
        for k in ("matured", "principal", "again", "again_fen"):
            total[k] += r[k]
        total_people += len(r["people"])
        total_again_people += len(r["again_people"])
        month = add_months(month, 1)
    shaped_total = _shaped(None, total, total_people, total_again_people, now, days)
    shaped_total["incomplete"] = any(m["incomplete"] for m in months)
    return {"from": first, "to": last, "channel": channel, "base": base, "current_month": current, "columns": width,
            "cohorts": cohorts, "reinvestment": {"days": days, "months": months, "total": shaped_total}}


def _zero() -> dict[str, Any]:
    return {"matured": 0, "principal": 0, "people": set(), "again_people": set(), "again": 0, "again_fen": 0}


def _shaped(month: str | None, r: dict[str, Any], people: int, again_people: int, now: datetime,
            days: int) -> dict[str, Any]:
    if month is None:
        open_ = False
    else:
        y, m = int(month[:4]), int(month[5:])
        end = local(y + m // 12, m % 12 + 1, 1)
        open_ = end + timedelta(days=days) > now
    return {"month": month, "matured": r["matured"], "principal": yuan(r["principal"]), "investors": people,
            "reinvested_investors": again_people, "reinvestments": r["again"],
            "reinvested_amount": yuan(r["again_fen"]),
            "rate_by_count": rate(again_people, people), "rate_by_amount": rate(r["again_fen"], r["principal"]),
            "incomplete": open_}


@dataclass
class World:
    people: list[Person]


@pytest.fixture
def world(app, client) -> World:  # type: ignore[no-untyped-def]
    people = generate(20261204, datetime.now(UTC))
    with get_db(app).session_scope(write=True) as s:
        s.add_all(AcquisitionChannel(code=code, name=name, kind="sem") for code, name in CHANNELS.items())
    _send(app, client, people, 20261204)
    return World(people)


@pytest.fixture
def token(app) -> str:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return make_token(s, role="analyst")


def _get(client, token: str, **params: Any):  # type: ignore[no-untyped-def]
    return client.get("/api/v1/dashboards/cohorts", query_string=params, headers={"Authorization": f"Bearer {token}"})


def _default_range(now: datetime) -> tuple[str, str]:
    current = month_of(now)
    return add_months(current, -11), current


def test_the_generated_data_cover_every_edge_the_definitions_name(world):
    people, now = world.people, datetime.now(UTC)
    regs = {p.registered for p in people}
    assert local(2026, 3, 31, 23, 59, 59) in regs and local(2026, 4, 1) in regs
    # 23:59:59 and 00:00:00 Shanghai: the same UTC day (2026-03-31), two months.
    assert local(2026, 4, 1).astimezone(UTC) == datetime(2026, 3, 31, 16, 0, tzinfo=UTC)
    invs = [(p, i) for p in people for i in p.investments]
    assert any(i.at < p.registered for p, i in invs)
    assert any(month_of(i.at) != month_of(p.registered) and i.at < p.registered for p, i in invs)
    assert any(p.late_registration and month_of(p.late_registration) != month_of(p.registered) for p in people)
    matured = [i for _p, i in invs if i.matured_at]
    assert {local(2026, 4, 30, 23, 59, 59), local(2026, 5, 1)} <= {i.matured_at for i in matured}
    assert any(i.late for _p, i in invs)
    gaps = {j.at - i.matured_at for p in people for i in p.investments if i.matured_at  # type: ignore[operator]
            for j in p.investments if j.at >= i.matured_at}  # type: ignore[operator]
    assert timedelta(days=7) in gaps and timedelta(days=7, seconds=1) in gaps
    full = expected(people, *_default_range(now), now)
    assert sum(c["registrations"] for c in full["cohorts"]) > 80
    assert full["reinvestment"]["total"]["reinvestments"] > 5
    # Windows and bases change the figures, so each one is a real check.
    assert len({str(expected(people, *_default_range(now), now, days=d)["reinvestment"]) for d in WINDOWS}) == 3


def test_every_cell_and_every_maturity_month_agree_with_a_plain_computation(client, world, token):
    now = datetime.now(UTC)
    first, last = _default_range(now)
    cases: list[dict[str, Any]] = [
        {}, {"from": "2025-12", "to": "2026-06"}, {"from": "2026-03", "to": "2026-04", "base": "registrations"},
        {"from": "2026-04", "to": "2026-05", "days": "1"}, {"from": "2025-11", "to": last, "days": "30"},
        {"channel": "baidu_sem", "base": "registrations"}, {"channel": "organic", "days": "30"},
    ]
    for params in cases:
        response = _get(client, token, **params)
        assert response.status_code == 200, response.get_data(as_text=True)
        want = expected(world.people, params.get("from", first), params.get("to", last), now,
                        base=params.get("base", "investors"), channel=params.get("channel"),
                        days=int(params.get("days", 7)))
        got = response.json
        assert got["cohorts"] == want["cohorts"], params
        assert got["reinvestment"] == want["reinvestment"], params
        assert {k: got[k] for k in ("from", "to", "channel", "base", "current_month", "columns")} == {
            k: want[k] for k in ("from", "to", "channel", "base", "current_month", "columns")}, params


def test_the_month_edge_is_shanghai_midnight_not_utc_midnight(client, world, token):
    response = _get(client, token, **{"from": "2026-03", "to": "2026-04"})
    march, april = response.json["cohorts"]
    people = world.people
    # Registered 2026-03-31T23:59:59+08:00 is March; 2026-04-01T00:00:00+08:00 (= 2026-03-31T16:00Z) is April.
    assert march["registrations"] == sum(1 for p in people if month_of(p.registered) == "2026-03")
    assert april["registrations"] == sum(1 for p in people if month_of(p.registered) == "2026-04")
    assert any(p.registered == local(2026, 3, 31, 23, 59, 59) for p in people)


def test_the_csvs_hold_the_same_numbers_as_the_api(client, world, login):
    login("analyst")
    now = datetime.now(UTC)
    params = {"from": "2026-02", "to": "2026-05", "days": "7", "base": "investors"}
    want = expected(world.people, "2026-02", "2026-05", now)
    response = client.get("/dashboards/cohorts", query_string={**params, "format": "csv"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    flat = [{"cohort": c["month"], "registrations": str(c["registrations"]),
             "first_investors": str(c["first_investors"]),
             "base": str(c["base"]), "offset": str(cell["offset"]), "month": cell["month"],
             "investors": str(cell["investors"]), "rate": cell["rate"] or "",
             "incomplete": "true" if cell["incomplete"] else "false"}
            for c in want["cohorts"] for cell in c["cells"] if cell is not None]
    assert rows == flat
    response = client.get("/dashboards/cohorts", query_string={**params, "format": "csv", "table": "reinvestment"})
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    months = [*want["reinvestment"]["months"], {**want["reinvestment"]["total"], "month": "total"}]
    assert rows == [{k: "" if v is None else ("true" if v is True else "false" if v is False else str(v))
                     for k, v in m.items()} for m in months]

