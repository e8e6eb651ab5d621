"""The incentive ledger's services: THE grant, revoke, budgets, re-deriving a reward from its entries, queries.

`grant_packs` is the one way a reward comes into being (campaigns, the referral program, staff; `grant`
and `grant_pack` are its one-investor forms). In the caller's transaction it checks the idempotency
keys, consumes the budget with conditional updates (`used = used + n WHERE used + n <= max`:
concurrent grants can never overspend, on PostgreSQL or SQLite), writes the rewards and their
`granted` entries, and queues the platform webhook `reward.granted` in the outbox, in bulk statements
for any number of investors. A broken limit or a lost key race leaves nothing behind (a savepoint).

A reward's status and cost are derived from its entries (`refresh`), whoever wrote them.
Cash is paid at grant (the webhook is the platform's instruction to credit it); experience funds run
from the grant and are paid by a job at the end of their days; cashback is paid by a job after its hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, Select, String, cast, func, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from channels.adapters.port import Channel, MessageClass
from channels.outbox import NewMessage, enqueue, enqueue_from, enqueue_many, json_template
from growth.db import among, among_ids, insert_many, table_of, update_many
from growth.errors import Conflict, DomainError, Forbidden, NotFound
from growth.investors.models import Investor
from growth.money import bp_to_api, fen_to_api
from growth.rewards import rules
from growth.rewards.models import (
    GrantRequest,
    Reward,
    RewardBudget,
    RewardBudgetUse,
    RewardEntry,
    RewardUse,
    public_id,
)
from growth.rewards.rules import BudgetExhausted, InvalidTerms, Terms
from growth.timeutil import as_utc, local_date, local_day_bounds

_BUDGETS = table_of(RewardBudget)
_BUDGET_USES = table_of(RewardBudgetUse)
_REWARDS = table_of(Reward)
_ENTRIES = table_of(RewardEntry)
SENDER = "rewards"
MANUAL_BUDGET = ("manual", "manual")


# --- budgets -------------------------------------------------------------------------------------------


def budget_for(owner_type: str, owner_key: str, *, session: Session, now: datetime, name: str | None = None,
               max_grants: int | None = None, max_amount_fen: int | None = None,
               per_investor: int | None = None) -> RewardBudget:
    """Return an owner's budget, creating it with these limits on first use (limits of an existing one are kept)."""
    query = select(RewardBudget).where(RewardBudget.owner_type == owner_type, RewardBudget.owner_key == owner_key)
    found = session.scalar(query)
    if found is not None:
        return found
    budget = RewardBudget(owner_type=owner_type, owner_key=owner_key, name=name or f"{owner_type}:{owner_key}",
                          max_grants=max_grants, max_amount_fen=max_amount_fen, per_investor=per_investor,
                          used_grants=0, used_amount_fen=0, created_at=now)
    try:
        with session.begin_nested():
            session.add(budget)
            session.flush()
    except IntegrityError:  # created by a concurrent caller: theirs it is
        found = session.scalar(query)
        if found is None:
            raise
        return found
    return budget


def set_limits(budget: RewardBudget, *, session: Session, max_grants: int | None, max_amount_fen: int | None,
               per_investor: int | None) -> None:
    """Change a budget's limits (a limit below what is used already simply allows no more grants)."""
    session.execute(update(_BUDGETS).where(_BUDGETS.c.id == budget.id).values(
        max_grants=max_grants, max_amount_fen=max_amount_fen, per_investor=per_investor))
    session.expire(budget)


# --- granting ------------------------------------------------------------------------------------------


def grant(*, session: Session, key: str, investor_id: int, kind: str, terms: Terms, budget: RewardBudget,
          actor: str, now: datetime, campaign_id: int | None = None, cause: str | None = None,
          note: str | None = None) -> Reward:
    """Grant a reward once per idempotency key, within its budget; queue the `reward.granted` webhook.

    A repeated key returns the existing reward (no second budget use, no second webhook). A grant
    that would break a limit raises BudgetExhausted (naming the limit) and writes nothing.
    """
    return grant_pack(session=session, keys=[key], investor_id=investor_id, items=[(kind, terms)], budget=budget,
                      actor=actor, now=now, campaign_id=campaign_id, cause=cause, note=note)[0]


def grant_pack(*, session: Session, keys: Sequence[str], investor_id: int, items: Sequence[tuple[str, Terms]],
               budget: RewardBudget, actor: str, now: datetime, campaign_id: int | None = None,
               cause: str | None = None, note: str | None = None) -> list[Reward]:
    """Grant rewards that are ONE grant of their budget (a campaign's reward list for one member, 新手礼包).

    The pack uses one of `max_grants` and of `per_investor`, and the sum of its values of `max_amount`;
    it is granted whole or not at all (BudgetExhausted, nothing written). Each reward has its own
    idempotency key (`keys`, one per item); a repeat of the first key returns the pack already granted.
    """
    user_id = session.scalar(select(Investor.platform_user_id).where(Investor.id == investor_id))
    if user_id is None:
        raise NotFound("investor not found")
    outcome = grant_packs(session=session, packs=[Pack(investor_id, user_id, tuple(keys), cause)], items=items,
                          budget=budget, actor=actor, now=now, campaign_id=campaign_id, note=note)
    if 0 in outcome.refused:
        raise BudgetExhausted(outcome.refused[0])
    ids = [row["id"] for row in outcome.granted[0]]
    found = {r.id: r for r in session.scalars(select(Reward).where(Reward.id.in_(ids)))}
    return [found[i] for i in ids]


