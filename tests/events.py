"""Helpers to build spec events and send them signed, as the platform does."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import orjson
from standardwebhooks import Webhook

from growth.config import TestConfig

_ids = itertools.count(1)


def event(type_: str, user_id: str, at: datetime | str, data: dict[str, Any] | None = None, *,
          event_id: str | None = None, **user: Any) -> dict[str, Any]:
    """Return one event object of the contract."""
    occurred = at if isinstance(at, str) else at.isoformat()
    body: dict[str, Any] = {"id": event_id or f"evt_t{next(_ids)}", "type": type_, "occurred_at": occurred,
                            "user": {"id": user_id, **user}}
    if data is not None:
        body["data"] = data
    return body


def investment(user_id: str, at: datetime, investment_id: str, amount: str = "1000.00", term_days: int = 30,
               rate: str = "0.0800", reward_ids: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    """Return an investment.created event (naming the rewards applied to it, when given)."""
    data: dict[str, Any] = {
        "investment_id": investment_id, "amount": amount,
        "product": {"id": f"p{term_days}", "name": f"{term_days}天标", "term_days": term_days, "annual_rate": rate},
    }
    if reward_ids is not None:
        data["reward_ids"] = reward_ids
    return event("investment.created", user_id, at, data, **kw)


def signed_headers(body: bytes, secret: str = TestConfig.WEBHOOK_SECRET, *, msg_id: str | None = None,
                   timestamp: datetime | None = None) -> dict[str, str]:
    """Return the Standard Webhooks headers for a body, signed by the official library."""
    msg_id = msg_id or f"msg_{next(_ids)}"
    ts = timestamp or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, ts, body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(ts.timestamp())), "webhook-signature": signature,
            "Content-Type": "application/json"}


def post_events(client: Any, events: list[dict[str, Any]] | dict[str, Any], **kw: Any) -> Any:
    """POST events signed like the platform; return the response."""
    payload = events if isinstance(events, dict) else {"events": events}
    body = orjson.dumps(payload)
    return client.post("/api/v1/events", data=body, headers=signed_headers(body, **kw))
