"""The OpenAPI description of `GET /api/v1/acquisition/economics` (campaigns-api.md §7) and
`GET /api/v1/dashboards/cohorts`, registered by the composition root (the kernel's description may not import
`dashboards`)."""

from __future__ import annotations

from typing import Any

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


def contribution() -> Contribution:
    """Return the dashboards' part of the API description."""
    return Contribution(paths={ECONOMICS_PATH: {"get": _operation()}, COHORTS_PATH: {"get": _cohorts_operation()}},
                        schemas=_schemas() | _cohort_schemas())
