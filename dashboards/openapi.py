"""The OpenAPI description of `GET /api/v1/acquisition/economics` (campaigns-api.md §7) and
`GET /api/v1/dashboards/cohorts`, registered by the composition root (the kernel's description may not import
`dashboards`)."""

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
            "payback_days": {"type": ["integer", "null"], "minimum": 1,
                             "description": "⌈window_days × (cost + incentive_cost) ÷ (service-fee rate × "
                                            "annualised_amount)⌉: days of the platform's service fees, at the "
                                            "cohort's first-window pace, that repay what it cost; null unless "
                                            "GROWTH_ECONOMICS_SERVICE_FEE_RATE is set, or without a spend or an "
                                            "investment (beyond the contract)."},
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


FUNNEL_DETAILS_PATH = "/api/v1/dashboards/funnel-details"
_SECONDS = {"type": ["number", "null"], "minimum": 0}


def _funnel_details_schemas() -> dict[str, Any]:
    times = {"type": "object", "required": ["median_seconds", "p90_seconds"],
             "properties": {"median_seconds": {**_SECONDS, "description": "The median (mean of the two middle "
                                                                          "values of an even count)."},
                            "p90_seconds": {**_SECONDS, "description": "The nearest-rank 90th percentile."}}}
    group = {
        "type": "object",
        "required": ["key", "label", "registered", "first_investors", "first_investment_amount",
                     "first_investment_annualised", "time_to_convert"],
        "properties": {
            "key": {"type": "string"}, "label": {"type": "string"},
            "registered": {"type": "integer", "minimum": 0},
            "first_investors": {"type": "integer", "minimum": 0,
                                "description": "Members counted at the first-investment step."},
            "first_investment_amount": _money("Σ their first investments' amounts."),
            "first_investment_annualised": _money("Σ amount × term_days / 365 of those first investments."),
            "time_to_convert": {"type": "object", "additionalProperties": times,
                                "description": "Per step after `registered`: seconds from registration until the "
                                               "step and every earlier one had happened, over the members counted "
                                               "at it (null when nobody is)."},
            "clicks": {"type": "integer", "minimum": 0,
                       "description": "Tracking-link clicks on the range's days (the total and channel groups)."},
            "click_registrations": {"type": "integer", "minimum": 0,
                                    "description": "Of those clicks, how many became a registration within the "
                                                   "window of the click."},
        },
    }
    return {"FunnelDetailsGroup": group, "FunnelDetails": {
        "type": "object", "required": ["start", "end", "window_days", "group_by", "total", "groups"],
        "properties": {"start": {"type": "string", "format": "date"}, "end": {"type": "string", "format": "date"},
                       "window_days": {"type": "integer"}, "group_by": {"type": "string"},
                       "total": {"$ref": _REF + "FunnelDetailsGroup"},
                       "groups": {"type": "array", "items": {"$ref": _REF + "FunnelDetailsGroup"}}}}}


def _funnel_details_operation() -> dict[str, Any]:
    return {
        "operationId": "getFunnelDetails",
        "tags": ["dashboards"],
        "summary": "What the funnel's contract leaves out: money, times to convert, clicks",
        "description": "The same cohort, window and groups as `GET /api/v1/funnel` (same parameters).",
        "security": [{"bearerAuth": []}],
        "parameters": [
            {"name": "start", "in": "query", "required": False, "schema": {"type": "string", "format": "date"}},
            {"name": "end", "in": "query", "required": False, "schema": {"type": "string", "format": "date"}},
            {"name": "window_days", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 3650, "default": 30}},
            {"name": "group_by", "in": "query", "required": False,
             "schema": {"type": "string", "enum": ["none", "channel", "week", "campaign", "referral"],
                        "default": "none"}},
        ],
        "responses": {
            "200": _json({"$ref": _REF + "FunnelDetails"}, "The total and every group."),
            "400": _json({"$ref": _REF + "Error"}, "A malformed parameter; `field` names it."),
            "401": _json({"$ref": _REF + "Error"}, "No or an invalid bearer token."),
            "403": _json({"$ref": _REF + "Error"}, "The token's role may not view funnels."),
        },
    }


# ---------------------------------------------------------------- cohorts

COHORTS_PATH = "/api/v1/dashboards/cohorts"
_MONTH = {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}$"}