@dataclass(frozen=True, slots=True)
class Pack:
    """One investor's share of a grant of packs: the idempotency key of each reward (one per item), and why."""

    investor_id: int
    user_id: str  # the platform's id, for the `reward.granted` webhook
    keys: tuple[str, ...]
    cause: str | None = None


@dataclass(slots=True)
class PackOutcome:
    """What `grant_packs` did, by the index of each pack: its reward rows, or the limit that refused it."""

    granted: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    refused: dict[int, str] = field(default_factory=dict)


def grant_packs(*, session: Session, packs: Sequence[Pack], items: Sequence[tuple[str, Terms]], budget: RewardBudget,
                actor: str, now: datetime, campaign_id: int | None = None, note: str | None = None) -> PackOutcome:
    """Grant the same reward list to many investors in bulk statements, each pack ONE grant of the budget.

    Packs are taken in order while the budget lasts: those that fit `max_grants` and `max_amount` are
    granted, the rest refused with the limit they hit; a pack over its investor's `per_investor` is refused
    and gives its share back. A pack whose first key exists already gets the rewards granted then (nothing
    twice). Investors must be distinct. Each reward gets its `granted` entry (and `paid`, for cash), its
    derived status and cost, and its `reward.granted` webhook, all in the caller's transaction.
    """
    _distinct([p.investor_id for p in packs])
    for pack in packs:
        if len(pack.keys) != len(items) or not items:
            raise ValueError("a pack needs one key per reward")
        if any(not k or len(k) > 255 for k in pack.keys):
            raise ValueError("a grant needs an idempotency key of at most 255 characters")
    outcome = PackOutcome()
    if not packs:
        return outcome
    values = _pack_values(session, budget, items)
    dialect = session.get_bind().dialect.name
    existing = _existing_packs(session, packs, dialect)
    outcome.granted.update(existing)
    fresh = [i for i in range(len(packs)) if i not in existing]
    try:
        with session.begin_nested():
            taken = _take_packs(session, budget, [(i, packs[i].investor_id) for i in fresh], sum(values), outcome)
            rows = [_reward_row(packs[i], key, kind, terms, value, budget=budget, actor=actor, now=now,
                                campaign_id=campaign_id, note=note)
                    for i in taken for key, (kind, terms), value in zip(packs[i].keys, items, values, strict=True)]
            ids = dict(insert_many(session.connection(), _REWARDS, rows, returning=("key", "id")))
    except IntegrityError:
        # The same keys granted concurrently: the savepoint gave the budget back; the other grant stands.
        again = _existing_packs(session, [packs[i] for i in fresh], dialect)
        if len(again) != len(fresh):
            raise
        outcome.granted.update({fresh[j]: found for j, found in again.items()})
        outcome.refused.clear()
        return outcome
    session.expire(budget)
    entries: list[dict[str, Any]] = []
    webhooks: list[NewMessage] = []
    per_pack = len(items)
    for n, i in enumerate(taken):
        mine = rows[n * per_pack:(n + 1) * per_pack]
        for row, (_kind, terms) in zip(mine, items, strict=True):
            row["id"] = ids[row["key"]]
            entries.append(entry_row(row["id"], "granted", "grant", at=now, now=now, actor=actor,
                                     amount=row["budget_fen"], investment_id=terms.investment_id, note=note))
            if row["kind"] == "cash":  # paid at grant: the webhook is the platform's instruction to credit it
                entries.append(entry_row(row["id"], "paid", "grant", at=now, now=now, actor=actor,
                                         amount=rules.cash_cost(row["amount_fen"] or 0)))
            webhooks.append(webhook_message(row, packs[i].user_id, "reward.granted"))
        outcome.granted[i] = mine
    insert_many(session.connection(), _ENTRIES, entries)
    enqueue_many(webhooks, session=session, now=now)
    return outcome


def take_packs(*, session: Session, investor_ids: Sequence[int], items: Sequence[tuple[str, Terms]],
               budget: RewardBudget) -> PackOutcome:
    """Take the budget for one pack per investor (distinct, in order) as `grant_packs` does, writing no reward.

    Returns the refused, by index, with the limit each hit. The others' packs must be written in the same
    transaction by `write_packs`: for a caller that makes its members and their rewards in one go.
    """
    _distinct(investor_ids)
    outcome = PackOutcome()
    if investor_ids:
        values = _pack_values(session, budget, items)
        _take_packs(session, budget, list(enumerate(investor_ids)), sum(values), outcome)
        session.expire(budget)
    return outcome


def _distinct(investor_ids: Sequence[int]) -> None:
    if len(set(investor_ids)) != len(investor_ids):
        raise ValueError("a grant of packs needs distinct investors")


@dataclass
class PackCount:
    """What `count_packs` counted: the packs refused by the per-investor limit, and what the rest take."""

    refused: dict[int, str]
    grants: int
    amount_fen: int
    per_investor: int | None


