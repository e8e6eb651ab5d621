"""How far a campaign has got: its runs (selected, fulfilled), the members still waiting, its budget's burn.

Read-only: the campaign page and its small JSON poll use it while a run is in progress. A member counts as
fulfilled once fulfilment has decided it (granted, holdout, budget exhausted, failed, cancelled); a run is
in progress while it is still selecting or any of its members waits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from campaigns.models import CampaignMember, CampaignRun, CampaignRunChunk
from growth.rewards import services as rewards
from growth.rewards.models import RewardBudget
from growth.timeutil import as_utc

RUNS_SHOWN = 20


@dataclass(frozen=True, slots=True)
class RunProgress:
    """One run: when it was due, where its selection stands, and how many of its members are fulfilled."""

    id: int
    scheduled_for: datetime
    status: str  # selecting, selected, cancelled
    selected: int
    fulfilled: int
    started_at: datetime
    finished_at: datetime | None

    @property
    def in_progress(self) -> bool:
        """Tell whether the run still selects or has members waiting for their rewards and messages."""
        return self.status == "selecting" or self.fulfilled < self.selected

    @property
    def percent(self) -> int:
        """Return the fulfilled share of the selected members, 0–100 (100 for a finished empty run)."""
        if not self.selected:
            return 0 if self.status == "selecting" else 100
        return min(100, self.fulfilled * 100 // self.selected)

    def as_json(self) -> dict[str, Any]:
        """Return the run as the page's poll sends it."""
        return {"id": self.id, "scheduled_for": as_utc(self.scheduled_for).isoformat(), "status": self.status,
                "selected": self.selected, "fulfilled": self.fulfilled, "percent": self.percent,
                "in_progress": self.in_progress}


@dataclass(frozen=True, slots=True)
class Progress:
    """A campaign's runs (newest first, at most RUNS_SHOWN), how many runs in all, and its members' state."""

    runs: list[RunProgress]
    run_count: int
    members: int
    waiting: int  # members fulfilment has not decided yet

    @property
    def in_progress(self) -> bool:
        """Tell whether a run is still under way (selecting, or its members waiting)."""
        return any(r.in_progress for r in self.runs)

    def as_json(self) -> dict[str, Any]:
        """Return the progress as the page's poll sends it."""
        return {"in_progress": self.in_progress, "members": self.members, "waiting": self.waiting,
                "fulfilled": self.members - self.waiting, "runs": [r.as_json() for r in self.runs]}


def progress(campaign_id: int, *, session: Session) -> Progress:
    """Return a campaign's runs with their fulfilment, and its members waiting."""
    m, r = CampaignMember, CampaignRun
    waiting_expr = func.coalesce(func.sum(case((m.status == "pending", 1), else_=0)), 0)
    members, waiting = session.execute(select(func.count(m.id), waiting_expr)
                                       .where(m.campaign_id == campaign_id)).one()
    run_count = session.scalar(select(func.count()).where(r.campaign_id == campaign_id)) or 0
    rows = session.scalars(select(r).where(r.campaign_id == campaign_id)
                           .order_by(r.scheduled_for.desc()).limit(RUNS_SHOWN)).all()
    fulfilled: dict[int | None, int] = {}
    selected = {run.id: run.selected for run in rows}
    if rows:
        fulfilled = {run_id: n for run_id, n in session.execute(
            select(m.run_id, func.count()).where(m.run_id.in_([run.id for run in rows]), m.status != "pending")
            .group_by(m.run_id))}
        # A run still selecting counts its members by its chunks done (it adds them up when it finishes).
        selecting = [run.id for run in rows if run.status == "selecting"]
        if selecting:
            c = CampaignRunChunk
            selected.update((run_id, n) for run_id, n in session.execute(
                select(c.run_id, func.sum(c.selected)).where(c.run_id.in_(selecting), c.done.is_(True))
                .group_by(c.run_id)))
    runs = [RunProgress(run.id, run.scheduled_for, run.status, int(selected[run.id] or 0), fulfilled.get(run.id, 0),
                        run.started_at, run.finished_at) for run in rows]
    return Progress(runs, run_count, int(members or 0), int(waiting or 0))


@dataclass(frozen=True, slots=True)
class Burn:
    """A campaign's reward budget and its use per business day (cumulative grants and amount)."""

    budget: RewardBudget
    points: list[tuple[date, int, int]]

    @property
    def grants_percent(self) -> int | None:
        """Return the share of max_grants used, 0–100, or None without that limit."""
        return _percent(self.budget.used_grants, self.budget.max_grants)

    @property
    def amount_percent(self) -> int | None:
        """Return the share of max_amount used, 0–100, or None without that limit."""
        return _percent(self.budget.used_amount_fen, self.budget.max_amount_fen)


def _percent(used: int, limit: int | None) -> int | None:
    if limit is None:
        return None
    return 100 if limit <= 0 else min(100, used * 100 // limit)


def budget_burn(campaign_id: int, *, session: Session) -> Burn | None:
    """Return the campaign's reward budget and its burn-down; None before fulfilment made the budget."""
    budget = session.scalar(select(RewardBudget).where(RewardBudget.owner_type == "campaign",
                                                       RewardBudget.owner_key == str(campaign_id)))
    if budget is None:
        return None
    return Burn(budget, rewards.burn_down(budget.id, session=session))
