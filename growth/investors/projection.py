"""Project platform events onto investors, investments and fund movements, one batch at a time.

Every rule is order-free — milestones are the earliest occurrence, profile fields the latest,
totals are recomputed from the investments — so replaying the log in any order gives one state.

Rows are handled as plain dicts and written with one executemany per table and batch: the ORM's
unit of work would issue a statement per investor and cap the processor far below its target.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import any_, bindparam, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from growth import signals
from growth.acquisition.models import AcquisitionChannel, Click
from growth.db import insert_many, update_many
from growth.investors.models import MILESTONES, FundsMovement, Investment, Investor
from growth.investors.rules import (
    PhoneFormatError,
    attribution_kind,
    newer_value_wins,
    normalize_phone,
    nth_earliest,
    referral_code_for,
)
from growth.money import parse_rate, parse_yuan
from growth.timeutil import SHANGHAI

CHUNK = 500  # keeps IN (...) lists well under every database's parameter limit
REFERRAL_CHANNEL = ("referral", "邀请好友", "referral")
ORGANIC_CHANNEL = ("organic", "自然流量", "organic")
PROFILE_FIELDS = ("phone", "name", "email", "wechat_openid")
MILESTONE_EVENTS = {
    "user.registered": "registered",
    "user.kyc_verified": "kyc_verified",
    "user.card_bound": "card_bound",
    "funds.deposited": "first_deposit",
}
_MOVEMENT_ID = {"funds.deposited": "deposit_id", "funds.withdrawn": "withdrawal_id"}

_INVESTORS = Investor.__table__
_INVESTMENTS = Investment.__table__
_MOVEMENTS = FundsMovement.__table__
_CHANNELS = AcquisitionChannel.__table__
_INVESTOR_COLUMNS = tuple(c.key for c in _INVESTORS.columns if c.key not in ("id", "platform_user_id", "referral_code"))
_INVESTMENT_COLUMNS = tuple(c.key for c in _INVESTMENTS.columns if c.key not in ("id", "investment_id"))


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One event read back from the log."""

    seq: int
    event_id: str
    type: str
    occurred_at: datetime
    user_id: str
    body: dict[str, Any]


@dataclass
class Emission:
    """A signal to send once the batch has committed."""

    signal: Any
    kwargs: dict[str, Any]


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), CHUNK):
        yield values[i:i + CHUNK]


def _where_in(session: Session, column: Any, values: Sequence[Any]) -> Iterable[Any]:
    """Yield WHERE clauses that together match rows whose column is one of the values.

    PostgreSQL gets one `= ANY(array)` with a single parameter: long IN lists are re-parsed on
    every call and were the processor's main cost there. SQLite gets IN lists in chunks.
    """
    if not values:
        return
    if session.get_bind().dialect.name == "postgresql":
        yield column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
        return
    for part in _chunks(values):
        yield column.in_(part)


_REGISTRATION_FIELDS = (("click_id", "click_id"), ("channel_code", "channel_code_given"),
                        ("referral_code", "referral_code_used"), ("device_id", "device_id"), ("ip", "registration_ip"))


def _registration_key(values: dict[str, Any], *, stored: bool = False) -> tuple[str, ...]:
    """Return a registration's data as a sortable key (from event data, or as stored on the investor row)."""
    return tuple(str(values.get(column if stored else name) or "") for name, column in _REGISTRATION_FIELDS)


def _new_investor_values(user_id: str) -> dict[str, Any]:
    """Return the stored values of an investor we have only just heard of (the rest are NULL)."""
    return {"platform_user_id": user_id, "referral_code": referral_code_for(user_id), "consent": {},
            "investment_count": 0, "investment_total_fen": 0, "holdings_fen": 0, "deposit_total_fen": 0,
            "withdrawal_total_fen": 0}


def _new_investment_row(investment_id: str, investor_id: int) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(_INVESTMENT_COLUMNS)
    row.update(id=None, investment_id=investment_id, investor_id=investor_id, status="active", reward_ids=[],
               redeemed_fen=0, matured_principal_fen=0, interest_fen=0)
    return row