def count_packs(*, session: Session, investor_ids: Sequence[int], items: Sequence[tuple[str, Terms]],
                budget: RewardBudget) -> PackCount:
    """Count one pack per investor against the per-investor limit only, leaving the budget's totals alone.

    The other half of `take_packs` for a caller that writes thousands of packs per transaction beside
    others doing the same: it takes the totals with `settle_packs` as its LAST statement, so the budget's
    row is locked only from there to the commit, not for the whole transaction. Run both inside a
    savepoint: when `settle_packs` says the totals do not fit, roll it back and grant with `take_packs`,
    which takes what fits, in order.
    """
    _distinct(investor_ids)
    each = sum(_pack_values(session, budget, items))
    b = _BUDGETS.c
    per_investor = session.scalar(select(b.per_investor).where(b.id == budget.id))
    packs = list(enumerate(investor_ids))
    over = set() if per_investor is None else _over_per_investor(session, budget.id, packs, per_investor)
    grants = len(packs) - len(over)
    return PackCount({i: "per_investor" for i in over}, grants, grants * each, per_investor)


def settle_packs(*, session: Session, budget: RewardBudget, counted: PackCount) -> bool:
    """Take what `count_packs` counted from the budget's totals in one UPDATE; tell whether it fitted.

    It does not fit when a limit would be passed, or when the per-investor limit changed since it was read.
    """
    if not counted.grants:
        return True
    b = _BUDGETS.c
    same_limit = b.per_investor.is_(None) if counted.per_investor is None else b.per_investor == counted.per_investor
    taken = _take_totals(session, budget, counted.grants, counted.amount_fen, same_limit)
    session.expire(budget)
    return taken


def _take_totals(session: Session, budget: RewardBudget, grants: int, amount_fen: int,
                 *also: ColumnElement[bool]) -> bool:
    """Add grants and amount to the budget's totals in one UPDATE if they fit its limits (and `also` holds)."""
    b = _BUDGETS.c
    return session.connection().execute(
        update(_BUDGETS)
        .where(b.id == budget.id, *also,
               or_(b.max_grants.is_(None), b.used_grants + grants <= b.max_grants),
               or_(b.max_amount_fen.is_(None), b.used_amount_fen + amount_fen <= b.max_amount_fen))
        .values(used_grants=b.used_grants + grants, used_amount_fen=b.used_amount_fen + amount_fen)
    ).rowcount == 1


def write_packs(*, session: Session, source: Select[Any], items: Sequence[tuple[str, Terms]], budget: RewardBudget,
                actor: str, now: datetime, campaign_id: int | None = None, note: str | None = None) -> int:
    """Write the packs `take_packs` took with INSERT … SELECT statements (no row through Python); return how many.

    `source` yields one row per pack: `key` (a reward's key is it + ":<item index>"), `investor_id` and
    `cause`. The rewards, their entries and their `reward.granted` webhooks are exactly what `grant_packs`
    writes for the same packs; the database builds them.
    """
    values = _pack_values(session, budget, items)
    packs = source.subquery("packs")
    conn = session.connection()
    r = _REWARDS.c
    ids: list[int] = []
    for i, ((kind, terms), value) in enumerate(zip(items, values, strict=True)):
        row = _reward_row(Pack(0, "", ("",)), "", kind, terms, value, budget=budget, actor=actor, now=now,
                          campaign_id=campaign_id, note=note)
        computed = {"key": packs.c.key + f":{i}", "investor_id": packs.c.investor_id, "cause": packs.c.cause}
        selected = [computed.get(name, literal(row[name], r[name].type)) for name in row]
        mine = [x for (x,) in conn.execute(insert(_REWARDS).from_select(
            [r[name] for name in row], select(*selected).select_from(packs)).returning(r.id))]
        ids += mine
        entries = [entry_row(0, "granted", "grant", at=now, now=now, actor=actor, amount=value,
                             investment_id=terms.investment_id, note=note)]
        if kind == "cash":  # paid at grant: the webhook is the platform's instruction to credit it
            entries.append(entry_row(0, "paid", "grant", at=now, now=now, actor=actor,
                                     amount=rules.cash_cost(terms.amount_fen or 0)))
        for entry in entries:
            computed = {"key": cast(r.id, String) + f":{entry['kind']}", "reward_id": r.id}
            e = _ENTRIES.c
            conn.execute(insert(_ENTRIES).from_select([e[name] for name in entry], select(
                *(computed.get(name, literal(entry[name], e[name].type)) for name in entry)).where(
                among_ids(r.id, mine, dialect=conn.dialect.name))))
        _webhooks_from(session, row, mine, now=now)
    return len(ids)