def _cohort_schemas() -> dict[str, Any]:
    cell = {
        "type": ["object", "null"],
        "description": "null: the month has not come yet.",
        "required": ["offset", "month", "investors", "rate", "incomplete"],
        "properties": {
            "offset": {"type": "integer", "minimum": 0, "description": "Months since the registration month (M0)."},
            "month": {**_MONTH, "description": "The calendar month (Asia/Shanghai)."},
            "investors": {"type": "integer", "minimum": 0,
                          "description": "Cohort members with an investment started in that month (one dated "
                                         "before its investor's registration counts in M0)."},
            "rate": {**_RATIO, "description": "investors / base, 4 decimals; null when the base is 0."},
            "incomplete": {"type": "boolean", "description": "The current month: more may still invest."},
        },
    }
    cohort = {
        "type": "object",
        "required": ["month", "registrations", "first_investors", "base", "cells"],
        "properties": {
            "month": {**_MONTH, "description": "The registration month (Asia/Shanghai)."},
            "registrations": {"type": "integer", "minimum": 0},
            "first_investors": {"type": "integer", "minimum": 0,
                                "description": "Cohort members who have invested at least once (ever)."},
            "base": {"type": "integer", "minimum": 0,
                     "description": "first_investors (base=investors) or registrations (base=registrations)."},
            "cells": {"type": "array", "items": {"$ref": _REF + "CohortCell"},
                      "description": "M0 … up to the current month of the range's first cohort."},
        },
    }
    month = {
        "type": "object",
        "required": ["month", "matured", "principal", "investors", "reinvested_investors", "reinvestments",
                     "reinvested_amount", "rate_by_count", "rate_by_amount", "incomplete"],
        "properties": {
            "month": {**_MONTH, "type": ["string", "null"], "description": "Maturity month; null for the total."},
            "matured": {"type": "integer", "minimum": 0,
                        "description": "Investments whose `investment.matured` time lies in the month."},
            "principal": _money("Σ their principal returned."),
            "investors": {"type": "integer", "minimum": 0, "description": "Distinct investors among them (the total "
                                                                          "sums the months)."},
            "reinvested_investors": {"type": "integer", "minimum": 0,
                                     "description": "Those with a re-investment attributed to the month."},
            "reinvestments": {"type": "integer", "minimum": 0,
                              "description": "New investments started within `days` × 24 h after a maturity, each "
                                             "attributed to its investor's latest maturity at or before its start."},
            "reinvested_amount": _money("Σ those new investments' amounts."),
            "rate_by_count": {**_RATIO, "description": "reinvested_investors / investors."},
            "rate_by_amount": {**_RATIO, "description": "reinvested_amount / principal."},
            "incomplete": {"type": "boolean", "description": "Some of the month's windows are still open."},
        },
    }
    report = {
        "type": "object",
        "required": ["from", "to", "base", "current_month", "columns", "cohorts", "reinvestment"],
        "properties": {
            "from": _MONTH, "to": _MONTH, "channel": {"type": ["string", "null"]},
            "base": {"type": "string", "enum": ["investors", "registrations"]},
            "current_month": _MONTH,
            "columns": {"type": "integer", "minimum": 1, "description": "Cells per cohort."},
            "cohorts": {"type": "array", "items": {"$ref": _REF + "Cohort"}, "description": "Oldest first."},
            "reinvestment": {"type": "object", "required": ["days", "months", "total"], "properties": {
                "days": {"type": "integer", "minimum": 1},
                "months": {"type": "array", "items": {"$ref": _REF + "MaturityMonth"}},
                "total": {"$ref": _REF + "MaturityMonth"},
            }},
        },
    }
    return {"CohortCell": cell, "Cohort": cohort, "MaturityMonth": month, "CohortReport": report}


def _cohorts_operation() -> dict[str, Any]:
    return {
        "operationId": "getCohorts",
        "tags": ["dashboards"],
        "summary": "Repeat-investment retention by registration month, and re-investment at maturity",
        "description": (
            "Cohorts are the investors registered (Asia/Shanghai) in each month of [from, to]. A cell counts the "
            "cohort's investors with an investment started in the month `offset` months after registering, as a "
            "share of the cohort's first investors (`base=investors`) or registrations (`base=registrations`). "
            "Re-investment uses the same months as maturity months. "
            "Who: staff whose role may view funnels (analysts, marketers, approvers, admins)."
        ),
        "security": [{"bearerAuth": []}],
        "parameters": [
            {"name": "from", "in": "query", "required": False, "schema": _MONTH,
             "description": "First registration month; default 11 months before the current one."},
            {"name": "to", "in": "query", "required": False, "schema": _MONTH,
             "description": "Last registration month; default (and at the latest) the current month; at most 60 "
                            "months after `from`."},
            {"name": "channel", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "An acquisition channel's code (`organic` includes investors without one)."},
            {"name": "base", "in": "query", "required": False,
             "schema": {"type": "string", "enum": ["investors", "registrations"], "default": "investors"}},
            {"name": "days", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 365, "default": 7},
             "description": "The re-investment window after a maturity, in days of 24 h."},
        ],
        "responses": {
            "200": _json({"$ref": _REF + "CohortReport"}, "The retention table and re-investment by month."),
            "401": _json({"$ref": _REF + "Error"}, "No or an invalid bearer token."),
            "403": _json({"$ref": _REF + "Error"}, "The token's role may not view funnels."),
            "422": _json({"$ref": _REF + "ApiError"}, "A bad parameter: every problem under `errors`, its `path` "
                                                       "the parameter."),
        },
    }


