"""The manager's view of the CRM: per agent and period, tasks, calls, contact rate and conversion after a contact.

What each figure counts (the period is Shanghai business days, both ends included):

- created: tasks made in the period, by their assignee (the pool when unassigned);
- closed: tasks closed (done or cancelled) in the period, by who closed them;
- overdue now: open tasks past their due time at `now`, by assignee (whatever the period);
- calls, connected: calls logged in the period by the agent; connected = an outcome in CONNECTED_OUTCOMES;
  contact rate = connected ÷ calls;
- contacted: investors with a connected call by the agent in the period, counted once at their first such
  call; converted: an investment started after that call and within 7 days (a first investment or a
  re-investment); its reason is the reason of the task that call was logged on;
- compared with investors not contacted: tasks made in the period with no call logged for their investor
  from the task's creation to 7 days after it; converted when an investment started in those 7 days. The
  rate per reason is weighted by the agent's contacts per reason (similar investors: same task reason), so
  "control rate" is what the agent's contacts would have done without the call; lift = rate − control.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.orm import Session

from growth.auth.models import StaffUser
from growth.auth.permissions import Role
from growth.crm.models import CONNECTED_OUTCOMES, CrmCall, CrmTask
from growth.db import seconds_between
from growth.investors.models import Investment

CONVERSION_WINDOW = timedelta(days=7)
_WINDOW_SECONDS = CONVERSION_WINDOW.total_seconds()
POOL = 0  # the row of tasks nobody is assigned (no staff id is 0)


@dataclass
class AgentFigures:
    """One row of the team view: one agent's (or the pool's) figures for the period."""

    agent_id: int
    name: str
    created: int = 0
    closed: int = 0
    overdue: int = 0
    calls: int = 0
    connected: int = 0
    contacted: int = 0
    converted: int = 0
    contacts_by_reason: dict[str, int] = field(default_factory=dict)
    control_rate: float | None = None

    @property
    def contact_rate(self) -> float | None:
        """Return connected calls ÷ calls (None without calls)."""
        return self.connected / self.calls if self.calls else None

    @property
    def conversion_rate(self) -> float | None:
        """Return converted ÷ contacted investors (None without contacts)."""
        return self.converted / self.contacted if self.contacted else None

    @property
    def lift(self) -> float | None:
        """Return the conversion rate minus the control rate (None when either is unknown)."""
        if self.conversion_rate is None or self.control_rate is None:
            return None
        return self.conversion_rate - self.control_rate


@dataclass(frozen=True, slots=True)
class ControlGroup:
    """Tasks of one reason made in the period whose investor got no call within the window, and their conversions."""

    tasks: int
    converted: int

    @property
    def rate(self) -> float | None:
        """Return converted ÷ tasks."""
        return self.converted / self.tasks if self.tasks else None


@dataclass(frozen=True, slots=True)
class TeamReport:
    """The team view: a row per agent (and the pool), the totals, and the control groups by reason."""

    rows: list[AgentFigures]
    total: AgentFigures
    control: dict[str, ControlGroup]

    @property
    def empty(self) -> bool:
        """Tell whether nothing happened in the period (no task, call or overdue task anywhere)."""
        t = self.total
        return not (t.created or t.closed or t.overdue or t.calls)


def weighted_control(contacts_by_reason: dict[str, int], control: dict[str, ControlGroup]) -> float | None:
    """Return the control groups' conversion weighted by contacts per reason (reasons without a control left out)."""
    weights = {r: n for r, n in contacts_by_reason.items() if r in control and control[r].rate is not None}
    total = sum(weights.values())
    if not total:
        return None
    return sum(n * (control[r].rate or 0.0) for r, n in weights.items()) / total


def _counts(session: Session, query: Any) -> dict[int, int]:
    return {int(k if k is not None else POOL): int(n) for k, n in session.execute(query)}


