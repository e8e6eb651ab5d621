"""Which campaign triggers an event fires, and whether a campaign takes it: plain functions over plain data.

The trigger consumer (a second reader of the event log, behind the processor) hands each event here with
the investor's milestones as the processor left them. A milestone trigger (`registered`, `first_investment`
…) fires on the event that IS the milestone (the earliest of its kind, so an older event arriving late
fires it and the newer one it displaced does not: a milestone's key is its name, so it fires once per
investor whatever the arrival order). Investment triggers fire on every event of their kind, keyed by the
investment. A campaign takes a fire when it is active, the event occurred inside its window and after its
approval, the event was accepted within 72 hours of occurring (a backfill never sends), and the
investment meets the trigger's conditions. A CRM call (`crm_call`, beyond spec §2's list) is not a platform
event: the consumer reads the CRM's call feed with a cursor of its own and fires once per call whose
outcome the trigger lists; a call is "accepted" when it is logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campaigns.definition import Definition, window_contains
from growth.money import MoneyFormatError, parse_yuan

BACKFILL_LIMIT = timedelta(hours=72)

# Event type → the milestone it may reach (spec events-api: milestones are the earliest of their kind).
MILESTONE_OF = {
    "user.registered": "registered",
    "user.kyc_verified": "kyc_verified",
    "user.card_bound": "card_bound",
    "funds.deposited": "first_deposit",
}
INVESTMENT_EVENTS = {
    "investment.created": "investment_created",
    "investment.matured": "investment_matured",
    "investment.redeemed": "investment_redeemed",
}


@dataclass(frozen=True, slots=True)
class Investment:
    """What an investment trigger's conditions look at."""

    investment_id: str
    amount_fen: int | None
    term_days: int | None
    product_id: str | None


@dataclass(frozen=True, slots=True)
class Fire:
    """One trigger an event fires for an investor: its name, the cause that keys the campaign's work, and when."""

    on: str
    cause: str  # unique per (investor, trigger): the milestone's name, the investment's id, the call's id
    occurred_at: datetime
    investment: Investment | None = None
    outcome: str | None = None  # a CRM call's outcome (`crm_call`)


def call_fire(call_id: int, outcome: str, logged_at: datetime) -> Fire:
    """Return the `crm_call` trigger a logged CRM call fires (keyed by the call: one fire per call)."""
    return Fire("crm_call", f"crm_call:{call_id}", logged_at, outcome=outcome)


def _money(value: object) -> int | None:
    try:
        return parse_yuan(value)
    except MoneyFormatError:
        return None


def investment_of(data: Mapping[str, Any], known: Investment | None = None) -> Investment:
    """Return the investment an event's data describes, completed from what the log already told (`known`)."""
    raw = data.get("product")
    product: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    term = product.get("term_days") if isinstance(product.get("term_days"), int) else None
    return Investment(
        investment_id=str(data.get("investment_id", "")),
        amount_fen=_money(data.get("amount")) if known is None or known.amount_fen is None else known.amount_fen,
        term_days=term if term is not None else (known.term_days if known else None),
        product_id=product.get("id") if isinstance(product.get("id"), str) else (known.product_id if known else None),
    )


def fires(event_type: str, occurred_at: datetime, data: Mapping[str, Any], milestones: Mapping[str, datetime | None],
          investment: Investment | None = None) -> list[Fire]:
    """Return the triggers an event fires, given the investor's milestones after the processor saw it."""
    found: list[Fire] = []
    milestone = MILESTONE_OF.get(event_type)
    if milestone is not None and milestones.get(milestone) == occurred_at:
        found.append(Fire(milestone, milestone, occurred_at))
    on = INVESTMENT_EVENTS.get(event_type)
    if on is not None:
        inv = investment if investment is not None else investment_of(data)
        found.append(Fire(on, f"{on}:{inv.investment_id}", occurred_at, inv))
        if on == "investment_created":
            for name in ("first_investment", "repeat_investment"):
                if milestones.get(name) == occurred_at:
                    found.append(Fire(name, name, occurred_at, inv))
    return found


def conditions_met(definition: Definition, investment: Investment | None, outcome: str | None = None) -> bool:
    """Tell whether an investment (or a call's outcome) meets the trigger's conditions (no conditions: always)."""
    trigger = definition.trigger
    if trigger is None or trigger.conditions is None:
        return True
    if trigger.on == "crm_call":
        return outcome is not None and outcome in (trigger.conditions.outcomes or ())
    if investment is None:
        return False
    c = trigger.conditions
    if c.min_amount is not None and (investment.amount_fen is None or investment.amount_fen < c.min_amount):
        return False
    if c.min_term_days is not None and (investment.term_days is None or investment.term_days < c.min_term_days):
        return False
    return c.products is None or investment.product_id in c.products


def takes(definition: Definition, fire: Fire, *, status: str, approved_at: datetime | None,
          accepted_at: datetime) -> bool:
    """Tell whether a trigger campaign takes a fire (spec §2: active, window, after approval, no backfill)."""
    trigger = definition.trigger
    if trigger is None or trigger.on != fire.on or status != "active" or approved_at is None:
        return False
    if fire.occurred_at < approved_at or not window_contains(definition, fire.occurred_at):
        return False
    if accepted_at - fire.occurred_at > BACKFILL_LIMIT:
        return False
    return conditions_met(definition, fire.investment, fire.outcome)


def due_at(definition: Definition, accepted_at: datetime) -> datetime:
    """Return when a taken fire's rewards and messages are due: after the trigger's delay, counted from acceptance."""
    delay = definition.trigger.delay_minutes if definition.trigger is not None else None
    return accepted_at + timedelta(minutes=delay or 0)
