"""CRM services: settings, the follow-up rules' set-based queries, assignment, the worklist, calls, reassignment.

Services take `session=`, flush and never commit; the request or the scheduler's job commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, String, cast, delete, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from channels.models import MESSAGE_CHANNELS
from channels.services import record_statement
from growth import overrides
from growth.audit.services import record
from growth.auth.models import StaffUser
from growth.auth.permissions import Role
from growth.crm import rules
from growth.crm.models import (
    CALL_FEED_CURSOR,
    CAMPAIGN_REASON,
    DO_NOT_CONTACT,
    OUTCOMES,
    REASONS,
    TASK_STATUSES,
    CrmCall,
    CrmNote,
    CrmOwner,
    CrmSetting,
    CrmTask,
)
from growth.db import among, insert_many, table_of, update_many
from growth.errors import Conflict, DomainError, Forbidden, NotFound
from growth.events.models import ProcessorCursor
from growth.investors.models import FundsMovement, Investment, Investor
from growth.investors.rules import format_phone, mask_name, mask_phone
from growth.referrals.models import Referral

# Marketing stops on every channel that reaches a person (the platform webhook is not one).
PERSON_CHANNELS = tuple(c for c in MESSAGE_CHANNELS if c != "webhook")
POOL_BATCH = 5000  # pool tasks one job run looks at (oldest due first); the next run takes the rest
HISTORY = 50  # calls and notes shown on a task's page
MAX_NOTE = 2000

# --- settings ---------------------------------------------------------------------------------------


def default_settings(config: Mapping[str, Any]) -> rules.CrmSettings:
    """Return the CRM settings the configuration gives (issue 11's defaults when it gives none)."""
    return overrides.configured(config, prefix="CRM", keys=rules.SETTING_KEYS, parse=rules.parse_settings)


def current_settings(*, session: Session, defaults: rules.CrmSettings) -> rules.CrmSettings:
    """Return the settings in effect: each one changed on the settings page, else its default."""
    return overrides.current(CrmSetting, session=session, defaults=defaults, parse=rules.parse_settings)


def save_settings(values: Mapping[str, str], *, session: Session, defaults: rules.CrmSettings, by: str,
                  now: datetime) -> rules.CrmSettings:
    """Validate and store the changed settings and audit the change; the next job run uses them."""
    before = current_settings(session=session, defaults=defaults)
    after, changes = overrides.changes(values, keys=rules.SETTING_KEYS, parse=rules.parse_settings, before=before)
    if changes:
        overrides.write(CrmSetting, changes, session=session, by=by, now=now)
        record("crm_settings.changed", session=session, target_type="crm_settings", details={"changes": changes})
    return after


# --- follow-up rules --------------------------------------------------------------------------------


def _key(prefix: str, column: Any) -> ColumnElement[str]:
    """Return the SQL of a cause key "<prefix>:<id>" (the same text `Candidate` keys are written with)."""
    return literal(f"{prefix}:", String) + cast(column, String)


def _no_task(cause: ColumnElement[str]) -> ColumnElement[bool]:
    return ~exists().where(CrmTask.cause_key == cause)


def _contactable(investor_id: Any) -> ColumnElement[bool]:
    """Leave out investors who asked not to be contacted (a call logged 要求勿扰)."""
    return ~exists().where(CrmCall.investor_id == investor_id, CrmCall.outcome == DO_NOT_CONTACT)


@dataclass(frozen=True, slots=True)
class Candidate:
    """An investor a rule says needs a task, with the cause that makes the task unique."""

    investor_id: int
    reason: str
    cause_key: str


def _stalls(session: Session, cut: rules.Cutoffs) -> list[Candidate]:
    """Return investors stuck after a milestone (registered → KYC → deposit → investment) past their cutoff."""
    stages = (
        ("registered_no_kyc", Investor.registered_at, Investor.kyc_verified_at, cut.no_kyc_before),
        ("kyc_no_deposit", Investor.kyc_verified_at, Investor.first_deposit_at, cut.no_deposit_before),
        ("deposited_no_investment", Investor.first_deposit_at, Investor.first_investment_at, cut.no_investment_before),
    )
    out: list[Candidate] = []
    for reason, reached, missing, before in stages:
        rows = session.scalars(select(Investor.id).where(
            reached <= before, reached > cut.since, missing.is_(None),
            _no_task(_key(reason, Investor.id)), _contactable(Investor.id)))
        out += [Candidate(i, reason, f"{reason}:{i}") for i in rows]
    return out


def _money_events(session: Session, cut: rules.Cutoffs) -> list[Candidate]:
    """Return investments maturing soon, and large withdrawals and redemptions within the lookback window."""
    maturing = session.execute(select(Investment.id, Investment.investor_id).where(
        Investment.status == "active", Investment.maturity_date >= cut.maturing_from,
        Investment.maturity_date <= cut.maturing_to, _no_task(_key("maturing", Investment.id)),
        _contactable(Investment.investor_id)))
    withdrawals = session.execute(select(FundsMovement.id, FundsMovement.investor_id).where(
        FundsMovement.kind == "withdrawal", FundsMovement.amount_fen >= cut.large_amount_fen,
        FundsMovement.occurred_at > cut.since, _no_task(_key("withdrawal", FundsMovement.id)),
        _contactable(FundsMovement.investor_id)))
    redemptions = session.execute(select(Investment.id, Investment.investor_id).where(
        Investment.redeemed_fen >= cut.large_amount_fen, Investment.redeemed_at > cut.since,
        _no_task(_key("redemption", Investment.id)), _contactable(Investment.investor_id)))
    return ([Candidate(inv, "maturing", f"maturing:{i}") for i, inv in maturing]
            + [Candidate(inv, "large_redemption", f"withdrawal:{i}") for i, inv in withdrawals]
            + [Candidate(inv, "large_redemption", f"redemption:{i}") for i, inv in redemptions])


def _dormant(session: Session, cut: rules.Cutoffs) -> list[Candidate]:
    """Return investors who invested, hold nothing now and have been quiet since before the dormancy cutoff.

    A dormant task counts once per quiet spell: none is made while one was made after the last activity.
    """
    earlier = exists().where(CrmTask.investor_id == Investor.id, CrmTask.reason == "dormant",
                             CrmTask.created_at >= Investor.last_activity_at)
    rows = session.execute(select(Investor.id, Investor.last_activity_at).where(
        Investor.investment_count > 0, Investor.holdings_fen == 0, Investor.last_activity_at <= cut.dormant_before,
        Investor.last_activity_at > cut.dormant_since, ~earlier, _contactable(Investor.id)))
    return [Candidate(i, "dormant", f"dormant:{i}:{at:%Y%m%dT%H%M%S}") for i, at in rows]


def _referrals_in_review(session: Session) -> list[Candidate]:
    rows = session.scalars(select(Referral.referee_id).where(
        Referral.status == "in_review", _no_task(_key("referral_review", Referral.referee_id)),
        _contactable(Referral.referee_id)))
    return [Candidate(i, "referral_review", f"referral_review:{i}") for i in rows]


def candidates(*, session: Session, now: datetime, settings: rules.CrmSettings) -> list[Candidate]:
    """Return every investor the follow-up rules say needs a task at `now` that no task was made for yet."""
    cut = rules.cutoffs(settings, now)
    return _stalls(session, cut) + _money_events(session, cut) + _dormant(session, cut) + _referrals_in_review(session)


def create_rule_tasks(*, session: Session, now: datetime, settings: rules.CrmSettings) -> int:
    """Make the tasks the rules call for (at most one open per investor and reason); return how many were made."""
    due_at = rules.cutoffs(settings, now).due_at
    rows = [{"investor_id": c.investor_id, "reason": c.reason, "status": "open", "due_at": due_at, "created_at": now,
             "source_key": f"{c.investor_id}:{c.reason}", "cause_key": c.cause_key}
            for c in candidates(session=session, now=now, settings=settings)]
    # A conflict is an open task of the same investor and reason (or a cause made by a concurrent run): skip it.
    made = insert_many(session.connection(), table_of(CrmTask), rows, returning=("id",), skip_conflicts=True)
    return len(made)


# --- assignment -------------------------------------------------------------------------------------


def active_agents(*, session: Session) -> list[StaffUser]:
    """Return the agents who take tasks: staff with the agent role, active, by id."""
    return list(session.scalars(select(StaffUser).where(StaffUser.role == Role.AGENT.value, StaffUser.active.is_(True))
                                .order_by(StaffUser.id)))


def release_inactive(*, session: Session) -> int:
    """Put the open tasks of deactivated staff back in the pool and drop their ownerships; return the tasks moved."""
    inactive = select(StaffUser.id).where(StaffUser.active.is_(False)).scalar_subquery()
    moved = session.execute(update(CrmTask).where(CrmTask.status == "open", CrmTask.assignee_id.in_(inactive))
                            .values(assignee_id=None, assigned_at=None).execution_options(synchronize_session=False))
    session.execute(delete(CrmOwner).where(CrmOwner.agent_id.in_(inactive)).execution_options(
        synchronize_session=False))
    return int(moved.rowcount or 0)  # type: ignore[attr-defined]


def assign_pool(*, session: Session, now: datetime, settings: rules.CrmSettings) -> int:
    """Give pool tasks (oldest due first) to owners or round-robin among active agents, under the cap."""
    agents = [a.id for a in active_agents(session=session)]
    if not agents:
        return 0
    pool = session.execute(
        select(CrmTask.id, CrmTask.investor_id, CrmOwner.agent_id)
        .outerjoin(CrmOwner, CrmOwner.investor_id == CrmTask.investor_id)
        .where(CrmTask.status == "open", CrmTask.assignee_id.is_(None))
        .order_by(CrmTask.due_at, CrmTask.id).limit(POOL_BATCH)).all()
    if not pool:
        return 0
    load = {int(agent): int(n) for agent, n in session.execute(select(CrmTask.assignee_id, func.count()).where(
        CrmTask.status == "open", CrmTask.assignee_id.in_(agents)).group_by(CrmTask.assignee_id)) if agent is not None}
    last_agent = session.scalar(select(CrmTask.assignee_id).where(CrmTask.assigned_at.is_not(None))
                                .order_by(CrmTask.assigned_at.desc(), CrmTask.id.desc()).limit(1))
    plan = rules.assign([(t, i) for t, i, _o in pool], agents=agents, load=load,
                        owners={i: o for _t, i, o in pool if o is not None}, cap=settings.open_task_cap,
                        last_agent=last_agent)
    conn = session.connection()
    update_many(conn, table_of(CrmTask),
                [{"id": t, "assignee_id": a, "assigned_at": now} for t, a in plan.tasks.items()])
    insert_many(conn, table_of(CrmOwner), [{"investor_id": i, "agent_id": a, "since": now}
                                           for i, a in plan.new_owners.items()], skip_conflicts=True)
    return len(plan.tasks)


def reassign(task_id: int, agent_id: int | None, *, session: Session, now: datetime) -> CrmTask:
    """Give an open task to an active agent (who becomes the investor's owner) or back to the pool; audited."""
    task = _open_task(session, task_id)
    if agent_id is not None:
        agent = session.get(StaffUser, agent_id)
        if agent is None or not agent.active or agent.role != Role.AGENT.value:
            raise DomainError(_("只能分配给在职的客服"), field="agent_id")
        owner = session.get(CrmOwner, task.investor_id)
        if owner is None:
            session.add(CrmOwner(investor_id=task.investor_id, agent_id=agent_id, since=now))
        else:
            owner.agent_id, owner.since = agent_id, now
    before = task.assignee_id
    task.assignee_id, task.assigned_at = agent_id, (now if agent_id is not None else None)
    session.flush()
    record("crm.task_reassigned", session=session, target_type="crm_task", target_id=task.id,
           details={"from": before, "to": agent_id})
    return task


# --- the worklist -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """What the worklist shows: whose tasks (mine / pool / all), a reason and a status."""

    scope: str = "mine"
    reason: str | None = None
    status: str = "open"


SCOPES = ("mine", "pool", "all")


def _task_conditions(flt: TaskFilter, *, user_id: int) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if flt.scope == "mine":
        conditions.append(CrmTask.assignee_id == user_id)
    elif flt.scope == "pool":
        conditions.append(CrmTask.assignee_id.is_(None))
    if flt.reason in REASONS:
        conditions.append(CrmTask.reason == flt.reason)
    if flt.status in TASK_STATUSES:
        conditions.append(CrmTask.status == flt.status)
    return conditions


def _task_query(flt: TaskFilter, *, user_id: int) -> Any:
    return (select(CrmTask, Investor.platform_user_id, Investor.phone)
            .join(Investor, Investor.id == CrmTask.investor_id).where(*_task_conditions(flt, user_id=user_id)))


def worklist(flt: TaskFilter, *, session: Session, user_id: int, page: int, per_page: int
             ) -> tuple[list[dict[str, Any]], int]:
    """Return a page of tasks (open ones by due time, so overdue first; closed ones newest first) and the total."""
    query = _task_query(flt, user_id=user_id)
    # Counted on the tasks alone (every task has its investor): an index count, no join over every open task.
    total = session.scalar(select(func.count()).select_from(CrmTask)
                           .where(*_task_conditions(flt, user_id=user_id))) or 0
    order = ((CrmTask.due_at, CrmTask.id) if flt.status == "open" else (CrmTask.closed_at.desc(), CrmTask.id.desc()))
    rows = session.execute(query.order_by(*order).limit(per_page).offset((page - 1) * per_page)).all()
    return [{"task": task, "platform_user_id": uid, "phone": phone} for task, uid, phone in rows], int(total)


@dataclass(frozen=True, slots=True)
class TaskDetail:
    """A task with its investor and the investor's latest calls and notes (newest first)."""

    task: CrmTask
    investor: Investor
    calls: list[CrmCall]
    notes: list[CrmNote]


def task_detail(task_id: int, *, session: Session) -> TaskDetail:
    """Return a task, its investor and the investor's latest calls and notes."""
    task = session.get(CrmTask, task_id)
    if task is None:
        raise NotFound(_("任务不存在"))
    calls = session.scalars(select(CrmCall).where(CrmCall.investor_id == task.investor_id)
                            .order_by(CrmCall.created_at.desc(), CrmCall.id.desc()).limit(HISTORY))
    notes = session.scalars(select(CrmNote).where(CrmNote.investor_id == task.investor_id)
                            .order_by(CrmNote.created_at.desc(), CrmNote.id.desc()).limit(HISTORY))
    return TaskDetail(task, session.get_one(Investor, task.investor_id), list(calls), list(notes))


def add_note(investor_id: int, body: str, *, author_id: int, session: Session, now: datetime) -> CrmNote:
    """Add a note about an investor (1 to MAX_NOTE characters)."""
    text = body.strip()
    if not text or len(text) > MAX_NOTE:
        raise DomainError(_("备注须为 1 到 %(n)d 个字", n=MAX_NOTE), field="body")
    if session.get(Investor, investor_id) is None:
        raise NotFound(_("投资人不存在"))
    note = CrmNote(investor_id=investor_id, author_id=author_id, body=text, created_at=now)
    session.add(note)
    session.flush()
    return note


@dataclass(frozen=True, slots=True)
class InvestorPanel:
    """The CRM's part of the investor page: the investor's open tasks (due first) and their owner agent."""

    open_tasks: list[CrmTask]
    owner: StaffUser | None


def investor_panel(investor_id: int, *, session: Session) -> InvestorPanel:
    """Return an investor's open tasks (at most HISTORY, due first) and the agent who owns them (two queries)."""
    open_tasks = session.scalars(select(CrmTask).where(CrmTask.investor_id == investor_id, CrmTask.status == "open")
                                 .order_by(CrmTask.due_at, CrmTask.id).limit(HISTORY))
    owner = session.scalar(select(StaffUser).join(CrmOwner, CrmOwner.agent_id == StaffUser.id)
                           .where(CrmOwner.investor_id == investor_id))
    return InvestorPanel(list(open_tasks), owner)


# --- calls ------------------------------------------------------------------------------------------


def _open_task(session: Session, task_id: int) -> CrmTask:
    task = session.get(CrmTask, task_id, with_for_update=True)
    if task is None:
        raise NotFound(_("任务不存在"))
    if task.status != "open":
        raise Conflict(_("任务已关闭"))
    return task


def _close(task: CrmTask, status: str, *, by: int, now: datetime) -> None:
    task.status, task.closed_at, task.closed_by, task.source_key = status, now, by, None


def schedule_follow_up(investor_id: int, *, agent_id: int, due_at: datetime, cause_key: str, session: Session,
                       now: datetime) -> CrmTask:
    """Make the investor's follow-up task for an agent, or move the open one to the new time and agent."""
    task = session.scalar(select(CrmTask).where(CrmTask.source_key == f"{investor_id}:follow_up").with_for_update())
    if task is None:
        task = CrmTask(investor_id=investor_id, reason="follow_up", status="open", created_at=now,
                       source_key=f"{investor_id}:follow_up", cause_key=cause_key)
        session.add(task)
    task.assignee_id, task.assigned_at, task.due_at = agent_id, now, due_at
    session.flush()
    return task


def lock_call_feed(*, session: Session, now: datetime) -> None:
    """Take the call feed's lock (its consumer's cursor row) before a call gets its id; hold it until the commit.

    Calls are the campaigns' `crm_call` trigger feed, read by id after a cursor. PostgreSQL hands out ids
    before the commit, so two calls logged at once could commit out of id order and a consumer that read
    the later one first would move its cursor past the earlier one for good. Holding the cursor row's lock
    (which the consumer's batch takes too) makes ids commit in order. SQLite's one writer already does.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    row = select(ProcessorCursor.name).where(ProcessorCursor.name == CALL_FEED_CURSOR).with_for_update()
    if session.execute(row).first() is None:
        session.execute(pg_insert(ProcessorCursor).values(name=CALL_FEED_CURSOR, position=0, updated_at=now)
                        .on_conflict_do_nothing())
        session.execute(row)


def calls_after(after_id: int, *, session: Session, limit: int = 500) -> list[CrmCall]:
    """Return the calls logged after a consumer's cursor, oldest first (the campaigns' `crm_call` trigger feed).

    Call ids commit in order (`lock_call_feed`), so a consumer moving its cursor to the last id it read skips none.
    """
    return list(session.scalars(select(CrmCall).where(CrmCall.id > after_id).order_by(CrmCall.id)
                                .limit(max(1, min(limit, 5000)))))


def _check_call(outcome: str, next_follow_up_at: datetime | None, *, now: datetime) -> None:
    if outcome not in OUTCOMES:
        raise DomainError(_("请选择通话结果"), field="outcome")
    if next_follow_up_at is not None and outcome == DO_NOT_CONTACT:
        raise DomainError(_("客户要求勿扰，不能再约回访"), field="next_follow_up")
    if next_follow_up_at is not None and next_follow_up_at <= now:
        raise DomainError(_("下次回访时间须晚于现在"), field="next_follow_up")


def _after_call(call: CrmCall, *, session: Session, now: datetime) -> None:
    """Make the next follow-up the call agreed, and on 要求勿扰 stop marketing and the other tasks."""
    if call.next_follow_up_at is not None:
        schedule_follow_up(call.investor_id, agent_id=call.agent_id, due_at=call.next_follow_up_at,
                           cause_key=f"call:{call.id}", session=session, now=now)
    if call.outcome == DO_NOT_CONTACT:
        do_not_contact(call.investor_id, call=call, session=session, now=now)


def log_call(task_id: int, *, outcome: str, note: str | None, next_follow_up_at: datetime | None, agent_id: int,
             may_manage: bool, session: Session, now: datetime) -> CrmCall:
    """Log a call on a task: close it, make the next follow-up, and on 要求勿扰 stop marketing and other tasks."""
    lock_call_feed(session=session, now=now)
    task = _open_task(session, task_id)
    if task.assignee_id not in (None, agent_id) and not may_manage:
        raise Forbidden(_("这是其他客服的任务"))
    _check_call(outcome, next_follow_up_at, now=now)
    call = CrmCall(task_id=task.id, investor_id=task.investor_id, agent_id=agent_id, outcome=outcome,
                   note=(note or "").strip() or None, next_follow_up_at=next_follow_up_at, created_at=now)
    session.add(call)
    if task.assignee_id is None:
        task.assignee_id, task.assigned_at = agent_id, now
    _close(task, "done", by=agent_id, now=now)
    session.flush()
    _after_call(call, session=session, now=now)
    return call


def log_investor_call(investor_id: int, *, task_id: int | None, outcome: str, note: str | None,
                      next_follow_up_at: datetime | None, agent_id: int, may_manage: bool, session: Session,
                      now: datetime) -> CrmCall:
    """Log a call from the investor page: on one of their open tasks (closing it, as `log_call`) or on none.

    A call on no task closes nothing; its next follow-up and 要求勿扰 work as on a task.
    """
    if task_id is not None:
        task = session.get(CrmTask, task_id)
        if task is None or task.investor_id != investor_id:
            raise DomainError(_("请选择该投资人的待处理任务"), field="task_id")
        return log_call(task_id, outcome=outcome, note=note, next_follow_up_at=next_follow_up_at, agent_id=agent_id,
                        may_manage=may_manage, session=session, now=now)
    if session.get(Investor, investor_id) is None:
        raise NotFound(_("投资人不存在"))
    _check_call(outcome, next_follow_up_at, now=now)
    lock_call_feed(session=session, now=now)
    call = CrmCall(task_id=None, investor_id=investor_id, agent_id=agent_id, outcome=outcome,
                   note=(note or "").strip() or None, next_follow_up_at=next_follow_up_at, created_at=now)
    session.add(call)
    session.flush()
    _after_call(call, session=session, now=now)
    return call


def do_not_contact(investor_id: int, *, call: CrmCall, session: Session, now: datetime) -> None:
    """Withdraw marketing consent on every channel (a statement each, once per call) and cancel open tasks."""
    for channel in PERSON_CHANNELS:
        record_statement(session=session, investor_id=investor_id, channel=channel, granted=False, occurred_at=now,
                         source="crm_call", evidence={"call_id": call.id, "agent_id": call.agent_id},
                         event_id=f"crm-call:{call.id}:{channel}")
    for task in session.scalars(select(CrmTask).where(CrmTask.investor_id == investor_id, CrmTask.status == "open")):
        _close(task, "cancelled", by=call.agent_id, now=now)
    session.flush()



# --- the worklist as CSV ------------------------------------------------------------------------------

EXPORT_COLUMNS = ("task_id", "platform_user_id", "name", "phone", "reason", "status", "sla", "assignee", "due_at",
                  "created_at", "closed_at")


@dataclass(frozen=True, slots=True)
class TaskExport:
    """The worklist's rows for a CSV (plain values, see EXPORT_COLUMNS), how many matched and whether it was cut."""

    rows: list[list[Any]]
    total: int
    truncated: bool


