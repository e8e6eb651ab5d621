"""The campaign life cycle of spec §3 as plain functions: which action leads where from which status.

draft → pending_approval → active (trigger campaigns) or scheduled → running → finished; paused from
active/scheduled/running and back; cancelled from any state but finished; a rejection returns it to
draft. An edit of anything but the name returns a non-draft campaign to draft.
"""

from __future__ import annotations

from typing import Any

PAUSABLE = frozenset({"active", "scheduled", "running"})
ENDED = frozenset({"finished", "cancelled"})


class WrongState(ValueError):
    """The action does not apply to a campaign in this status (HTTP 409)."""

    def __init__(self, action: str, status: str) -> None:
        super().__init__(f"{action} does not apply to a {status} campaign")
        self.action = action
        self.status = status


def after(action: str, status: str, *, scheduled: bool = False, paused_from: str | None = None) -> str:
    """Return the status a campaign in `status` takes after `action`; raise WrongState where it does not apply."""
    match action:
        case "submit" if status == "draft":
            return "pending_approval"
        case "approve" if status == "pending_approval":
            return "scheduled" if scheduled else "active"
        case "reject" if status == "pending_approval":
            return "draft"
        case "pause" if status in PAUSABLE:
            return "paused"
        case "resume" if status == "paused":
            return paused_from if paused_from in PAUSABLE else ("scheduled" if scheduled else "active")
        case "cancel" if status not in ENDED:
            return "cancelled"
        case "start" if status == "scheduled":
            return "running"
        case "finish" if status in ("running", "active", "scheduled"):
            return "finished"
    raise WrongState(action, status)


def after_edit(status: str, before: dict[str, Any], edited: dict[str, Any]) -> str:
    """Return the status after replacing the definition: unchanged for a draft or a rename, else draft."""
    if status in ENDED:
        raise WrongState("edit", status)
    if status == "draft":
        return "draft"
    rest_before = {k: v for k, v in before.items() if k != "name"}
    rest_after = {k: v for k, v in edited.items() if k != "name"}
    return status if rest_before == rest_after else "draft"