# ---------------------------------------------------------------- home KPIs and referral growth (issue 12)

KPIS_PATH = "/api/v1/dashboards/kpis"
REFERRALS_PATH = "/api/v1/dashboards/referrals"
_SIGNED_MONEY = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$"}
_KPI_VALUE = {"oneOf": [{"type": "integer"}, _SIGNED_MONEY],
              "description": "A count (registrations, first_investors) or yuan (volume, incentive_spend)."}


def _kpi_schemas() -> dict[str, Any]:
    day = {"type": "object", "required": ["day", "registrations", "first_investors", "volume", "incentive_spend"],
           "properties": {"day": {"type": "string", "format": "date", "description": "An Asia/Shanghai day."},
                          "registrations": {"type": "integer", "minimum": 0},
                          "first_investors": {"type": "integer", "minimum": 0},
                          "volume": _MONEY, "incentive_spend": _MONEY}}
    kpi = {"type": "object", "required": ["key", "value", "previous", "delta", "change"],
           "properties": {
               "key": {"type": "string", "enum": ["registrations", "first_investors", "volume", "incentive_spend"]},
               "value": _KPI_VALUE, "previous": _KPI_VALUE, "delta": _KPI_VALUE,
               "change": {**_RATIO, "description": "delta / previous, 4 decimals half-up; null when previous is 0."}}}
    report = {"type": "object", "required": ["period", "start", "end", "as_of", "previous_start", "previous_end",
                                             "previous_as_of", "kpis", "days", "previous_days"],
              "properties": {
                  "period": {"type": "string", "enum": ["today", "7d", "30d", "this_month"]},
                  "start": {"type": "string", "format": "date"}, "end": {"type": "string", "format": "date"},
                  "as_of": {"type": "string", "format": "date-time",
                            "description": "The current period runs from start's midnight (Asia/Shanghai) to here."},
                  "previous_start": {"type": "string", "format": "date"},
                  "previous_end": {"type": "string", "format": "date"},
                  "previous_as_of": {"type": "string", "format": "date-time",
                                     "description": "The previous period is as long, ending here."},
                  "kpis": {"type": "array", "items": {"$ref": _REF + "Kpi"}},
                  "days": {"type": "array", "items": {"$ref": _REF + "KpiDay"}},
                  "previous_days": {"type": "array", "items": {"$ref": _REF + "KpiDay"}}}}
    referrer = {"type": "object", "required": ["investor_id", "user_id", "name", "phone", "invites", "registrations",
                                               "qualified", "confirmed", "rewards_cost"],
                "properties": {
                    "investor_id": {"type": "integer"}, "user_id": {"type": "string"},
                    "name": {"type": "string", "description": "Masked (张**)."},
                    "phone": {"type": "string", "description": "Masked (+86 138****8000)."},
                    "invites": {"type": "integer", "minimum": 0}, "registrations": {"type": "integer", "minimum": 0},
                    "qualified": {"type": "integer", "minimum": 0}, "confirmed": {"type": "integer", "minimum": 0},
                    "rewards_cost": _money("Σ the current cost of the rewards granted in the range for this referrer's "
                                           "referrals (cause referral:<referee id>), either side.")}}
    week = {"type": "object", "properties": {
        "week": {"type": "string"}, "week_start": {"type": "string", "format": "date"},
        "invites": {"type": "integer"}, "registrations": {"type": "integer"}, "qualified": {"type": "integer"},
        "confirmed": {"type": "integer"}, "rewarded": {"type": ["integer", "null"]}, "cohort": {"type": "integer"},
        "referred_by_cohort": {"type": "integer"},
        "k_factor": {"type": ["string", "null"], "pattern": r"^[0-9]+\.[0-9]{4}$"}}}
    fraud = {"type": "object", "required": ["referrals", "flagged", "in_review", "blocked", "rejected", "rejected_by",
                                            "reasons"],
             "properties": {
                 "referrals": {"type": "integer", "description": "Referrals whose referee registered in the range."},
                 "flagged": {"type": "integer", "description": "… carrying any fraud reason."},
                 "in_review": {"type": "integer", "description": "… held for a staff decision now."},
                 "blocked": {"type": "integer", "description": "… rejected at once by a BLOCK reason."},
                 "rejected": {"type": "integer", "description": "… rejected for any reason."},
                 "rejected_by": {"type": "object", "additionalProperties": {"type": "integer"}},
                 "reasons": {"type": "array", "items": {"type": "object", "required": ["code", "kind", "referrals"],
                                                        "properties": {
                                                            "code": {"type": "string"},
                                                            "kind": {"type": "string",
                                                                     "enum": ["block", "flag", "other"]},
                                                            "referrals": {"type": "integer"}}}}}}
    growth = {"type": "object", "required": ["start", "end", "weeks", "top_referrers", "fraud"],
              "properties": {"start": {"type": "string", "format": "date"},
                             "end": {"type": "string", "format": "date"},
                             "weeks": {"type": "array", "items": {"$ref": _REF + "ReferralWeek"}},
                             "top_referrers": {"type": "array", "items": {"$ref": _REF + "TopReferrer"}},
                             "fraud": {"$ref": _REF + "ReferralFraud"}}}
    return {"KpiDay": day, "Kpi": kpi, "KpiReport": report, "TopReferrer": referrer, "ReferralWeek": week,
            "ReferralFraud": fraud, "ReferralGrowth": growth}


