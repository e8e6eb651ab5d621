"""The OpenAPI description of `GET /api/v1/investors/{user_id}/rewards` (spec §4), merged into the API docs."""

from __future__ import annotations

from typing import Any

from growth.rewards.models import KINDS, STATUSES

REWARDS_PATH = "/api/v1/investors/{user_id}/rewards"
_REF = "#/components/schemas/"
_MONEY = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "description": "Yuan, e.g. \"50.00\"."}
_RATE = {"type": "string", "pattern": r"^[0-9]\.[0-9]{4}$", "description": "A fraction, e.g. \"0.0100\" = 1.00 %."}


def reward_schemas() -> dict[str, Any]:
    """Return the schemas the rewards operation refers to (the webhook's `data` is the same Reward)."""
    return {
        "Reward": {
            "type": "object",
            "required": ["id", "kind", "status", "amount", "conditions", "granted_at", "expires_at", "campaign_id"],
            "properties": {
                "id": {"type": "string", "pattern": "^rw_[1-9][0-9]*$"},
                "kind": {"type": "string", "enum": list(KINDS)},
                "status": {"type": "string", "enum": list(STATUSES)},
                "amount": {**_MONEY, "type": ["string", "null"],
                           "description": "Face value (cash, voucher, experience funds), what cashback pays back, "
                                          "a rate boost's cost once redeemed (null before)."},
                "conditions": {"type": "object", "properties": {
                    "min_investment": _MONEY, "max_investment": _MONEY, "min_term_days": {"type": "integer"}}},
                "granted_at": {"type": "string", "format": "date-time"},
                "expires_at": {"type": ["string", "null"], "format": "date-time",
                               "description": "Vouchers and rate boosts only: the end of their last valid day."},
                "campaign_id": {"type": ["integer", "null"]},
                "user_id": {"type": "string"},
                "annual_rate": _RATE, "rate": _RATE,
                "max_days": {"type": "integer"}, "days": {"type": "integer"}, "hold_days": {"type": "integer"},
                "valid_days": {"type": "integer"}, "principal": _MONEY,
                "investment_id": {"type": "string", "description": "The investment it was redeemed on (cashback: "
                                                                  "the investment it is on)."},
                "cost": {**_MONEY, "description": "What it costs in its current status (campaigns-api.md §7)."},
            },
        },
        "RewardList": {
            "type": "object", "required": ["rewards"],
            "properties": {"rewards": {"type": "array", "items": {"$ref": _REF + "Reward"}}},
        },
    }


def rewards_operation() -> dict[str, Any]:
    """Return the operation object of `GET /api/v1/investors/{user_id}/rewards`."""
    error = {"content": {"application/json": {"schema": {"$ref": _REF + "ApiError"}}}}
    return {
        "operationId": "listInvestorRewards",
        "tags": ["rewards"],
        "summary": "An investor's rewards, newest first",
        "description": "`usable` = granted and not expired. Needs a staff API token of a role that may view rewards.",
        "security": [{"bearerAuth": []}],
        "parameters": [
            {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 200},
             "description": "The platform's user id."},
            {"name": "status", "in": "query", "required": False,
             "schema": {"type": "string", "enum": ["usable", *STATUSES]}},
        ],
        "responses": {
            "200": {"description": "The rewards.",
                    "content": {"application/json": {"schema": {"$ref": _REF + "RewardList"}}}},
            "401": {"description": "No or an invalid bearer token."},
            "403": {"description": "The token's role may not view rewards."},
            "404": {"description": "No investor with this user id.", **error},
            "422": {"description": "An unknown status.", **error},
        },
    }
