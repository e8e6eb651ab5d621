"""The investors projection: profiles, milestones, investments, fund movements and totals.

Every rule is order-free — milestones are the earliest occurrence, profile fields the latest,
totals are recomputed from the investments — so replaying the log in any order gives one state.

It loads (and creates) the batch's investor rows for every projection, and writes each row once
with the columns every registered projection owns. Rows are plain dicts written with one
executemany per table and batch: the ORM's unit of work would issue a statement per investor and
cap the processor far below its target.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from growth import signals
from growth.crypto import keyring
from growth.db import insert_many, table_of, update_many
from growth.investors.models import MILESTONES, FundsMovement, Investment, Investor
from growth.investors.rules import (
    SEARCH_INDEX_COLUMNS,
    PhoneFormatError,
    newer_value_wins,
    normalize_phone,
    nth_earliest,
    referral_code_for,
    search_index,
)
from growth.money import parse_rate, parse_yuan
from growth.projections import Batch, Emission, LoggedEvent, Projection
from growth.timeutil import SHANGHAI

PROFILE_FIELDS = ("phone", "name", "email", "wechat_openid")
MILESTONE_EVENTS = {
    "user.registered": "registered",
    "user.kyc_verified": "kyc_verified",
    "user.card_bound": "card_bound",
    "funds.deposited": "first_deposit",
}
_MOVEMENT_ID = {"funds.deposited": "deposit_id", "funds.withdrawn": "withdrawal_id"}

_INVESTORS = table_of(Investor)
_INVESTMENTS = table_of(Investment)
_MOVEMENTS = table_of(FundsMovement)
_INVESTMENT_COLUMNS = tuple(c.key for c in _INVESTMENTS.columns if c.key not in ("id", "investment_id"))
_KEEPS = ("platform_user_id", "referral_code", "erased_at")  # who the investor is, and an erasure: kept by a replay
_TOTALS = ("investment_count", "investment_total_fen", "holdings_fen", "deposit_total_fen", "withdrawal_total_fen")


def _new_investor_values(user_id: str) -> dict[str, Any]:
    """Return the stored values of an investor we have only just heard of (the rest are NULL)."""
    return {"platform_user_id": user_id, "referral_code": referral_code_for(user_id), **dict.fromkeys(_TOTALS, 0)}


def _new_investment_row(investment_id: str, investor_id: int) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(_INVESTMENT_COLUMNS)
    row.update(id=None, investment_id=investment_id, investor_id=investor_id, status="active", reward_ids=[],
               redeemed_fen=0, matured_principal_fen=0, interest_fen=0)
    return row


class InvestorsProjection(Projection):
    """Profile (latest wins), milestones (earliest), investments, fund movements and running totals."""

    name = "investors"
    tables = (_INVESTMENTS, _MOVEMENTS)
    keeps = {_INVESTORS: _KEEPS}
    columns = {_INVESTORS: (
        *(f for name in PROFILE_FIELDS for f in (name, f"{name}_at")),
        *SEARCH_INDEX_COLUMNS,
        *(f"{m}_at" for m in MILESTONES),
        *_TOTALS,
        "last_activity_at",
    )}

    def __init__(self, batch: Batch) -> None:
        super().__init__(batch)
        self.investors = batch.investors  # by platform user id, shared with every projection
        self.investments: dict[str, dict[str, Any]] = {}  # by platform investment id
        self.movements: list[dict[str, Any]] = []  # new rows, inserted by write
        self._movement_rows: dict[tuple[str, str], dict[str, Any]] = {}  # by (kind, external id)
        self._changed_movements: dict[tuple[str, str], dict[str, Any]] = {}
        self._before: dict[str, tuple[Any, ...]] = {}
        self._investment_before: dict[str, tuple[Any, Any]] = {}
        self._touched_investments: set[str] = set()

    # --- loading ------------------------------------------------------------------------------
    def load(self, events: Sequence[LoggedEvent]) -> None:
        batch, s = self.batch, self.batch.session
        user_ids = sorted({e.user_id for e in events})
        for clause in batch.where_in(_INVESTORS.c.platform_user_id, user_ids):
            for found in s.execute(select(_INVESTORS).where(clause)).mappings():
                self.investors[found["platform_user_id"]] = dict(found)
        new = {uid: _new_investor_values(uid) for uid in user_ids if uid not in self.investors}
        if new:
            # Only the columns that have a value are sent; ids come back matched by platform user id.
            inserted = insert_many(s.connection(), _INVESTORS, list(new.values()),
                                   returning=("id", "platform_user_id"))
            blank = dict.fromkeys(c.key for c in _INVESTORS.columns)
            for row_id, uid in inserted:
                self.investors[uid] = {**blank, **new[uid], "id": row_id}
                batch.new_investors.append(self.investors[uid])
        for uid, row in self.investors.items():
            self._before[uid] = tuple(row[f"{m}_at"] for m in MILESTONES)

        movement_ids = sorted({e.body["data"][_MOVEMENT_ID[e.type]] for e in events if e.type in _MOVEMENT_ID})
        for clause in batch.where_in(_MOVEMENTS.c.external_id, movement_ids):
            for movement in s.execute(select(_MOVEMENTS).where(clause)).mappings():
                self._movement_rows[(movement["kind"], movement["external_id"])] = dict(movement)

        # Every investment of every investor in the batch: totals and milestones are recomputed from them.
        investor_ids = sorted(row["id"] for row in self.investors.values())
        investment_ids = sorted({e.body["data"]["investment_id"] for e in events if e.type.startswith("investment.")})
        for clause in batch.where_in(_INVESTMENTS.c.investor_id, investor_ids):
            self._take_investments(s.execute(select(_INVESTMENTS).where(clause)))
        missing = [i for i in investment_ids if i not in self.investments]
        for clause in batch.where_in(_INVESTMENTS.c.investment_id, missing):
            self._take_investments(s.execute(select(_INVESTMENTS).where(clause)))

    def _take_investments(self, result: Any) -> None:
        for row in result.mappings():
            self.investments[row["investment_id"]] = dict(row)
            self._investment_before[row["investment_id"]] = (row["started_at"], row["status"])

    # --- applying -----------------------------------------------------------------------------
    def apply(self, event: LoggedEvent) -> None:
        inv = self.investors[event.user_id]
        at = event.occurred_at
        user = event.body.get("user") or {}
        for name in PROFILE_FIELDS:
            value = user.get(name)
            if value is None:
                continue
            if name == "phone":
                try:
                    value = normalize_phone(value)
                except PhoneFormatError:
                    continue
            stamp = f"{name}_at"
            if newer_value_wins(inv[name], inv[stamp], value, at):
                inv[name] = value
                inv[stamp] = at
                inv.update(search_index(keyring(), name, value))
        if inv["last_activity_at"] is None or at > inv["last_activity_at"]:
            inv["last_activity_at"] = at

        kind = event.type
        milestone = MILESTONE_EVENTS.get(kind)
        if milestone:
            key = f"{milestone}_at"
            if inv[key] is None or at < inv[key]:
                inv[key] = at
        if kind == "funds.deposited":
            data = event.body["data"]
            self._movement(inv, "deposit", data["deposit_id"], data["amount"], at)
        elif kind == "funds.withdrawn":
            data = event.body["data"]
            self._movement(inv, "withdrawal", data["withdrawal_id"], data["amount"], at)
        elif kind.startswith("investment."):
            self._investment(inv, kind, event.body["data"], at)

    def _movement(self, inv: dict[str, Any], kind: str, external_id: str, amount: str, at: datetime) -> None:
        """Keep one row per deposit/withdrawal id, so totals never double count; the earliest delivery wins."""
        key = (kind, external_id)
        fen = parse_yuan(amount)
        total = "deposit_total_fen" if kind == "deposit" else "withdrawal_total_fen"
        row = self._movement_rows.get(key)
        if row is None:
            row = {"kind": kind, "external_id": external_id, "investor_id": inv["id"], "amount_fen": fen,
                   "occurred_at": at}
            self._movement_rows[key] = row
            self.movements.append(row)
            inv[total] += fen
            return
        if (at, fen) >= (row["occurred_at"], row["amount_fen"]):
            return
        # An earlier delivery arrived late: it replaces the one we kept, so the row does not depend on arrival order.
        self._investor_by_id(row["investor_id"])[total] -= row["amount_fen"]
        inv[total] += fen
        row.update(investor_id=inv["id"], amount_fen=fen, occurred_at=at)
        if row.get("id") is not None:
            self._changed_movements[key] = row

    def _investment(self, inv: dict[str, Any], kind: str, data: dict[str, Any], at: datetime) -> None:
        iid = data["investment_id"]
        row = self.investments.get(iid)
        if row is None:
            row = self.investments[iid] = _new_investment_row(iid, inv["id"])
            self._investment_before[iid] = (None, None)
        self._touched_investments.add(iid)
        if kind == "investment.created":
            if row["started_at"] is None or at < row["started_at"]:
                product = data["product"]
                row.update(
                    investor_id=inv["id"], product_id=product["id"], product_name=product["name"],
                    term_days=product["term_days"], annual_rate_bp=parse_rate(product["annual_rate"]),
                    amount_fen=parse_yuan(data["amount"]), started_at=at,
                    maturity_date=(at.astimezone(SHANGHAI) + timedelta(days=product["term_days"])).date(),
                    reward_ids=list(data.get("reward_ids") or []),
                )
        elif kind == "investment.redeemed":
            if row["redeemed_at"] is None or at < row["redeemed_at"]:
                row["redeemed_at"] = at
                row["redeemed_fen"] = parse_yuan(data["amount"])
        elif kind == "investment.matured" and (row["matured_at"] is None or at < row["matured_at"]):
            row["matured_at"] = at
            row["matured_principal_fen"] = parse_yuan(data["amount"])
            interest = data.get("interest") or "0"
            row["interest_fen"] = 0 if interest.strip("0.") == "" else parse_yuan(interest)
        row["status"] = "matured" if row["matured_at"] else "redeemed" if row["redeemed_at"] else "active"

    def _investor_by_id(self, investor_id: int) -> dict[str, Any]:
        """Return a loaded investor row by database id, loading it when no event of the batch named it."""
        for inv in self.investors.values():
            if inv["id"] == investor_id:
                return inv
        query = select(_INVESTORS).where(_INVESTORS.c.id == investor_id)
        inv = dict(self.batch.session.execute(query).mappings().one())
        self.investors[inv["platform_user_id"]] = inv
        self._before[inv["platform_user_id"]] = tuple(inv[f"{m}_at"] for m in MILESTONES)
        return inv

    # --- derived state ------------------------------------------------------------------------
    def derive(self) -> None:
        """Milestones and totals from investments, recomputed per touched investor (order-free)."""
        touched = {self.investments[i]["investor_id"] for i in self._touched_investments}
        if not touched:
            return
        by_investor: dict[int, list[dict[str, Any]]] = {}
        for row in self.investments.values():
            if row["investor_id"] in touched:
                by_investor.setdefault(row["investor_id"], []).append(row)
        by_id = {inv["id"]: inv for inv in self.investors.values()}
        for investor_id, rows in by_investor.items():
            # An investment moved to another investor by an odd event loads that one too.
            inv = by_id.get(investor_id) or self._investor_by_id(investor_id)
            created = [r for r in rows if r["started_at"] is not None]
            starts = [r["started_at"] for r in created]
            inv["first_investment_at"] = nth_earliest(starts, 1)
            inv["repeat_investment_at"] = nth_earliest(starts, 2)
            inv["investment_count"] = len(created)
            inv["investment_total_fen"] = sum(r["amount_fen"] or 0 for r in created)
            inv["holdings_fen"] = sum(
                max((r["amount_fen"] or 0) - r["redeemed_fen"] - r["matured_principal_fen"], 0)
                for r in created if r["status"] == "active"
            )

    # --- writing ------------------------------------------------------------------------------
    def write(self) -> None:
        conn = self.batch.connection
        if self.investors:
            # The shared row, once, with the columns of every registered projection.
            columns = self.batch.owned_columns(_INVESTORS)
            update_many(conn, _INVESTORS, [{"id": r["id"], **{c: r[c] for c in columns}}
                                           for r in self.investors.values()])
        touched = [self.investments[i] for i in sorted(self._touched_investments)]
        new = [r for r in touched if r["id"] is None]
        old = [r for r in touched if r["id"] is not None]
        if old:
            update_many(conn, _INVESTMENTS, [{"id": r["id"], **{c: r[c] for c in _INVESTMENT_COLUMNS}}
                                             for r in old])
        if new:
            rows = [{"investment_id": r["investment_id"], **{c: r[c] for c in _INVESTMENT_COLUMNS}} for r in new]
            by_investment_id = {r["investment_id"]: r for r in new}
            inserted = insert_many(conn, _INVESTMENTS, rows, returning=("id", "investment_id"))
            for row_id, investment_id in inserted:
                by_investment_id[investment_id]["id"] = row_id
        if self.movements:
            insert_many(conn, _MOVEMENTS, self.movements)
        if self._changed_movements:
            update_many(conn, _MOVEMENTS, [
                {"id": r["id"], "investor_id": r["investor_id"], "amount_fen": r["amount_fen"],
                 "occurred_at": r["occurred_at"]} for r in self._changed_movements.values()])

    # --- signals ------------------------------------------------------------------------------
    def emissions(self) -> Iterable[Emission]:
        out: list[Emission] = []
        for uid, inv in self.investors.items():
            before = self._before.get(uid)
            if before is None:
                continue
            for name, was in zip(MILESTONES, before, strict=True):
                if was is None and inv[f"{name}_at"] is not None:
                    if name == "registered":
                        out.append(Emission(signals.investor_registered, {"investor_id": inv["id"]}))
                    out.append(Emission(signals.milestone_reached, {"investor_id": inv["id"], "milestone": name}))
        for iid in sorted(self._touched_investments):
            row = self.investments[iid]
            started_before, status_before = self._investment_before.get(iid, (None, None))
            ids = {"investor_id": row["investor_id"], "investment_id": row["id"]}
            if started_before is None and row["started_at"] is not None:
                out.append(Emission(signals.investment_created, ids))
            if status_before != row["status"] and row["status"] == "redeemed":
                out.append(Emission(signals.investment_redeemed, ids))
            if status_before != row["status"] and row["status"] == "matured":
                out.append(Emission(signals.investment_matured, ids))
        return out
