"""The attribution projection: which acquisition channel brought each investor.

The earliest `user.registered` decides (on a tie, its data, not the arrival order): a known click's
channel, else the channel of the code given (an unknown code creates the channel, so nothing is lost),
else the referral channel when the referrer is known, else organic. Investors whose referrer appears
later are attributed again then (the referrals projection finds them and links the referrer first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from growth.acquisition.models import AcquisitionChannel, Click
from growth.db import table_of
from growth.investors.models import Investor
from growth.investors.rules import attribution_kind
from growth.projections import LoggedEvent, Projection

REFERRAL_CHANNEL = ("referral", "邀请好友", "referral")
ORGANIC_CHANNEL = ("organic", "自然流量", "organic")
_INVESTORS = table_of(Investor)
_CHANNELS = table_of(AcquisitionChannel)
_CLICKS = table_of(Click)
# (event data field, investor column): the registration's data, kept from the earliest registration.
_REGISTRATION_FIELDS = (("click_id", "click_id"), ("channel_code", "channel_code_given"),
                        ("referral_code", "referral_code_used"), ("device_id", "device_id"), ("ip", "registration_ip"))


def _registration_key(values: dict[str, Any], *, stored: bool = False) -> tuple[str, ...]:
    """Return a registration's data as a sortable key (from event data, or as stored on the investor row)."""
    return tuple(str(values.get(column if stored else name) or "") for name, column in _REGISTRATION_FIELDS)


class AttributionProjection(Projection):
    """Keeps the earliest registration's data and derives the investor's acquisition channel from it."""

    name = "attribution"
    after = ("investors", "referrals")  # reads the rows the first loads and the referrer the second links
    columns = {_INVESTORS: (*(column for _name, column in _REGISTRATION_FIELDS), "channel_id")}
    handles = frozenset({"user.registered"})

    def load(self, events: Sequence[LoggedEvent]) -> None:
        # The earliest registration known before this batch; the investors projection moves the
        # shared registered_at while events apply, so the comparison keeps its own copy.
        self._registered_at = {uid: inv["registered_at"] for uid, inv in self.batch.investors.items()}

    def apply(self, event: LoggedEvent) -> None:
        uid, at = event.user_id, event.occurred_at
        inv = self.batch.investors[uid]
        data = event.body.get("data") or {}
        current = self._registered_at.get(uid, inv["registered_at"])
        # On a tie the registration data decides, not the arrival order (order-free attribution).
        if current is None or at < current or (
                at == current and _registration_key(data) < _registration_key(inv, stored=True)):
            for name, column in _REGISTRATION_FIELDS:
                inv[column] = data.get(name)
            self.batch.reattribute.add(uid)
        if current is None or at < current:
            self._registered_at[uid] = at

    def derive(self) -> None:
        """Decide each (re)registered investor's channel, in the spec's order."""
        batch = self.batch
        if not batch.reattribute:
            return
        s = batch.session
        invs = [batch.investors[uid] for uid in sorted(batch.reattribute)]
        click_ids = sorted({i["click_id"] for i in invs if i["click_id"]})
        click_channel: dict[str, int] = {}
        for clause in batch.where_in(_CLICKS.c.click_id, click_ids):
            click_channel.update(s.execute(select(_CLICKS.c.click_id, _CLICKS.c.channel_id).where(clause)).all())
        channels: dict[str, int] = dict(s.execute(select(_CHANNELS.c.code, _CHANNELS.c.id)).all())
        for inv in invs:
            kind = attribution_kind(click_channel=inv["click_id"] in click_channel,
                                    channel_code=inv["channel_code_given"],
                                    referrer_known=inv["referrer_id"] is not None)
            if kind == "click":
                inv["channel_id"] = click_channel[inv["click_id"]]
            elif kind == "code":
                code = inv["channel_code_given"][:64]
                inv["channel_id"] = self._channel(channels, code, code, "other", auto=True)
            elif kind == "referral":
                inv["channel_id"] = self._channel(channels, *REFERRAL_CHANNEL, auto=False)
            else:
                inv["channel_id"] = self._channel(channels, *ORGANIC_CHANNEL, auto=False)

    def _channel(self, channels: dict[str, int], code: str, name: str, kind: str, *, auto: bool) -> int:
        """Return the id of a code's channel, creating it (named after the code) so nothing is lost."""
        channel_id = channels.get(code)
        if channel_id is None:
            channel = AcquisitionChannel(code=code, name=name, kind=kind, auto_created=auto, owner="", notes="",
                                         active=True)
            self.batch.session.add(channel)
            self.batch.session.flush()
            channel_id = channels[code] = channel.id
        return channel_id