@dataclass
class Projector:
    """Applies one batch of events; call `run`, then read `emissions`."""

    session: Session
    emissions: list[Emission] = field(default_factory=list)
    investors: dict[str, dict[str, Any]] = field(default_factory=dict)  # by platform user id
    investments: dict[str, dict[str, Any]] = field(default_factory=dict)  # by platform investment id
    movements: list[dict[str, Any]] = field(default_factory=list)  # new rows, inserted by _write
    _movement_rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # by (kind, external id)
    _changed_movements: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _before: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    _investment_before: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    _touched_investments: set[str] = field(default_factory=set)
    _reattribute: set[str] = field(default_factory=set)
    _consent_changes: list[tuple[str, str, bool]] = field(default_factory=list)

    def run(self, events: Sequence[LoggedEvent]) -> None:
        """Project the events, write the rows, and collect the signals to send after commit."""
        self._load(events)
        for event in events:
            self._apply(event)
        self._recompute_investment_totals()
        self._attribute()
        self._write()
        self._collect_emissions()

    # --- loading ------------------------------------------------------------------------------
    def _load(self, events: Sequence[LoggedEvent]) -> None:
        s = self.session
        user_ids = sorted({e.user_id for e in events})
        for clause in _where_in(s, _INVESTORS.c.platform_user_id, user_ids):
            for row in s.execute(select(_INVESTORS).where(clause)).mappings():
                self.investors[row["platform_user_id"]] = dict(row)
        new = {uid: _new_investor_values(uid) for uid in user_ids if uid not in self.investors}
        if new:
            # Only the columns that have a value are sent; ids come back matched by platform user id.
            inserted = insert_many(s.connection(), _INVESTORS, list(new.values()),
                                   returning=("id", "platform_user_id"))
            for row_id, uid in inserted:
                self.investors[uid] = {**dict.fromkeys(_INVESTOR_COLUMNS), **new[uid], "id": row_id}
            self._find_waiting_referees([self.investors[uid] for uid in new])
        for uid, row in self.investors.items():
            self._before[uid] = tuple(row[f"{m}_at"] for m in MILESTONES)

        movement_ids = sorted({e.body["data"][_MOVEMENT_ID[e.type]] for e in events if e.type in _MOVEMENT_ID})
        for clause in _where_in(s, _MOVEMENTS.c.external_id, movement_ids):
            for row in s.execute(select(_MOVEMENTS).where(clause)).mappings():
                self._movement_rows[(row["kind"], row["external_id"])] = dict(row)

        # Every investment of every investor in the batch: totals and milestones are recomputed from them.
        investor_ids = sorted(row["id"] for row in self.investors.values())
        investment_ids = sorted({e.body["data"]["investment_id"] for e in events if e.type.startswith("investment.")})
        for clause in _where_in(s, _INVESTMENTS.c.investor_id, investor_ids):
            self._take_investments(s.execute(select(_INVESTMENTS).where(clause)))
        missing = [i for i in investment_ids if i not in self.investments]
        for clause in _where_in(s, _INVESTMENTS.c.investment_id, missing):
            self._take_investments(s.execute(select(_INVESTMENTS).where(clause)))

    def _take_investments(self, result: Any) -> None:
        for row in result.mappings():
            self.investments[row["investment_id"]] = dict(row)
            self._investment_before[row["investment_id"]] = (row["started_at"], row["status"])

    def _find_waiting_referees(self, new: list[dict[str, Any]]) -> None:
        """Registrations that named a referrer we had not seen yet get attributed again now."""
        codes = [r["referral_code"] for r in new] + [r["platform_user_id"] for r in new]
        for clause in _where_in(self.session, _INVESTORS.c.referral_code_used, codes):
            # Filtered on referrer_id here, not in SQL: the planner took "referrer_id IS NULL" (most rows)
            # for selective on a freshly grown table and scanned them all.
            waiting = self.session.execute(select(_INVESTORS).where(clause)).mappings()
            for row in waiting:
                if row["referrer_id"] is not None:
                    continue
                self.investors.setdefault(row["platform_user_id"], dict(row))
                self._reattribute.add(row["platform_user_id"])

    # --- applying -----------------------------------------------------------------------------
    def _apply(self, event: LoggedEvent) -> None:
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
        if inv["last_activity_at"] is None or at > inv["last_activity_at"]:
            inv["last_activity_at"] = at

        data = event.body.get("data") or {}
        kind = event.type
        milestone = MILESTONE_EVENTS.get(kind)
        if milestone:
            key = f"{milestone}_at"
            current = inv[key]
            # On a tie the registration data decides, not the arrival order (order-free attribution).
            if kind == "user.registered" and (current is None or at < current or (
                    at == current and _registration_key(data) < _registration_key(inv, stored=True))):
                self._take_registration(inv, data)
            if current is None or at < current:
                inv[key] = at
        if kind == "funds.deposited":
            self._movement(inv, "deposit", data["deposit_id"], data["amount"], at)
        elif kind == "funds.withdrawn":
            self._movement(inv, "withdrawal", data["withdrawal_id"], data["amount"], at)
        elif kind.startswith("investment."):
            self._investment(inv, kind, data, at)
        elif kind == "user.consent_changed":
            self._consent(inv, data["channel"], bool(data["granted"]), at)

    def _take_registration(self, inv: dict[str, Any], data: dict[str, Any]) -> None:
        """The earliest registration decides attribution."""
        inv["click_id"] = data.get("click_id")
        inv["channel_code_given"] = data.get("channel_code")
        inv["referral_code_used"] = data.get("referral_code")
        inv["device_id"] = data.get("device_id")
        inv["registration_ip"] = data.get("ip")
        self._reattribute.add(inv["platform_user_id"])

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

    def _consent(self, inv: dict[str, Any], channel: str, granted: bool, at: datetime) -> None:
        consent = dict(inv["consent"] or {})
        current = consent.get(channel)
        stamp = at.isoformat()
        # Latest statement wins; on a tie the opt-out wins (the safe reading, and order-free).
        if current is None or stamp > current["at"] or (stamp == current["at"] and not granted):
            consent[channel] = {"granted": granted, "at": stamp}
            inv["consent"] = consent
            self._consent_changes.append((inv["platform_user_id"], channel, granted))

    def _investor_by_id(self, investor_id: int) -> dict[str, Any]:
        """Return a loaded investor row by database id, loading it when no event of the batch named it."""
        for inv in self.investors.values():
            if inv["id"] == investor_id:
                return inv
        inv = dict(self.session.execute(select(_INVESTORS).where(_INVESTORS.c.id == investor_id)).mappings().one())
        self.investors[inv["platform_user_id"]] = inv
        self._before[inv["platform_user_id"]] = tuple(inv[f"{m}_at"] for m in MILESTONES)
        return inv

    # --- derived state ------------------------------------------------------------------------
    def _recompute_investment_totals(self) -> None:
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
            inv = by_id.get(investor_id)
            if inv is None:  # an investment moved to another investor by an odd event: load that one too
                query = select(_INVESTORS).where(_INVESTORS.c.id == investor_id)
                inv = dict(self.session.execute(query).mappings().one())
                self.investors[inv["platform_user_id"]] = inv
                self._before[inv["platform_user_id"]] = tuple(inv[f"{m}_at"] for m in MILESTONES)
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

    def _attribute(self) -> None:
        """Decide each (re)registered investor's channel and referrer, in the spec's order."""
        if not self._reattribute:
            return
        s = self.session
        invs = [self.investors[uid] for uid in sorted(self._reattribute)]
        click_ids = sorted({i["click_id"] for i in invs if i["click_id"]})
        click_channel: dict[str, int] = {}
        for clause in _where_in(s, Click.__table__.c.click_id, click_ids):
            query = select(Click.click_id, Click.channel_id).where(clause)
            click_channel.update((cid, ch) for cid, ch in s.execute(query))
        codes = sorted({i["referral_code_used"] for i in invs if i["referral_code_used"]})
        referrers: dict[str, int] = {}
        by_code = list(_where_in(s, _INVESTORS.c.referral_code, codes))
        by_uid = list(_where_in(s, _INVESTORS.c.platform_user_id, codes))
        for code_clause, uid_clause in zip(by_code, by_uid, strict=True):
            for rid, rcode, ruid in s.execute(
                select(_INVESTORS.c.id, _INVESTORS.c.referral_code, _INVESTORS.c.platform_user_id).where(
                    or_(code_clause, uid_clause))
            ):
                referrers[rcode] = rid
                referrers[ruid] = rid
        channels = dict(s.execute(select(_CHANNELS.c.code, _CHANNELS.c.id)).all())
        for inv in invs:
            referrer_id = referrers.get(inv["referral_code_used"] or "")
            if referrer_id == inv["id"]:
                referrer_id = None  # nobody refers themselves
            inv["referrer_id"] = referrer_id
            kind = attribution_kind(click_channel=inv["click_id"] in click_channel,
                                    channel_code=inv["channel_code_given"], referrer_known=referrer_id is not None)
            if kind == "click":
                inv["channel_id"] = click_channel[inv["click_id"]]
            elif kind == "code":
                code = inv["channel_code_given"][:64]
                inv["channel_id"] = self._channel(channels, code, code, "other", auto=True)
            elif kind == "referral":
                inv["channel_id"] = self._channel(channels, *REFERRAL_CHANNEL, auto=False)
            else:
                inv["channel_id"] = self._channel(channels, *ORGANIC_CHANNEL, auto=False)

    def _channel(self, channels: dict[str, int], code: str, name: str, kind: str, *, auto: bool) -> int:
        """Return the id of a code's channel, creating it (named after the code) so nothing is lost."""
        channel_id = channels.get(code)
        if channel_id is None:
            channel = AcquisitionChannel(code=code, name=name, kind=kind, auto_created=auto, owner="", notes="",
                                         active=True)
            self.session.add(channel)
            self.session.flush()
            channel_id = channels[code] = channel.id
        return channel_id

    # --- writing ------------------------------------------------------------------------------
    def _write(self) -> None:
        s = self.session
        conn = s.connection()
        if self.investors:
            update_many(conn, _INVESTORS, [{"id": r["id"], **{c: r[c] for c in _INVESTOR_COLUMNS}}
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
    def _collect_emissions(self) -> None:
        out = self.emissions
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
        for uid, channel, granted in self._consent_changes:
            out.append(Emission(signals.consent_changed, {"investor_id": self.investors[uid]["id"],
                                                          "channel": channel, "granted": granted}))