def _errors(forbidden: str) -> dict[str, Any]:
    return {"401": _json({"$ref": _REF + "Error"}, "No or an invalid bearer token."),
            "403": _json({"$ref": _REF + "Error"}, forbidden),
            "422": _json({"$ref": _REF + "ApiError"}, "A bad parameter: every problem under `errors`, its `path` "
                                                       "the parameter.")}


def _kpis_operation() -> dict[str, Any]:
    return {
        "operationId": "getHomeKpis", "tags": ["dashboards"],
        "summary": "Home KPIs: registrations, first investors, volume invested, incentive spend vs the previous period",
        "description": (
            "Registrations (Asia/Shanghai day of `registered`), first investors (of their first investment), volume "
            "(Σ amounts of investments started), incentive spend (Σ the current ledger cost of rewards granted) for "
            "the period from its first day's midnight to now, against the period of the same length just before "
            "it, with both periods' daily figures. Who: analysts, marketers, approvers, admins (`kpis.view`)."),
        "security": [{"bearerAuth": []}],
        "parameters": [{"name": "period", "in": "query", "required": False,
                        "schema": {"type": "string", "enum": ["today", "7d", "30d", "this_month"], "default": "7d"}}],
        "responses": {"200": _json({"$ref": _REF + "KpiReport"}, "The KPIs and their days."),
                      **_errors("The token's role may not view the KPIs (agents).")},
    }


def _referrals_operation() -> dict[str, Any]:
    day = {"type": "string", "format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
    return {
        "operationId": "getReferralGrowth", "tags": ["dashboards"],
        "summary": "Referral growth: weekly figures and K-factor, top referrers, fraud flags",
        "description": (
            "Weeks: ISO weeks (Asia/Shanghai) covering [start, end]. Top referrers (20, by referred registrations): "
            "each figure counted in the range by when it happened; names and phones masked. Fraud: referrals whose "
            "referee registered in the range, by reason and outcome. Who: every staff role (`referrals.view`)."),
        "security": [{"bearerAuth": []}],
        "parameters": [
            {"name": "start", "in": "query", "required": False, "schema": day,
             "description": "First day; default 11 weeks before today (twelve weeks up to today)."},
            {"name": "end", "in": "query", "required": False, "schema": day, "description": "Last day; default today."},
        ],
        "responses": {"200": _json({"$ref": _REF + "ReferralGrowth"}, "The referral program's growth."),
                      **_errors("The token's role may not view the referral program.")},
    }


# ---------------------------------------------------------------- campaign results across campaigns

CAMPAIGNS_PATH = "/api/v1/dashboards/campaigns"
_SIGNED_MONEY_OR_NULL = {"type": ["string", "null"], "pattern": r"^-?[0-9]+\.[0-9]{2}$"}


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
            "incremental_annualised": {**_SIGNED_MONEY_OR_NULL,
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


def contribution() -> Contribution:
    """Return the dashboards' part of the API description."""
    return Contribution(
        paths={ECONOMICS_PATH: {"get": _operation()}, KPIS_PATH: {"get": _kpis_operation()},
               REFERRALS_PATH: {"get": _referrals_operation()},
               FUNNEL_DETAILS_PATH: {"get": _funnel_details_operation()},
               CAMPAIGNS_PATH: {"get": _campaigns_operation()}, COHORTS_PATH: {"get": _cohorts_operation()}},
        schemas={**_schemas(), **_kpi_schemas(), **_funnel_details_schemas(), **_campaigns_schemas(),
                 **_cohort_schemas()})