def _webhooks_from(session: Session, row: dict[str, Any], reward_ids: Sequence[int], *, now: datetime) -> None:
    """Queue the `reward.granted` webhooks of rewards alike but for id and owner, built by the database."""
    conn = session.connection()
    dialect = conn.dialect.name
    model = webhook_message({**row, "id": 0}, "-", "reward.granted")
    r, investors = _REWARDS.c, table_of(Investor).c
    public = literal("rw_") + cast(r.id, String)
    cause = public + "|reward.granted"
    key = literal(model.key()[:-len(model.cause)]) + cause  # "c<campaign>|-|webhook|" + the reward's cause
    # One lookup of the owner's platform user id per reward, not a join: see campaigns.fanout._enqueue.
    user_id = select(investors.platform_user_id).where(investors.id == r.investor_id).scalar_subquery()
    content = json_template(dialect, model.content, {("data", "data", "id"): public,
                                                     ("data", "data", "user_id"): user_id})
    query = (select(key, literal(model.campaign_id), literal(model.sender), cause, literal(None), user_id,
                    literal(str(model.channel)), literal(str(model.message_class)), content)
             .where(among_ids(r.id, reward_ids, dialect=dialect)))
    enqueue_from(query, session=session, now=now)


def _pack_values(session: Session, budget: RewardBudget, items: Sequence[tuple[str, Terms]]) -> list[int]:
    """Check each item's terms and return what each takes of the budget's max_amount."""
    amount_limited: bool | None = None
    values = []
    for kind, terms in items:
        rules.check_terms(kind, terms)
        value = rules.budget_value(kind, terms)
        if value is None:
            if amount_limited is None:
                amount_limited = session.scalar(
                    select(_BUDGETS.c.max_amount_fen).where(_BUDGETS.c.id == budget.id)) is not None
            if amount_limited:
                # Its cost has no maximum, so an amount limit could not hold: say so rather than guess.
                raise InvalidTerms(_l("有金额上限的预算发放加息券时须设投资上限"), field="max_investment_fen")
            value = 0
        values.append(value)
    return values


def _existing_packs(session: Session, packs: Sequence[Pack], dialect: str) -> dict[int, list[dict[str, Any]]]:
    """Return the packs granted before (found by their keys), by index, with their reward rows in key order."""
    keys = [k for p in packs for k in p.keys]
    found = {row["key"]: dict(row) for row in session.execute(
        select(_REWARDS).where(among(_REWARDS.c.key, keys, dialect=dialect))).mappings()}
    return {i: [found[k] for k in p.keys if k in found] for i, p in enumerate(packs) if p.keys[0] in found}


