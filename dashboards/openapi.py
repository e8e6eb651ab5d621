"""The OpenAPI description of `GET /api/v1/acquisition/economics` (campaigns-api.md §7), registered by the
composition root (the kernel's description may not import `dashboards`)."""

from __future__ import annotations

from typing import Any

from campaigns.definition import CAMPAIGN_TYPES
from campaigns.models import STATUSES
from dashboards.campaign_results import MAX_PER_PAGE, ORDERS, PER_PAGE, SORTS
from growth.acquisition.rules import PERIODS
from growth.events.openapi import Contribution

ECONOMICS_PATH = "/api/v1/acquisition/economics"
_REF = "#/components/schemas/"
_MONEY = {"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$"}
_RATIO = {"type": ["string", "null"], "pattern": r"^-?[0-9]+\.[0-9]{4}$"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _money(description: str, *, nullable: bool = False) -> dict[str, Any]:
    return {**_MONEY, "type": ["string", "null"] if nullable else "string", "description": description}


def _schemas() -> dict[str, Any]:
    row = {
        "type": "object",
        "required": ["code", "label", "cost", "clicks", "registrations", "first_investors", "first_investment_amount",
                     "annualised_amount", "incentive_cost", "cac", "cost_per_registration"],
        "properties": {
            "code": {"type": "string", "description": "The channel's code (`organic`, `referral` included); "
                                                      "`total` for the total."},
            "label": {"type": "string", "description": "The channel's name."},
            "cost": _money("Σ the channel's daily costs dated in [start, end]."),
            "clicks": {"type": "integer", "minimum": 0, "description": "Its tracking-link clicks in [start, end]."},
            "registrations": {"type": "integer", "minimum": 0, "description": "The cohort's size."},
            "first_investors": {"type": "integer", "minimum": 0,
                                "description": "Cohort members whose first investment is within the window."},
            "first_investment_amount": _money("Σ those first investments' amounts."),
            "annualised_amount": _money("Σ amount × term_days / 365 over every investment of the cohort started "
                                        "within the window of its investor's registration."),
            "incentive_cost": _money("Σ the current cost (campaigns-api.md §2) of the rewards granted to the cohort "
                                     "within the window: cash and experience funds, vouchers and rate boosts when "
                                     "redeemed, cashback unless clawed back; revoked or expired rewards cost "
                                     "nothing."),
            "cac": _money("cost / first_investors; null when there is none.", nullable=True),
            "cost_per_registration": _money("cost / registrations; null when there is none.", nullable=True),
            "annualised_per_yuan": {**_RATIO, "description": "annualised_amount / cost, 4 decimals; null without a "
                                                             "cost (beyond the contract)."},
            "net_roi": {**_RATIO, "description": "(annualised_amount − cost − incentive_cost) / (cost + "
                                                 "incentive_cost), 4 decimals; null when both are 0 (beyond the "
                                                 "contract)."},
            "registrations_window_open": {"type": "integer", "minimum": 0,
                                          "description": "Cohort members registered less than window_days ago: "
                                                         "their figures may still grow (beyond the contract)."},
        },
    }
    return {
        "ChannelEconomics": row,
        "ChannelEconomicsReport": {
            "type": "object",
            "required": ["window_days", "channels", "total"],
            "properties": {
                "start": {"type": "string", "format": "date"},
                "end": {"type": "string", "format": "date"},
                "window_days": {"type": "integer", "minimum": 1},
                "channels": {"type": "array", "items": {"$ref": _REF + "ChannelEconomics"},
                             "description": "Every channel with a cost, a click or a registration, by code."},
                "total": {"$ref": _REF + "ChannelEconomics"},
            },
        },
    }


def _operation() -> dict[str, Any]:
    day = {"type": "string", "format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
    return {
        "operationId": "getChannelEconomics",
        "tags": ["dashboards"],
        "summary": "Channel economics: cost, clicks, registrations, first investors, CAC, incentives",
        "description": (
            "The cohort is the investors whose `registered` date (Asia/Shanghai) lies in [start, end], by the "
            "funnel's attribution. \"Within `window_days`\" is the funnel's rule: at most `window_days` × 24 h after "
            "`registered` (a step dated before `registered` counts). Every money figure is rounded half-up to the "
            "fen once, at the end; `total` is computed from the exact sums, not from the rounded rows. "
            "Who: staff whose role may view funnels (analysts, marketers, approvers, admins)."
        ),
        "security": [{"bearerAuth": []}],
        "parameters": [
            {"name": "start", "in": "query", "required": False, "schema": day,
             "description": "First registration day; default 29 days before today; 2000-01-01 at the earliest."},
            {"name": "end", "in": "query", "required": False, "schema": day,
             "description": "Last registration day, inclusive; default today; 2099-12-31 at the latest."},
            {"name": "window_days", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 3650, "default": 30}},
        ],
        "responses": {
            "200": _json({"$ref": _REF + "ChannelEconomicsReport"}, "One row per channel and the total."),
            "401": _json({"$ref": _REF + "Error"}, "No or an invalid bearer token."),
            "403": _json({"$ref": _REF + "Error"}, "The token's role may not view funnels."),
            "422": _json({"$ref": _REF + "ApiError"}, "A bad parameter (a malformed or out-of-range date, start "
                                                       "after end, window_days out of range): every problem under "
                                                       "`errors`, its `path` the parameter."),
        },
    }


def contribution() -> Contribution:
    """Return the dashboards' part of the API description."""
    return Contribution(paths={ECONOMICS_PATH: {"get": _operation()}, CAMPAIGNS_PATH: {"get": _campaigns_operation()}},
                        schemas={**_schemas(), **_campaigns_schemas()})


# ---------------------------------------------------------------- campaign results across campaigns

CAMPAIGNS_PATH = "/api/v1/dashboards/campaigns"
_SIGNED_MONEY = {"type": ["string", "null"], "pattern": r"^-?[0-9]+\.[0-9]{2}$"}


def _campaigns_schemas() -> dict[str, Any]:
    interval = {
        "type": ["object", "null"], "required": ["value", "low", "high"],
        "description": "A fraction with its 95 % interval (4 decimals); null when nobody is there to count.",
        "properties": {k: {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{4}$"} for k in ("value", "low", "high")},
    }
    side = {
        "type": "object",
        "required": ["entries", "people", "investors", "rate", "amount", "annualised_amount"],
        "properties": {
            "entries": {"type": "integer", "minimum": 0, "description": "Entries of the period on this side."},
            "people": {"type": "integer", "minimum": 0, "description": "Distinct investors among them."},
            "investors": {"type": "integer", "minimum": 0,
                          "description": "Of them, those with an investment started at or after their first entry "
                                         "of the period and before the period's end."},
            "rate": {**interval, "description": "investors / people with its Wald 95 % interval, clipped to [0, 1]."},
            "amount": _money("Σ those investments' amounts."),
            "annualised_amount": _money("Σ amount × term_days / 365 of those investments."),
        },
    }
    row = {
        "type": "object",
        "required": ["id", "name", "type", "status", "members", "treated", "holdout", "granted", "messages", "rewards",
                     "invested", "lift", "incremental_annualised", "incremental_annualised_per_yuan"],
        "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"},
            "type": {"type": "string", "description": "The campaign's type (campaigns-api.md §2)."},
            "status": {"type": "string", "description": "The campaign's status now (campaigns-api.md §3)."},
            "first_entered_at": {"type": ["string", "null"], "format": "date-time"},
            "last_entered_at": {"type": ["string", "null"], "format": "date-time"},
            "members": {"type": "integer", "minimum": 0, "description": "Entries of the period (treated + holdout)."},
            "treated": {"type": "integer", "minimum": 0}, "holdout": {"type": "integer", "minimum": 0},
            "granted": {"type": "integer", "minimum": 0, "description": "Entries whose reward list was granted."},
            "messages": {"type": "object", "description": "Messages to people (SMS, email, WeChat) of the entries: "
                                                          "every one, those sent (sent or delivered), those with a "
                                                          "delivery receipt.",
                         "properties": {k: {"type": "integer", "minimum": 0} for k in ("total", "sent", "delivered")}},
            "rewards": {"type": "object", "description": "Rewards of the entries (a referral's referrer included), "
                                                         "every one granted, those redeemed, their current cost.",
                        "properties": {"granted": {"type": "integer"}, "redeemed": {"type": "integer"},
                                       "cost": _money("Σ the rewards' current cost (campaigns-api.md §2).")}},
            "invested": {"type": "object", "properties": {"treated": {"$ref": _REF + "CampaignResultsSide"},
                                                          "holdout": {"$ref": _REF + "CampaignResultsSide"}}},
            "lift": {**interval, "description": "Treated rate − holdout rate with its 95 % interval (normal "
                                                "approximation, unpooled); null without people on both sides."},
            "incremental_annualised": {**_SIGNED_MONEY,
                                       "description": "treated annualised − holdout annualised × treated people / "
                                                      "holdout people, rounded half away from zero; null without "
                                                      "people on both sides."},
            "incremental_annualised_per_yuan": {**_RATIO, "description": "incremental_annualised / rewards.cost, "
                                                                         "4 decimals; null without either."},
        },
    }
    return {
        "CampaignResultsSide": side,
        "CampaignResultsRow": row,
        "CampaignResultsReport": {
            "type": "object",
            "required": ["start", "end", "page", "per_page", "total", "campaigns", "totals"],
            "properties": {
                "start": {"type": "string", "format": "date"}, "end": {"type": "string", "format": "date"},
                "type": {"type": ["string", "null"]}, "status": {"type": ["string", "null"]},
                "sort": {"type": "string"}, "order": {"type": "string", "enum": ["asc", "desc"]},
                "page": {"type": "integer", "minimum": 1}, "per_page": {"type": "integer", "minimum": 1},
                "total": {"type": "integer", "minimum": 0, "description": "Campaigns of the filter, every page."},
                "campaigns": {"type": "array", "items": {"$ref": _REF + "CampaignResultsRow"}},
                "totals": {"type": "object", "description": "Over every page: campaigns, members, cost, and the "
                                                            "incremental annualised amount of the campaigns with "
                                                            "both sides, with its ratio to their cost."},
            },
        },
    }


def _campaigns_operation() -> dict[str, Any]:
    day = {"type": "string", "format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
    return {
        "operationId": "getCampaignResults",
        "tags": ["dashboards"],
        "summary": "Campaign results across campaigns: treated vs holdout, lift with its 95 % interval, incremental "
                   "annualised investment per yuan of incentive cost",
        "description": (
            "One row per campaign with an entry on an Asia/Shanghai day of the period. Figures are those of the "
            "period's entries; messages and rewards belong to an entry by its cause. An investment counts when it "
            "started at or after the investor's first entry of the period and before the period's end. "
            "Who: staff whose role may view campaigns."
        ),
        "security": [{"bearerAuth": []}],
        "parameters": [
            {"name": "period", "in": "query", "required": False, "schema": {"type": "string", "enum": list(PERIODS)},
             "description": "A preset period of entry (default 30d); `custom` (or no period with start and end) "
                            "takes start and end."},
            {"name": "start", "in": "query", "required": False, "schema": day},
            {"name": "end", "in": "query", "required": False, "schema": day},
            {"name": "type", "in": "query", "required": False,
             "schema": {"type": "string", "enum": list(CAMPAIGN_TYPES)}},
            {"name": "status", "in": "query", "required": False,
             "schema": {"type": "string", "enum": list(STATUSES)}},
            {"name": "sort", "in": "query", "required": False,
             "schema": {"type": "string", "enum": list(SORTS), "default": "members"},
             "description": "Rows without a value (no holdout, no cost) come last either way."},
            {"name": "order", "in": "query", "required": False,
             "schema": {"type": "string", "enum": list(ORDERS), "default": "desc"}},
            {"name": "page", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "default": 1}},
            {"name": "per_page", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": PER_PAGE}},
        ],
        "responses": {
            "200": _json({"$ref": _REF + "CampaignResultsReport"}, "One page of campaigns and the totals."),
            "401": _json({"$ref": _REF + "Error"}, "No or an invalid bearer token."),
            "403": _json({"$ref": _REF + "Error"}, "The token's role may not view campaigns."),
            "422": _json({"$ref": _REF + "ApiError"}, "A bad parameter: every problem under `errors`, its `path` "
                                                       "the parameter."),
        },
    }
