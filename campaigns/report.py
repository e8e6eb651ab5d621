"""The campaign page's "runs and results": everything a marketer reads about how a campaign went, in one call.

Status and schedule (the next fire times and the misfire policy), the runs with their progress, the budget's
burn, and the results of spec §3 read as an experiment: conversion of each side with its interval, the lift
(treated rate − holdout rate) with its 95 % interval, cost, and the invested amount the campaign added per
yuan of cost. Charts are Plotly JSON for the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy.orm import Session

from campaigns import charts, results, upcoming
from campaigns.definition import Definition
from campaigns.editor import CHANNEL_LABELS
from campaigns.models import Campaign
from campaigns.progress import Burn, Progress, budget_burn, progress
from campaigns.results import Figures, Interval
from channels.models import STATUS_LABELS as MESSAGE_STATUS_LABELS
from growth.rewards.charts import burn_down_figure


@dataclass(frozen=True, slots=True)
class Report:
    """What the campaign page shows under "runs and results"."""

    figures: Figures
    results: dict[str, Any]  # the spec §3 shape, as the API answers it
    progress: Progress
    burn: Burn | None
    next_fires: list[datetime]
    misfire: str | None
    treated_rate: Interval | None
    holdout_rate: Interval | None
    lift: Interval | None
    incremental_fen: int | None
    per_yuan: float | None
    charts: dict[str, str]  # figure JSON by chart name

    @property
    def sent_messages(self) -> int:
        """Return the messages that went out (sent or delivered), every channel."""
        return sum(s.get("sent", 0) + s.get("delivered", 0) for s in self.figures.messages.values())

    @property
    def total_messages(self) -> int:
        """Return every message made for people, whatever became of it."""
        return sum(sum(s.values()) for s in self.figures.messages.values())


def report(campaign: Campaign, definition: Definition, *, session: Session, now: datetime) -> Report:
    """Return the runs and results of a campaign as the page shows them."""
    figures = results.figures(campaign.id, session=session)
    treated, holdout = figures.treated, figures.holdout
    treated_rate = results.rate_interval(treated.investors, treated.people)
    holdout_rate = results.rate_interval(holdout.investors, holdout.people)
    incremental = results.incremental_invested(treated, holdout)
    burn = budget_burn(campaign.id, session=session)
    scheduled = definition.schedule is not None
    fires = list(upcoming.fire_times(definition, after=now)) if scheduled and campaign.status in (
        "scheduled", "running", "paused", "pending_approval", "draft") else []
    shown: dict[str, str] = {}
    bars = [charts.Bar(label, rate, side.investors, side.people)
            for label, rate, side in ((_("实验组"), treated_rate, treated), (_("对照组"), holdout_rate, holdout))
            if rate is not None]
    if any(bar.hits for bar in bars):  # all at 0 % the chart would be an empty frame: the table says it
        shown["conversion"] = charts.conversion_figure(bars, hover=_("{hits} / {people} 人投资")).to_json()
    if any(sum(s.values()) for s in figures.messages.values()):
        shown["messages"] = charts.messages_figure(
            figures.messages, channel_labels={k: str(v) for k, v in CHANNEL_LABELS.items()},
            status_labels={k: str(v) for k, v in MESSAGE_STATUS_LABELS.items()}).to_json()
    if burn is not None and burn.points:
        shown["burn"] = burn_down_figure(burn.points, max_grants=burn.budget.max_grants,
                                         max_amount_fen=burn.budget.max_amount_fen).to_json()
    return Report(
        figures=figures, results=figures.as_json(), progress=progress(campaign.id, session=session),
        burn=burn, next_fires=fires, misfire=upcoming.misfire_words() if scheduled else None,
        treated_rate=treated_rate, holdout_rate=holdout_rate,
        lift=results.lift(treated.investors, treated.people, holdout.investors, holdout.people),
        incremental_fen=incremental, per_yuan=results.per_yuan_of_cost(incremental, figures.cost_fen),
        charts=shown,
    )