def _take_packs(session: Session, budget: RewardBudget, fresh: list[tuple[int, int]], each: int,
                outcome: PackOutcome) -> list[int]:
    """Take one grant and `each` of max_amount per (pack, investor), as many as the limits allow; return those taken.

    The refused are recorded in `outcome` with the limit they hit.
    """
    conn = session.connection()
    b = _BUDGETS.c
    n = len(fresh)
    while n:
        if _take_totals(session, budget, n, n * each):
            break
        row = conn.execute(select(b.max_grants, b.used_grants, b.max_amount_fen, b.used_amount_fen)
                           .where(b.id == budget.id)).one()
        by_grants = n if row.max_grants is None else max(0, row.max_grants - row.used_grants)
        by_amount = n if row.max_amount_fen is None or not each else max(
            0, (row.max_amount_fen - row.used_amount_fen) // each)
        # A concurrent grant may take more before the next try: fewer each time, so this always ends.
        fits = min(by_grants, by_amount, n - 1)
        for i, _investor in fresh[fits:n]:
            outcome.refused[i] = "max_grants" if by_grants <= by_amount else "max_amount"
        n = fits
    granted = fresh[:n]
    # Read after the update: this transaction holds the budget row, so the limit is the current one.
    per_investor = conn.scalar(select(b.per_investor).where(b.id == budget.id)) if granted else None
    over = set() if per_investor is None else _over_per_investor(session, budget.id, granted, per_investor)
    if over:  # their share goes back to the budget
        conn.execute(update(_BUDGETS).where(b.id == budget.id).values(
            used_grants=b.used_grants - len(over), used_amount_fen=b.used_amount_fen - len(over) * each))
        for i in over:
            outcome.refused[i] = "per_investor"
    return [i for i, _investor in granted if i not in over]


def _over_per_investor(session: Session, budget_id: int, packs: list[tuple[int, int]], per_investor: int) -> set[int]:
    """Count one grant for each (pack, investor) against `per_investor`; return the packs over it (not counted).

    One INSERT … SELECT over the investors (the ids as one parameter), so thousands cost one statement.
    """
    if per_investor < 1:
        return {i for i, _investor in packs}
    conn = session.connection()
    dialect = conn.dialect.name
    u, investors = _BUDGET_USES.c, table_of(Investor).c
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    rows = select(literal(budget_id), investors.id, literal(1)).where(
        among_ids(investors.id, [investor for _i, investor in packs], dialect=dialect))
    stmt = insert_(_BUDGET_USES).from_select([u.budget_id, u.investor_id, u.used], rows).on_conflict_do_update(
        index_elements=[u.budget_id, u.investor_id], set_={"used": u.used + 1}, where=u.used < per_investor,
    ).returning(u.investor_id)
    counted = {row[0] for row in conn.execute(stmt)}
    return {i for i, investor in packs if investor not in counted}


def _reward_row(pack: Pack, key: str, kind: str, terms: Terms, value: int, *, budget: RewardBudget, actor: str,
                now: datetime, campaign_id: int | None, note: str | None) -> dict[str, Any]:
    """Return a new reward's row, with the status and cost `refresh` derives from its grant entries."""
    status = rules.derive_status({"granted", "paid"} if kind == "cash" else {"granted"})
    return {
        "key": key, "investor_id": pack.investor_id, "kind": kind, "status": status, "budget_id": budget.id,
        "campaign_id": campaign_id, "amount_fen": terms.amount_fen, "annual_rate_bp": terms.annual_rate_bp,
        "rate_bp": terms.rate_bp, "max_days": terms.max_days, "days": terms.days, "hold_days": terms.hold_days,
        "principal_fen": terms.principal_fen, "min_investment_fen": terms.min_investment_fen,
        "max_investment_fen": terms.max_investment_fen, "min_term_days": terms.min_term_days,
        "valid_days": terms.valid_days, "budget_fen": value,
        "investment_id": terms.investment_id if kind == "cashback" else None,
        "cost_fen": rules.derive_cost(kind, status, terms, None), "settled_at": None if status == "granted" else now,
        "granted_at": now, "expires_at": rules.expires_at(kind, terms, now), "granted_by": actor[:254],
        "cause": (pack.cause or key)[:255], "note": note,
    }


def entry_row(reward_id: int, kind: str, source: str, *, at: datetime, now: datetime, actor: str, amount: int = 0,
           investment_id: str | None = None, note: str | None = None, key: str | None = None) -> dict[str, Any]:
    return {"key": key or f"{reward_id}:{kind}", "reward_id": reward_id, "kind": kind, "source": source, "at": at,
            "recorded_at": now, "actor": actor[:254], "amount_fen": amount, "investment_id": investment_id,
            "note": note}


def append_entries(entries: Sequence[dict[str, Any]], *, session: Session) -> list[int]:
    """Append entries whose keys are new (a repeat of a key adds nothing); return the rewards that got one."""
    inserted = insert_many(session.connection(), _ENTRIES, entries, returning=("reward_id",), skip_conflicts=True)
    return sorted({r[0] for r in inserted})


def revoke(reward_id: int, *, session: Session, reason: str, actor: str, now: datetime) -> Reward:
    """Revoke a granted reward (staff, with a reason) and queue the `reward.revoked` webhook."""
    reason = reason.strip()
    if not reason:
        raise DomainError(_l("请填写撤销原因"), field="reason")
    reward = session.get(Reward, reward_id, with_for_update=True)
    if reward is None:
        raise NotFound(_l("红包不存在"))
    if reward.status != "granted":
        raise Conflict(_l("只有已发放且未使用的红包可以撤销"))
    if not append_entries([entry_row(reward.id, "revoked", "staff", at=now, now=now, actor=actor, note=reason)],
                          session=session):
        raise Conflict(_l("该红包已被撤销"))
    refresh(session=session, reward_ids=[reward.id])
    session.refresh(reward)
    user_id = session.scalar(select(Investor.platform_user_id).where(Investor.id == reward.investor_id))
    queue_webhook(session, reward, user_id or "", "reward.revoked", now=now)
    return reward


def queue_webhook(session: Session, reward: Reward, user_id: str, type_: str, *, now: datetime) -> None:
    """Queue the platform webhook about a reward (once per reward and type, however often this runs)."""
    enqueue(webhook_message(reward, user_id, type_), session=session, now=now)


def webhook_message(reward: Reward | dict[str, Any], user_id: str, type_: str) -> NewMessage:
    """Return the platform webhook about a reward (a Reward or its row), keyed per reward and type."""
    reward_id, campaign_id = (reward["id"], reward["campaign_id"]) if isinstance(reward, dict) else (
        reward.id, reward.campaign_id)
    return NewMessage(
        sender=SENDER, cause=f"{public_id(reward_id)}|{type_}", channel=Channel.WEBHOOK,
        message_class=MessageClass.SERVICE, content={"data": {"type": type_, "data": reward_json(reward, user_id)}},
        user_id=user_id or None, campaign_id=campaign_id,
    )


def _time(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def reward_json(reward: Reward | dict[str, Any], user_id: str) -> dict[str, Any]:
    """Return a reward (or its row) as the platform sees it (campaigns-api.md §4, with the terms of its kind)."""
    r = reward if isinstance(reward, dict) else {c.key: getattr(reward, c.key) for c in _REWARDS.c}
    conditions: dict[str, Any] = {}
    if r["min_investment_fen"] is not None:
        conditions["min_investment"] = fen_to_api(r["min_investment_fen"])
    if r["max_investment_fen"] is not None:
        conditions["max_investment"] = fen_to_api(r["max_investment_fen"])
    if r["min_term_days"] is not None:
        conditions["min_term_days"] = r["min_term_days"]
    amount = r["amount_fen"]
    if r["kind"] == "cashback":
        amount = rules.known_cost("cashback", terms_of(r))  # what it pays back
    elif r["kind"] == "rate_boost":
        amount = r["cost_fen"] if r["status"] == "redeemed" else None  # known once used
    body: dict[str, Any] = {
        "id": public_id(r["id"]), "kind": r["kind"], "status": r["status"],
        "amount": None if amount is None else fen_to_api(amount), "conditions": conditions,
        "granted_at": _time(r["granted_at"]), "expires_at": _time(r["expires_at"]),
        "campaign_id": r["campaign_id"], "user_id": user_id,
    }
    if r["annual_rate_bp"] is not None:
        body["annual_rate"] = bp_to_api(r["annual_rate_bp"])
    if r["rate_bp"] is not None:
        body["rate"] = bp_to_api(r["rate_bp"])
    for name in ("max_days", "days", "hold_days", "valid_days"):
        if r[name] is not None:
            body[name] = r[name]
    if r["principal_fen"] is not None:
        body["principal"] = fen_to_api(r["principal_fen"])
    if r["investment_id"] is not None:
        body["investment_id"] = r["investment_id"]
    body["cost"] = fen_to_api(r["cost_fen"])
    return body


def terms_of(reward: Reward | Any) -> Terms:
    """Return a reward row's terms (a Reward or a row mapping)."""
    get = reward.get if isinstance(reward, dict) else (lambda name: getattr(reward, name))
    return Terms(amount_fen=get("amount_fen"), annual_rate_bp=get("annual_rate_bp"), rate_bp=get("rate_bp"),
                 max_days=get("max_days"), days=get("days"), hold_days=get("hold_days"),
                 principal_fen=get("principal_fen"), min_investment_fen=get("min_investment_fen"),
                 max_investment_fen=get("max_investment_fen"), min_term_days=get("min_term_days"),
                 valid_days=get("valid_days"))


# --- deriving a reward from its entries -------------------------------------------------------------------

_STATUS_ENTRY = {"clawed_back": "clawed_back", "redeemed": "redeemed", "revoked": "revoked", "paid": "paid",
                 "expired": "expired", "granted": "granted"}


def refresh(*, session: Session, reward_ids: Iterable[int] | None = None) -> int:
    """Derive status, cost, investment and settled time of rewards from their entries; return how many changed.

    `reward_ids=None` re-derives every reward (after a replay's reset).
    """
    ids = None if reward_ids is None else sorted(set(reward_ids))
    if ids is not None and not ids:
        return 0
    r, e = _REWARDS.c, _ENTRIES.c
    query = select(_REWARDS)
    entry_query = select(e.reward_id, e.kind, e.at, e.amount_fen, e.investment_id)
    rows: list[dict[str, Any]] = []
    entries: dict[int, list[Any]] = {}
    for chunk in _chunks(ids):
        rows += [dict(m) for m in session.execute(query if chunk is None else query.where(r.id.in_(chunk))).mappings()]
        for entry in session.execute(entry_query if chunk is None else entry_query.where(e.reward_id.in_(chunk))):
            entries.setdefault(entry.reward_id, []).append(entry)
    changed = []
    for row in rows:
        mine = entries.get(row["id"], [])
        kinds = {x.kind for x in mine}
        status = rules.derive_status(kinds)
        redeemed = next((x for x in mine if x.kind == "redeemed"), None)
        cost = rules.derive_cost(row["kind"], status, terms_of(row), redeemed.amount_fen if redeemed else None)
        deciding = [x.at for x in mine if x.kind == _STATUS_ENTRY[status]]
        settled = None if status == "granted" else max(deciding) if deciding else None
        investment = redeemed.investment_id if redeemed else (row["investment_id"] if row["kind"] == "cashback"
                                                              else None)
        new = {"status": status, "cost_fen": cost, "settled_at": settled, "investment_id": investment}
        if any(row[k] != v for k, v in new.items()):
            changed.append({"id": row["id"], **new})
    update_many(session.connection(), _REWARDS, changed)
    return len(changed)


def _chunks(ids: list[int] | None, size: int = 500) -> Iterable[list[int] | None]:
    if ids is None:
        yield None
        return
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


# --- manual grants by staff -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ManualOutcome:
    """What a manual grant did: granted at once, or waiting for a second administrator."""

    reward: Reward | None = None
    request: GrantRequest | None = None


def manual_value(kind: str, terms: Terms) -> int | None:
    """Return what the approval threshold is compared with: the budget value (face, or maximum cost)."""
    return rules.budget_value(kind, terms)


def manual_grant(*, session: Session, nonce: str, investor: Investor, kind: str, terms: Terms, reason: str,
                 actor: str, now: datetime, threshold_fen: int) -> ManualOutcome:
    """Grant by staff, or file a request another administrator must approve when worth more than the threshold.

    `nonce` comes from the form, so submitting it twice grants (or requests) once.
    """
    reason = reason.strip()
    if not reason:
        raise DomainError(_l("请填写发放原因"), field="reason")
    rules.check_terms(kind, terms)
    value = manual_value(kind, terms)
    if value is None or value > threshold_fen:  # no bound at all counts as above any threshold
        found = session.scalar(select(GrantRequest).where(GrantRequest.nonce == nonce))
        if found is not None:
            return ManualOutcome(request=found)
        request = GrantRequest(nonce=nonce, investor_id=investor.id, kind=kind, terms=terms.as_dict(),
                               value_fen=value if value is not None else 0, reason=reason, status="pending",
                               requested_by=actor, requested_at=now)
        session.add(request)
        session.flush()
        return ManualOutcome(request=request)
    budget = budget_for(*MANUAL_BUDGET, session=session, now=now, name="手工发放")
    reward = grant(session=session, key=f"manual:{nonce}", investor_id=investor.id, kind=kind, terms=terms,
                   budget=budget, actor=actor, now=now, cause=f"manual:{nonce}", note=reason)
    return ManualOutcome(reward=reward)


def decide_request(request_id: int, *, session: Session, approve: bool, actor: str, note: str,
                   now: datetime) -> GrantRequest:
    """Approve (grant) or reject a pending manual grant; the requester may not decide their own request."""
    request = session.get(GrantRequest, request_id, with_for_update=True)
    if request is None:
        raise NotFound(_l("申请不存在"))
    if request.status != "pending":
        raise Conflict(_l("该申请已处理"))
    if request.requested_by == actor:
        raise Forbidden(_l("不能审批自己提交的申请，须由另一位管理员审批"))
    request.status = "approved" if approve else "rejected"
    request.decided_by, request.decided_at, request.decision_note = actor, now, note.strip() or None
    if approve:
        budget = budget_for(*MANUAL_BUDGET, session=session, now=now, name="手工发放")
        terms = Terms.from_dict(request.terms)
        reward = grant(session=session, key=f"manual:request:{request.id}", investor_id=request.investor_id,
                       kind=request.kind, terms=terms, budget=budget, actor=actor, now=now,
                       cause=f"manual:request:{request.id}", note=request.reason)
        request.reward_id = reward.id
    session.flush()
    return request


# --- queries -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerFilter:
    """The ledger's filters."""

    kind: str | None = None
    status: str | None = None
    campaign_id: int | None = None
    user_id: str | None = None
    start: date | None = None
    end: date | None = None
    invalid_uses: bool = False


def _ledger_query(f: LedgerFilter) -> Select[Reward, Investor]:
    query = select(Reward, Investor).join(Investor, Investor.id == Reward.investor_id)
    if f.kind:
        query = query.where(Reward.kind == f.kind)
    if f.status:
        query = query.where(Reward.status == f.status)
    if f.campaign_id is not None:
        query = query.where(Reward.campaign_id == f.campaign_id)
    if f.user_id:
        query = query.where(Investor.platform_user_id == f.user_id)
    if f.start:
        query = query.where(Reward.granted_at >= local_day_bounds(f.start)[0])
    if f.end:
        query = query.where(Reward.granted_at < local_day_bounds(f.end)[1])
    if f.invalid_uses:
        query = query.where(Reward.id.in_(select(RewardUse.reward_id).where(RewardUse.valid.is_(False))))
    return query


def ledger(f: LedgerFilter, *, session: Session, page: int, per_page: int) -> tuple[list[tuple[Reward, Investor]], int]:
    """Return one page of rewards (newest first) with their investors, and the total."""
    query = _ledger_query(f)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(Reward.id.desc()).offset((page - 1) * per_page).limit(per_page)).all()
    return [(reward, investor) for reward, investor in rows], total


def ledger_all(f: LedgerFilter, *, session: Session) -> Iterable[tuple[Reward, Investor]]:
    """Yield every reward the filter matches (for the CSV export), newest first."""
    for row in session.execute(_ledger_query(f).order_by(Reward.id.desc())).yield_per(1000):
        yield row[0], row[1]


def get_reward(reward_id: int, *, session: Session) -> Reward:
    """Return a reward or raise NotFound."""
    reward = session.get(Reward, reward_id)
    if reward is None:
        raise NotFound(_l("红包不存在"))
    return reward


def entries_of(reward_id: int, *, session: Session) -> list[RewardEntry]:
    """Return a reward's ledger entries in the order they happened."""
    return list(session.scalars(select(RewardEntry).where(RewardEntry.reward_id == reward_id)
                                .order_by(RewardEntry.at, RewardEntry.id)))


def uses_of(*, session: Session, reward_id: int | None = None, investor_id: int | None = None) -> list[RewardUse]:
    """Return the uses on investments of a reward, or of an investor's investments."""
    query = select(RewardUse)
    if reward_id is not None:
        query = query.where(RewardUse.reward_id == reward_id)
    if investor_id is not None:
        query = query.where(RewardUse.investor_id == investor_id)
    return list(session.scalars(query.order_by(RewardUse.occurred_at, RewardUse.investment_id)))


def investor_rewards(investor_id: int, *, session: Session, status: str | None, now: datetime) -> list[Reward]:
    """Return an investor's rewards, newest first; `usable` = granted and not expired at `now`."""
    query = select(Reward).where(Reward.investor_id == investor_id)
    if status == "usable":
        query = query.where(Reward.status == "granted", or_(Reward.expires_at.is_(None), Reward.expires_at > now))
    elif status:
        query = query.where(Reward.status == status)
    return list(session.scalars(query.order_by(Reward.granted_at.desc(), Reward.id.desc())))


def expiring(*, session: Session, within: timedelta, now: datetime) -> list[Reward]:
    """Return granted rewards that expire after `now` and within `within` (e.g. "expires in 3 days" notices)."""
    return list(session.scalars(select(Reward).where(
        Reward.status == "granted", Reward.expires_at > now, Reward.expires_at <= now + within,
    ).order_by(Reward.expires_at, Reward.id)))


def budgets(*, session: Session) -> list[RewardBudget]:
    """Return every budget, newest first."""
    return list(session.scalars(select(RewardBudget).order_by(RewardBudget.id.desc())))


def get_budget(budget_id: int, *, session: Session) -> RewardBudget:
    """Return a budget or raise NotFound."""
    budget = session.get(RewardBudget, budget_id)
    if budget is None:
        raise NotFound(_l("预算不存在"))
    return budget


def burn_down(budget_id: int, *, session: Session) -> list[tuple[date, int, int]]:
    """Return, per business day with grants, the budget's cumulative grants and amount used by the end of it."""
    per_day: dict[date, list[int]] = {}
    for granted_at, value in session.execute(select(Reward.granted_at, Reward.budget_fen)
                                             .where(Reward.budget_id == budget_id).order_by(Reward.granted_at)):
        totals = per_day.setdefault(local_date(granted_at), [0, 0])
        totals[0] += 1
        totals[1] += value
    out: list[tuple[date, int, int]] = []
    grants = amount = 0
    for day, (count, value_fen) in sorted(per_day.items()):
        grants += count
        amount += value_fen
        out.append((day, grants, amount))
    return out


def pending_requests(*, session: Session) -> list[tuple[GrantRequest, Investor]]:
    """Return the manual grant requests, pending first, newest first."""
    rows = session.execute(select(GrantRequest, Investor).join(Investor, Investor.id == GrantRequest.investor_id)
                           .order_by((GrantRequest.status != "pending"), GrantRequest.id.desc()).limit(200)).all()
    return [(r, i) for r, i in rows]


# --- liability -------------------------------------------------------------------------------------------

# Per kind: the status that counts as used and the one that counts as lapsed, for its historical use rate.
USE_OUTCOMES = {"voucher": ("redeemed", "expired"), "rate_boost": ("redeemed", "expired"),
                "cashback": ("paid", "clawed_back"), "experience_funds": ("paid", "revoked")}


@dataclass(frozen=True, slots=True)
class LiabilityRow:
    """Outstanding rewards of one campaign (None: not from a campaign) and kind."""

    campaign_id: int | None
    kind: str
    count: int
    face_fen: int
    cost_fen: int
    rate: float
    expected_fen: int


def use_rates(*, session: Session) -> dict[str, float]:
    """Return the historical use rate per kind over settled rewards (rules.DEFAULT_USE_RATE without history)."""
    counts = dict(((k, s), n) for k, s, n in session.execute(
        select(Reward.kind, Reward.status, func.count()).group_by(Reward.kind, Reward.status)))
    return {kind: rules.use_rate(counts.get((kind, used), 0), counts.get((kind, lapsed), 0))
            for kind, (used, lapsed) in USE_OUTCOMES.items()}


def liability(*, session: Session) -> tuple[list[LiabilityRow], LiabilityRow]:
    """Return outstanding (granted) rewards per campaign and kind at face value and expected cost, and the total."""
    rates = use_rates(session=session)
    groups: dict[tuple[int | None, str], list[int]] = {}
    query = select(Reward.campaign_id, Reward.kind, Reward.amount_fen, Reward.budget_fen, Reward.annual_rate_bp,
                   Reward.days, Reward.rate_bp, Reward.principal_fen).where(Reward.status == "granted")
    for row in session.execute(query):
        face, cost = _outstanding_value(row)
        acc = groups.setdefault((row.campaign_id, row.kind), [0, 0, 0])
        acc[0] += 1
        acc[1] += face
        acc[2] += cost
    out = []
    for (campaign_id, kind), (count, face, cost) in sorted(groups.items(), key=lambda kv: (kv[0][0] is None,
                                                                                        kv[0][0] or 0, kv[0][1])):
        rate = rates.get(kind, rules.DEFAULT_USE_RATE)
        expected = rules.expected_cost(rules.Outstanding(kind, count, face, cost), rate)
        out.append(LiabilityRow(campaign_id, kind, count, face, cost, rate, expected))
    total = LiabilityRow(None, "", sum(r.count for r in out), sum(r.face_fen for r in out),
                         sum(r.cost_fen for r in out), 0.0, sum(r.expected_fen for r in out))
    return out, total


def _outstanding_value(row: Any) -> tuple[int, int]:
    """Return an outstanding reward's face value and its cost if used (a rate boost at its maximum cost)."""
    if row.kind == "voucher":
        return row.amount_fen or 0, row.amount_fen or 0
    if row.kind == "rate_boost":
        return row.budget_fen, row.budget_fen
    if row.kind == "experience_funds":
        return row.amount_fen or 0, rules.experience_funds_cost(row.amount_fen or 0, row.annual_rate_bp or 0,
                                                                 row.days or 0)
    if row.kind == "cashback":
        cost = rules.cashback_cost(row.principal_fen or 0, row.rate_bp or 0)
        return cost, cost
    return row.amount_fen or 0, row.amount_fen or 0