def export_tasks(flt: TaskFilter, *, session: Session, user_id: int, limit: int, unmasked: bool, now: datetime,
                 audit_session: Session | None = None) -> TaskExport:
    """Return the tasks the worklist's filters select (its order, at most `limit`), masked unless `unmasked`; audited.

    The audit row goes to `audit_session` when given (a short write after the read), else to `session`.
    """
    conditions = _task_conditions(flt, user_id=user_id)
    total = session.scalar(select(func.count()).select_from(CrmTask).where(*conditions)) or 0
    order = ((CrmTask.due_at, CrmTask.id) if flt.status == "open" else (CrmTask.closed_at.desc(), CrmTask.id.desc()))
    query = (select(CrmTask, Investor.platform_user_id, Investor.name, Investor.phone, StaffUser.email)
             .join(Investor, Investor.id == CrmTask.investor_id)
             .outerjoin(StaffUser, StaffUser.id == CrmTask.assignee_id)
             .where(*conditions).order_by(*order).limit(limit))
    rows = []
    for task, uid, name, phone, assignee in session.execute(query):
        rows.append([task.id, uid, (name or "") if unmasked else mask_name(name),
                     format_phone(phone) if unmasked else mask_phone(phone), task.reason, task.status,
                     rules.sla_state(task.due_at, now) if task.status == "open" else "", assignee or "",
                     task.due_at, task.created_at, task.closed_at])
    truncated = total > len(rows)
    record("crm.tasks_exported", session=audit_session or session, target_type="crm_task",
           details={"filters": {"scope": flt.scope, "reason": flt.reason or "", "status": flt.status},
                    "rows": len(rows), "total": total, "truncated": truncated, "unmasked": unmasked})
    return TaskExport(rows, int(total), truncated)


