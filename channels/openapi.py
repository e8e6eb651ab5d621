"""The OpenAPI description of `GET /api/v1/messages` (spec campaigns-api.md §5), merged in by growth.events.openapi."""

from __future__ import annotations

from typing import Any

from channels.models import CLASS_LABELS, MESSAGE_CHANNELS, STATUSES

MESSAGES_PATH = "/api/v1/messages"
_REF = "#/components/schemas/"


def _time(description: str) -> dict[str, Any]:
    return {"type": ["string", "null"], "format": "date-time", "description": description}


def message_schemas() -> dict[str, Any]:
    """Return the schemas the messages operation refers to."""
    return {
        "Message": {
            "type": "object",
            "required": ["id", "campaign_id", "user_id", "channel", "class", "status", "attempts", "error",
                         "created_at", "sent_at"],
            "properties": {
                "id": {"type": "integer"},
                "campaign_id": {"type": ["integer", "null"]},
                "user_id": {"type": ["string", "null"], "description": "The platform's user id (null for the "
                                                                       "platform webhook)."},
                "channel": {"type": "string", "enum": list(MESSAGE_CHANNELS)},
                "class": {"type": "string", "enum": list(CLASS_LABELS)},
                "status": {"type": "string", "enum": list(STATUSES)},
                "attempts": {"type": "integer", "minimum": 0},
                "error": {"type": ["string", "null"], "description": "The last error; contact data in it is "
                                                                     "hidden from roles without investors.pii."},
                "created_at": {"type": "string", "format": "date-time"},
                "sent_at": _time("When the provider accepted it."),
                "error_code": {"type": ["string", "null"]},
                "delivered_at": _time("When a delivery receipt arrived."),
                "recipient": {"type": ["string", "null"], "description": "The recipient, masked."},
            },
        },
        "MessagePage": {
            "type": "object",
            "required": ["messages", "next"],
            "properties": {
                "messages": {"type": "array", "items": {"$ref": _REF + "Message"}},
                "next": {"type": ["string", "null"],
                         "description": "The URL of the following page (same filters, a cursor); null on the last."},
            },
        },
        "ApiError": {
            "type": "object",
            "required": ["error", "errors"],
            "properties": {
                "error": {"type": "string"},
                "errors": {"type": "array", "items": {
                    "type": "object", "required": ["path", "code", "message"],
                    "properties": {"path": {"type": "string"}, "code": {"type": "string"},
                                   "message": {"type": "string"}}}},
            },
        },
    }


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _REF + "ApiError"}}}}


def messages_operation() -> dict[str, Any]:
    """Return the operation object of `GET /api/v1/messages`."""
    return {
        "operationId": "listMessages",
        "tags": ["messages"],
        "summary": "The outbox: messages to investors and the platform, newest first",
        "description": ("Pages by an opaque cursor (keyset on the id, newest first): follow `next` until it is null. "
                        "Needs a staff API token of a role that may view messages."),
        "security": [{"bearerAuth": []}],
        "parameters": [
            {"name": "campaign_id", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}},
            {"name": "user_id", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 200},
             "description": "The platform's user id."},
            {"name": "status", "in": "query", "required": False,
             "schema": {"type": "string", "enum": list(STATUSES)}},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "From a previous page's `next`."},
        ],
        "responses": {
            "200": {"description": "One page of messages.",
                    "content": {"application/json": {"schema": {"$ref": _REF + "MessagePage"}}}},
            "400": _error("A malformed campaign_id, limit or cursor."),
            "401": {"description": "No or an invalid bearer token."},
            "403": {"description": "The token's role may not view messages."},
            "422": _error("An unknown status."),
        },
    }
