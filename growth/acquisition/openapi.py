"""The OpenAPI description of `POST /api/v1/acquisition/costs` (campaigns-api.md §7), merged into the API docs."""

from __future__ import annotations

from typing import Any

from growth.acquisition.rules import MAX_NOTE
from growth.acquisition.services import MAX_API_COSTS, PSEUDO_CHANNEL_CODES
from growth.money import MONEY_OR_ZERO_PATTERN

COSTS_PATH = "/api/v1/acquisition/costs"
_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def cost_schemas() -> dict[str, Any]:
    """Return the schemas the costs operation refers to."""
    problem = {"type": "object", "required": ["path", "code", "message"],
               "properties": {"path": {"type": "string", "description": "The field of the cost: `date`, "
                                                                         "`channel_code`, `amount`, `note`."},
                              "code": {"type": "string", "enum": [
                                  "invalid_type", "invalid_date", "future_date", "required", "too_long",
                                  "invalid_amount", "unknown_channel", "pseudo_channel"]},
                              "message": {"type": "string"}}}
    return {
        "AcquisitionCost": {
            "type": "object",
            "required": ["date", "channel_code", "amount"],
            "properties": {
                "date": {"type": "string", "format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                         "description": "The business day (Asia/Shanghai), not after today.", "example": "2026-12-01"},
                "channel_code": {"type": "string", "minLength": 1, "maxLength": 64, "example": "baidu_sem",
                                 "description": "An existing acquisition channel's code (matched exactly, else "
                                                "ignoring case); not " + " or ".join(PSEUDO_CHANNEL_CODES) + "."},
                "amount": {"type": "string", "pattern": MONEY_OR_ZERO_PATTERN, "example": "6872.52",
                           "description": "What the channel cost that day, yuan, 0 or more, at most 2 decimals."},
                "note": {"type": ["string", "null"], "maxLength": MAX_NOTE, "description": "Optional."},
            },
        },
        "AcquisitionCostBatch": {
            "type": "object", "required": ["costs"],
            "properties": {"costs": {"type": "array", "maxItems": MAX_API_COSTS, "items": _ref("AcquisitionCost")}},
        },
        "AcquisitionCostResult": {
            "type": "object", "required": ["saved", "rejected"],
            "properties": {
                "saved": {"type": "integer", "minimum": 0,
                          "description": "Costs now stored as given (a replaced or unchanged one included)."},
                "rejected": {"type": "array", "items": {
                    "type": "object", "required": ["index", "errors"],
                    "properties": {"index": {"type": "integer", "minimum": 0,
                                             "description": "The cost's position in `costs`."},
                                   "errors": {"type": "array", "minItems": 1, "items": problem}}}},
            },
        },
    }


def costs_operation() -> dict[str, Any]:
    """Return the operation object of `POST /api/v1/acquisition/costs`."""
    return {
        "operationId": "pushAcquisitionCosts",
        "tags": ["acquisition"],
        "summary": "Store daily acquisition costs (an ad platform's export)",
        "description": (
            "One cost per (date, channel): a cost for a pair already stored replaces it (as the CSV import and the "
            "channel page do), and within one list the last one for a pair wins; each counts as saved. An unknown "
            "channel code and the attribution's pseudo-channels `organic` and `referral` are rejected, as is a "
            "future date; the other costs of the list are still stored. Every change is audited (`cost.set`). "
            f"At most {MAX_API_COSTS:,} costs a request. Who: marketers and admins."
        ),
        "security": [{"bearerAuth": []}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": _ref("AcquisitionCostBatch"),
            "example": {"costs": [{"date": "2026-12-01", "channel_code": "baidu_sem", "amount": "6872.52",
                                   "note": "百度推广后台导出"}]}}}},
        "responses": {
            "200": _json(_ref("AcquisitionCostResult"), "How many were saved, and the rejected ones by index."),
            "400": _json(_ref("ApiError"), 'The body is not {"costs": [...]} (`errors[0].code` is `malformed`).'),
            "401": _json(_ref("Error"), "No or an invalid bearer token."),
            "403": _json(_ref("Error"), "The token's role may not enter costs."),
            "413": _json(_ref("Error"), "The body is too large."),
            "422": _json(_ref("ApiError"), f"More than {MAX_API_COSTS:,} costs (`too_many`)."),
        },
    }