# --- tasks campaigns ask for ------------------------------------------------------------------------


def campaign_cause(campaign_id: int, member_id: int) -> str:
    """Return the cause key of the task a campaign asks for one of its members (made once per member)."""
    return f"campaign:{campaign_id}:{member_id}"


def create_campaign_tasks(campaign_id: int, members: Sequence[tuple[int, int]], *, note: str, due_hours: int,
                          session: Session, now: datetime) -> int:
    """Make a follow-up task (reason `campaign`, in the pool) for each (member id, investor id); return how many.

    Once per member however often this runs (the cause names the campaign and the member). An investor with
    an open campaign task keeps that one (one open task per investor and reason), and nobody who asked not to
    be contacted gets one. The scheduler's job assigns the new tasks with the rest of the pool.
    """
    if not members:
        return 0
    refused = do_not_contact_among([investor_id for _member, investor_id in members], session=session)
    due_at = now + timedelta(hours=due_hours)
    rows = [{"investor_id": investor_id, "reason": CAMPAIGN_REASON, "status": "open", "due_at": due_at,
             "created_at": now, "source_key": f"{investor_id}:{CAMPAIGN_REASON}",
             "cause_key": campaign_cause(campaign_id, member_id), "note": note}
            for member_id, investor_id in members if investor_id not in refused]
    made = insert_many(session.connection(), table_of(CrmTask), rows, returning=("id",), skip_conflicts=True)
    return len(made)


def do_not_contact_among(investor_ids: Sequence[int], *, session: Session) -> set[int]:
    """Return those of the investors who asked not to be contacted (a call logged 要求勿扰)."""
    if not investor_ids:
        return set()
    dialect = session.get_bind().dialect.name
    return set(session.scalars(select(CrmCall.investor_id).where(
        CrmCall.outcome == DO_NOT_CONTACT, among(CrmCall.investor_id, sorted(set(investor_ids)), dialect=dialect))))


def called_since(outcomes: Sequence[str], since: datetime, *, session: Session) -> list[int]:
    """Return the investor of each call logged since `since` with one of the outcomes (once per call)."""
    return list(session.scalars(select(CrmCall.investor_id).where(
        CrmCall.created_at >= since, CrmCall.outcome.in_(sorted(set(outcomes))))))
