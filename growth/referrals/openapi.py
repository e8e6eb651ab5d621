"""The OpenAPI description of `GET /api/v1/referral-codes/{code}` (spec campaigns-api.md §4), merged in by
growth.events.openapi."""

from __future__ import annotations

from typing import Any

REFERRAL_CODE_PATH = "/api/v1/referral-codes/{code}"


def referral_code_schemas() -> dict[str, Any]:
    """Return the schema the operation answers with."""
    return {
        "ReferralCode": {
            "type": "object",
            "required": ["valid"],
            "properties": {
                "valid": {"type": "boolean"},
                "referrer": {"type": "string", "description": "The code owner's platform user id (when valid)."},
            },
        },
    }


def referral_code_operation() -> dict[str, Any]:
    """Return the operation object of `GET /api/v1/referral-codes/{code}`."""
    return {
        "operationId": "checkReferralCode",
        "tags": ["referrals"],
        "summary": "Whether a referral code is valid, and whose it is",
        "description": "Case-insensitive. An unknown code is not an error: 200 with `{\"valid\": false}`.",
        "security": [{"bearerAuth": []}],
        "parameters": [{"name": "code", "in": "path", "required": True,
                        "schema": {"type": "string", "maxLength": 200}}],
        "responses": {
            "200": {"description": "`{\"valid\": true, \"referrer\": \"u_10023\"}` or `{\"valid\": false}`.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReferralCode"}}}},
            "401": {"description": "No or an invalid bearer token."},
            "403": {"description": "The token's role may not view referrals."},
        },
    }
