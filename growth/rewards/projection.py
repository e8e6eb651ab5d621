"""The rewards projection: redemptions and invalid uses (`investment.created` with `reward_ids`) and cashback
clawbacks (`investment.redeemed` inside the hold), in the processor's batch transaction.

Order-free by construction: for every reward an investment of the batch names (now or before), ALL its
uses on every investment are decided again together — the earliest valid use (tie: investment id)
redeems it, the others are invalid uses with a reason — and the projection's entries of those rewards
are made to match (an entry that no longer holds is replaced). A cashback whose investment the batch
touched is clawed back when its investment was redeemed inside the hold, counted from the
investment's occurred_at; if a job had paid it already, a debt entry books what is owed.

It reads the investment rows in `write`, after the investors projection (registered before it) wrote
this batch's changes to them in the same transaction.

Replay: grants, revokes, expiries and payments are not in the log, so the reset cannot delete the
rewards nor set their columns to defaults. It deletes only the entries this projection wrote
(`source = 'projection'`) and every use, then `after_reset` derives each reward's status and cost
again from the entries that remain; the replay then adds the projection's entries back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, select
from sqlalchemy.orm import Session

from growth.db import insert_many, table_of
from growth.investors.models import Investment
from growth.projections import Batch, LoggedEvent, Projection
from growth.rewards import rules
from growth.rewards.models import PROJECTION, Reward, RewardEntry, RewardUse, parse_public_id, public_id
from growth.rewards.services import refresh, terms_of

_REWARDS = table_of(Reward)
_ENTRIES = table_of(RewardEntry)
_USES = table_of(RewardUse)
_INVESTMENTS = table_of(Investment)
_OWN_KINDS = ("redeemed", "clawed_back", "debt")


class RewardsProjection(Projection):
    """Redeems rewards named on investments (or records the invalid uses) and claws cashback back."""

    name = "rewards"
    after = ("investors",)  # reads the investment rows it writes
    tables = (_ENTRIES, _USES)
    handles = frozenset({"investment.created", "investment.redeemed"})

    @classmethod
    def derived_rows(cls, table: Table) -> ColumnElement[bool] | None:
        return _ENTRIES.c.source == PROJECTION if table is _ENTRIES else None

    @classmethod
    def after_reset(cls, session: Session) -> None:
        refresh(session=session)

    def __init__(self, batch: Batch) -> None:
        super().__init__(batch)
        self.investment_ids: set[str] = set()

    def apply(self, event: LoggedEvent) -> None:
        self.investment_ids.add(event.body["data"]["investment_id"])

    def write(self) -> None:
        if self.investment_ids:
            reconcile(sorted(self.investment_ids), batch=self.batch)


def _select_in(batch: Batch, query: Any, column: Any, values: Sequence[Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for clause in batch.where_in(column, list(values)):
        rows += [dict(m) for m in batch.session.execute(query.where(clause)).mappings()]
    return rows


def _refs(investment: dict[str, Any]) -> list[str]:
    """Return the distinct reward ids an investment names, in order (an investment not yet created names none)."""
    if investment["started_at"] is None:
        return []
    return list(dict.fromkeys(str(r) for r in investment["reward_ids"] or []))


def reconcile(investment_ids: Sequence[str], *, batch: Batch) -> None:
    """Decide again every use and clawback the given investments bear on, and write what changed."""
    s = batch.session
    inv_cols = select(_INVESTMENTS.c.investment_id, _INVESTMENTS.c.investor_id, _INVESTMENTS.c.amount_fen,
                      _INVESTMENTS.c.term_days, _INVESTMENTS.c.started_at, _INVESTMENTS.c.redeemed_at,
                      _INVESTMENTS.c.reward_ids)
    investments = {r["investment_id"]: r for r in _select_in(batch, inv_cols, _INVESTMENTS.c.investment_id,
                                                             investment_ids)}
    old_uses = _select_in(batch, select(_USES.c.reward_id), _USES.c.investment_id, investment_ids)
    named: set[int] = {u["reward_id"] for u in old_uses if u["reward_id"] is not None}
    for inv in investments.values():
        named.update(i for i in map(parse_public_id, _refs(inv)) if i is not None)

    rewards = {r["id"]: r for r in _select_in(batch, select(_REWARDS), _REWARDS.c.id, sorted(named))}
    cashback_query = select(_REWARDS).where(_REWARDS.c.kind == "cashback")
    cashbacks = {r["id"]: r for r in _select_in(batch, cashback_query, _REWARDS.c.investment_id, investment_ids)}
    touched = sorted(set(rewards) | set(cashbacks))
    entries = _select_in(batch, select(_ENTRIES), _ENTRIES.c.reward_id, touched)
    revoked_at: dict[int, datetime] = {}
    paid: set[int] = set()
    for e in entries:
        if e["kind"] == "revoked":
            revoked_at[e["reward_id"]] = min(e["at"], revoked_at.get(e["reward_id"], e["at"]))
        elif e["kind"] == "paid":
            paid.add(e["reward_id"])

    # Every investment that names one of these rewards: their uses are decided together. By the id as named,
    # so a use recorded before the reward existed (not_found then) is decided again too.
    refs = [public_id(rid) for rid in sorted(rewards)]
    others = {u["investment_id"] for u in _select_in(batch, select(_USES.c.investment_id), _USES.c.reward_ref,
                                                     refs)} - set(investments)
    investments.update({r["investment_id"]: r for r in _select_in(batch, inv_cols, _INVESTMENTS.c.investment_id,
                                                                  sorted(others))})
    claims: dict[int, list[rules.Claim]] = {rid: [] for rid in rewards}
    uses: list[dict[str, Any]] = []
    for iid in sorted(investments):
        inv = investments[iid]
        for ref in _refs(inv):
            rid = parse_public_id(ref)
            claim = rules.Claim(iid, inv["investor_id"], inv["started_at"], inv["amount_fen"] or 0,
                                inv["term_days"] or 0)
            if rid is not None and rid in rewards:
                claims[rid].append(claim)
            elif iid not in others:  # a reward we never granted: only the batch's investments are re-read
                uses.append(_use(claim, ref, None, "not_found"))

    new_entries: list[dict[str, Any]] = []
    for rid, reward in rewards.items():
        view = rules.RewardView(rid, reward["investor_id"], reward["kind"], reward["granted_at"],
                                reward["expires_at"], revoked_at.get(rid), reward["min_investment_fen"],
                                reward["max_investment_fen"], reward["min_term_days"])
        winner, reasons = rules.decide_claims(view, claims[rid])
        uses += [_use(c, public_id(rid), rid, reasons[c.investment_id]) for c in claims[rid]]
        if winner is not None:
            cost = rules.redeemed_cost(reward["kind"], terms_of(reward), winner)
            new_entries.append(_entry(rid, "redeemed", winner.occurred_at, cost, winner.investment_id))
    for rid, reward in cashbacks.items():
        inv = investments.get(reward["investment_id"]) or {}
        hold_from = rules.hold_start(reward["granted_at"], inv.get("started_at"))
        if rid in revoked_at or not rules.clawed_back(hold_days=reward["hold_days"] or 0, hold_from=hold_from,
                                                      redeemed_at=inv.get("redeemed_at")):
            continue
        cost = rules.known_cost("cashback", terms_of(reward)) or 0
        new_entries.append(_entry(rid, "clawed_back", inv["redeemed_at"], cost, reward["investment_id"]))
        if rid in paid:  # paid before the early exit was known: the investor owes it back
            new_entries.append(_entry(rid, "debt", inv["redeemed_at"], cost, reward["investment_id"]))

    conn = batch.connection
    # Uses: replace those of the batch's investments and of every reward decided again.
    for clause in batch.where_in(_USES.c.investment_id, list(investment_ids)):
        conn.execute(delete(_USES).where(clause))
    for clause in batch.where_in(_USES.c.reward_ref, refs):
        conn.execute(delete(_USES).where(clause))
    insert_many(conn, _USES, uses)
    # Entries: keep the projection's entries that still hold, replace the others.
    wanted = {e["key"]: e for e in new_entries}
    stale = [e["id"] for e in entries if e["source"] == PROJECTION and (
        e["key"] not in wanted or _differs(e, wanted[e["key"]]))]
    kept = {e["key"] for e in entries if e["source"] == PROJECTION and e["id"] not in stale}
    for clause in batch.where_in(_ENTRIES.c.id, stale):
        conn.execute(delete(_ENTRIES).where(clause))
    insert_many(conn, _ENTRIES, [e for k, e in wanted.items() if k not in kept])
    refresh(session=s, reward_ids=touched)


def _differs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return any(old[k] != new[k] for k in ("kind", "at", "amount_fen", "investment_id"))


def _use(claim: rules.Claim, ref: str, reward_id: int | None, reason: str | None) -> dict[str, Any]:
    return {"investment_id": claim.investment_id, "reward_ref": ref[:200], "reward_id": reward_id,
            "investor_id": claim.investor_id, "occurred_at": claim.occurred_at, "valid": reason is None,
            "reason": reason}


def _entry(reward_id: int, kind: str, at: datetime, amount: int, investment_id: str | None) -> dict[str, Any]:
    # recorded_at = at: a derived entry carries no processing time, so a replay rebuilds it identically.
    return {"key": f"{reward_id}:{kind}", "reward_id": reward_id, "kind": kind, "source": PROJECTION, "at": at,
            "recorded_at": at, "actor": f"investment:{investment_id}"[:254], "amount_fen": amount,
            "investment_id": investment_id, "note": None}