def team_report(*, session: Session, start: datetime, end: datetime, now: datetime) -> TeamReport:
    """Return every agent's figures for [start, end) (aware UTC), overdue as of `now`; seven queries."""
    in_period = (CrmTask.created_at >= start) & (CrmTask.created_at < end)
    created = _counts(session, select(CrmTask.assignee_id, func.count()).where(in_period)
                      .group_by(CrmTask.assignee_id))
    closed = _counts(session, select(CrmTask.closed_by, func.count()).where(
        CrmTask.status != "open", CrmTask.closed_at >= start, CrmTask.closed_at < end).group_by(CrmTask.closed_by))
    overdue = _counts(session, select(CrmTask.assignee_id, func.count()).where(
        CrmTask.status == "open", CrmTask.due_at < now).group_by(CrmTask.assignee_id))
    is_connected = CrmCall.outcome.in_(CONNECTED_OUTCOMES)
    call_period = (CrmCall.created_at >= start) & (CrmCall.created_at < end)
    calls: dict[int, tuple[int, int]] = {
        int(agent): (int(n), int(c or 0)) for agent, n, c in session.execute(
            select(CrmCall.agent_id, func.count(), func.sum(case((is_connected, 1), else_=0)))
            .where(call_period).group_by(CrmCall.agent_id))}

    # Every connected call of the period with its task's reason and whether an investment followed within 7 days;
    # an investor counts once per agent, at their first connected call.
    invested_after = exists().where(
        Investment.investor_id == CrmCall.investor_id, Investment.started_at.is_not(None),
        seconds_between(Investment.started_at, CrmCall.created_at) > 0,
        seconds_between(Investment.started_at, CrmCall.created_at) <= _WINDOW_SECONDS)
    contacts = session.execute(
        select(CrmCall.agent_id, CrmCall.investor_id, CrmTask.reason, invested_after)
        .outerjoin(CrmTask, CrmTask.id == CrmCall.task_id)
        .where(call_period, is_connected).order_by(CrmCall.created_at, CrmCall.id))
    seen: set[tuple[int, int]] = set()
    contacted: dict[int, list[tuple[str | None, bool]]] = defaultdict(list)
    for agent, investor, reason, converted in contacts:
        if (agent, investor) not in seen:
            seen.add((agent, investor))
            contacted[int(agent)].append((reason, bool(converted)))

    # The control groups: tasks of the period whose investor got no call within the window after the task was made.
    called = exists().where(CrmCall.investor_id == CrmTask.investor_id,
                            seconds_between(CrmCall.created_at, CrmTask.created_at) >= 0,
                            seconds_between(CrmCall.created_at, CrmTask.created_at) <= _WINDOW_SECONDS)
    converted_after_task = exists().where(
        Investment.investor_id == CrmTask.investor_id, Investment.started_at.is_not(None),
        seconds_between(Investment.started_at, CrmTask.created_at) > 0,
        seconds_between(Investment.started_at, CrmTask.created_at) <= _WINDOW_SECONDS)
    control = {reason: ControlGroup(int(n), int(c or 0)) for reason, n, c in session.execute(
        select(CrmTask.reason, func.count(), func.sum(case((converted_after_task, 1), else_=0)))
        .where(and_(in_period, ~called)).group_by(CrmTask.reason))}

    ids = set(created) | set(closed) | set(overdue) | set(calls) | set(contacted)
    names = {u.id: (u.name or u.email) for u in session.scalars(select(StaffUser).where(
        (StaffUser.id.in_(ids - {POOL})) | ((StaffUser.role == Role.AGENT.value) & StaffUser.active.is_(True))))}
    rows = []
    total = AgentFigures(agent_id=-1, name="")
    for agent_id in sorted(set(names) | ids, key=lambda i: (i == POOL, names.get(i, ""), i)):
        row = AgentFigures(agent_id=agent_id, name=names.get(agent_id, ""), created=created.get(agent_id, 0),
                           closed=closed.get(agent_id, 0), overdue=overdue.get(agent_id, 0))
        row.calls, row.connected = calls.get(agent_id, (0, 0))
        by_reason: dict[str, int] = defaultdict(int)
        for contact_reason, converted in contacted.get(agent_id, []):
            row.contacted += 1
            row.converted += converted
            if contact_reason is not None:
                by_reason[contact_reason] += 1
        row.contacts_by_reason = dict(by_reason)
        row.control_rate = weighted_control(row.contacts_by_reason, control)
        rows.append(row)
        for name in ("created", "closed", "overdue", "calls", "connected", "contacted", "converted"):
            setattr(total, name, getattr(total, name) + getattr(row, name))
        for reason, n in row.contacts_by_reason.items():
            total.contacts_by_reason[reason] = total.contacts_by_reason.get(reason, 0) + n
    total.control_rate = weighted_control(total.contacts_by_reason, control)
    return TeamReport(rows, total, control)
