"""Who a message goes to: the port through which channels reads investors' contact data.

`channels` imports only the kernel, so the investors module provides the directory and the
composition root registers it (`app.extensions[EXTENSION]`). Addresses are read when a message is
sent, so new contact data applies to messages already queued — the name too: messages are queued with a
name slot that delivery fills with `Recipient.name`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from flask import Flask
from sqlalchemy.orm import Session

EXTENSION = "channels.recipients"


@dataclass(frozen=True, slots=True)
class Recipient:
    """An investor's addresses per channel (sms/email/wechat), how each is shown masked, and their name."""

    investor_id: int
    user_id: str
    addresses: dict[str, str] = field(default_factory=dict)  # only the channels the investor has an address on
    masked: dict[str, str] = field(default_factory=dict)
    # False until the platform's registration has come: events may arrive in any order (events-api.md), so an
    # investment can make a message before the registration brings the phone. Delivery waits for it a while.
    registered: bool = True
    # Filled into the message's name slot when it is sent (`channels.templates.fill_name`): "" when unknown.
    name: str = ""


class Directory(Protocol):
    """Looks investors up for delivery, receipts and replies."""

    def recipients(self, ids: Sequence[int], *, session: Session) -> dict[int, Recipient]:
        """Return the recipients with these investor ids (missing ids are left out)."""
        ...

    def by_address(self, channel: str, address: str, *, session: Session) -> list[int]:
        """Return the ids of the investors with this address on a channel (a phone, an email, an openid)."""
        ...


def directory_of(app: Flask) -> Directory:
    """Return the app's directory (registered by the composition root)."""
    return app.extensions[EXTENSION]
