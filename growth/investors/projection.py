"""Project platform events onto investors, investments and fund movements, one batch at a time.

Every rule is order-free — milestones are the earliest occurrence, profile fields the latest,
totals are recomputed from the investments — so replaying the log in any order gives one state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from growth import signals
from growth.acquisition.models import AcquisitionChannel, Click
from growth.investors.models import MILESTONES, FundsMovement, Investment, Investor
from growth.investors.rules import (
    PhoneFormatError,
    attribution_kind,
    newer_value_wins,
    normalize_phone,
    nth_earliest,
    referral_code_for,
)
from growth.money import parse_rate, parse_yuan
from growth.timeutil import SHANGHAI

CHUNK = 500  # keeps IN (...) lists well under every database's parameter limit
REFERRAL_CHANNEL = ("referral", "邀请好友", "referral")
ORGANIC_CHANNEL = ("organic", "自然流量", "organic")
PROFILE_FIELDS = ("phone", "name", "email", "wechat_openid")
_MOVEMENT_ID = {"funds.deposited": "deposit_id", "funds.withdrawn": "withdrawal_id"}
MILESTONE_EVENTS = {
    "user.registered": "registered",
    "user.kyc_verified": "kyc_verified",
    "user.card_bound": "card_bound",
    "funds.deposited": "first_deposit",
}


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One event read back from the log."""

    seq: int
    event_id: str
    type: str
    occurred_at: datetime
    user_id: str
    body: dict[str, Any]


@dataclass
class Emission:
    """A signal to send once the batch has committed."""

    signal: Any
    kwargs: dict[str, Any]


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), CHUNK):
        yield values[i:i + CHUNK]


def _earliest(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at < current else current


@dataclass
class Projector:
    """Applies one batch of events; call `run`, then read `emissions`."""

    session: Session
    emissions: list[Emission] = field(default_factory=list)
    investors: dict[str, Investor] = field(default_factory=dict)
    investments: dict[str, Investment] = field(default_factory=dict)
    _before: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    _reattribute: set[str] = field(default_factory=set)
    _touched_investments: set[str] = field(default_factory=set)
    _new_investment_ids: set[str] = field(default_factory=set)
    _status_before: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    _consent_changes: list[tuple[str, str, bool]] = field(default_factory=list)
    _seen_movements: set[tuple[str, str]] = field(default_factory=set)

    def run(self, events: Sequence[LoggedEvent]) -> None:
        """Project the events, flush, and collect the signals to send after commit."""
        self._load(events)
        for event in events:
            self._apply(event)
        self.session.flush()
        self._recompute_investment_totals()
        self._attribute()
        self.session.flush()
        self._collect_emissions()

    # --- loading ------------------------------------------------------------------------------
    def _load(self, events: Sequence[LoggedEvent]) -> None:
        s = self.session
        user_ids = sorted({e.user_id for e in events})
        for part in _chunks(user_ids):
            for inv in s.scalars(select(Investor).where(Investor.platform_user_id.in_(part))):
                self.investors[inv.platform_user_id] = inv
        created = [Investor(platform_user_id=uid, referral_code=referral_code_for(uid), consent={},
                            investment_count=0, investment_total_fen=0, holdings_fen=0, deposit_total_fen=0,
                            withdrawal_total_fen=0)
                   for uid in user_ids if uid not in self.investors]
        if created:
            s.add_all(created)
            s.flush()
            for inv in created:
                self.investors[inv.platform_user_id] = inv
            self._find_waiting_referees(created)
        for inv in self.investors.values():
            self._before[inv.id] = tuple(inv.milestone(m) for m in MILESTONES)

        movement_ids = sorted({e.body["data"][_MOVEMENT_ID[e.type]] for e in events if e.type in _MOVEMENT_ID})
        for part in _chunks(movement_ids):
            self._seen_movements.update((kind, ext) for kind, ext in s.execute(
                select(FundsMovement.kind, FundsMovement.external_id).where(FundsMovement.external_id.in_(part))
            ))

        investment_ids = sorted({e.body["data"]["investment_id"] for e in events if e.type.startswith("investment.")})
        for part in _chunks(investment_ids):
            for row in s.scalars(select(Investment).where(Investment.investment_id.in_(part))):
                self.investments[row.investment_id] = row
                self._status_before[row.investment_id] = (row.started_at, row.status)

    def _find_waiting_referees(self, created: list[Investor]) -> None:
        """Registrations that named a referrer we had not seen yet get attributed again now."""
        codes = [inv.referral_code for inv in created] + [inv.platform_user_id for inv in created]
        for part in _chunks(codes):
            waiting = self.session.scalars(
                select(Investor).where(Investor.referral_code_used.in_(part), Investor.referrer_id.is_(None))
            )
            for inv in waiting:
                self.investors.setdefault(inv.platform_user_id, inv)
                self._reattribute.add(inv.platform_user_id)

    # --- applying -----------------------------------------------------------------------------
    def _apply(self, event: LoggedEvent) -> None:
        inv = self.investors[event.user_id]
        at = event.occurred_at
        user = event.body.get("user") or {}
        for name in PROFILE_FIELDS:
            value = user.get(name)
            if value is None:
                continue
            if name == "phone":
                try:
                    value = normalize_phone(value)
                except PhoneFormatError:
                    continue
            if newer_value_wins(getattr(inv, name), getattr(inv, f"{name}_at"), value, at):
                setattr(inv, name, value)
                setattr(inv, f"{name}_at", at)
        if inv.last_activity_at is None or at > inv.last_activity_at:
            inv.last_activity_at = at

        data = event.body.get("data") or {}
        kind = event.type
        milestone = MILESTONE_EVENTS.get(kind)
        if milestone:
            attr = f"{milestone}_at"
            current = getattr(inv, attr)
            if kind == "user.registered" and (current is None or at < current):
                self._take_registration(inv, data)
            setattr(inv, attr, _earliest(current, at))
        if kind == "funds.deposited":
            self._movement(inv, "deposit", data["deposit_id"], data["amount"], at)
        elif kind == "funds.withdrawn":
            self._movement(inv, "withdrawal", data["withdrawal_id"], data["amount"], at)
        elif kind.startswith("investment."):
            self._investment(inv, kind, data, at)
        elif kind == "user.consent_changed":
            self._consent(inv, data["channel"], bool(data["granted"]), at)

    def _take_registration(self, inv: Investor, data: dict[str, Any]) -> None:
        """The earliest registration decides attribution."""
        inv.click_id = data.get("click_id")
        inv.channel_code_given = data.get("channel_code")
        inv.referral_code_used = data.get("referral_code")
        inv.device_id = data.get("device_id")
        inv.registration_ip = data.get("ip")
        self._reattribute.add(inv.platform_user_id)

    def _movement(self, inv: Investor, kind: str, external_id: str, amount: str, at: datetime) -> None:
        key = (kind, external_id)
        if key in self._seen_movements:
            return
        self._seen_movements.add(key)
        fen = parse_yuan(amount)
        self.session.add(FundsMovement(kind=kind, external_id=external_id, investor_id=inv.id, amount_fen=fen,
                                       occurred_at=at))
        if kind == "deposit":
            inv.deposit_total_fen += fen
        else:
            inv.withdrawal_total_fen += fen

    def _investment(self, inv: Investor, kind: str, data: dict[str, Any], at: datetime) -> None:
        iid = data["investment_id"]
        row = self.investments.get(iid)
        if row is None:
            row = Investment(investment_id=iid, investor_id=inv.id, status="active", reward_ids=[],
                             redeemed_fen=0, matured_principal_fen=0, interest_fen=0)
            self.session.add(row)
            self.investments[iid] = row
            self._status_before[iid] = (None, None)
        self._touched_investments.add(iid)
        if kind == "investment.created":
            if row.started_at is None or at < row.started_at:
                product = data["product"]
                row.investor_id = inv.id
                row.product_id = product["id"]
                row.product_name = product["name"]
                row.term_days = product["term_days"]
                row.annual_rate_bp = parse_rate(product["annual_rate"])
                row.amount_fen = parse_yuan(data["amount"])
                row.started_at = at
                row.maturity_date = (at.astimezone(SHANGHAI) + timedelta(days=product["term_days"])).date()
                row.reward_ids = list(data.get("reward_ids") or [])
        elif kind == "investment.redeemed":
            if row.redeemed_at is None or at < row.redeemed_at:
                row.redeemed_at = at
                row.redeemed_fen = parse_yuan(data["amount"])
        elif kind == "investment.matured" and (row.matured_at is None or at < row.matured_at):
            row.matured_at = at
            row.matured_principal_fen = parse_yuan(data["amount"])
            interest = data.get("interest") or "0"
            row.interest_fen = 0 if interest.strip("0.") == "" else parse_yuan(interest)
        row.status = "matured" if row.matured_at else "redeemed" if row.redeemed_at else "active"

    def _consent(self, inv: Investor, channel: str, granted: bool, at: datetime) -> None:
        consent = dict(inv.consent or {})
        current = consent.get(channel)
        stamp = at.isoformat()
        # Latest statement wins; on a tie the opt-out wins (the safe reading, and order-free).
        if current is None or stamp > current["at"] or (stamp == current["at"] and not granted):
            consent[channel] = {"granted": granted, "at": stamp}
            inv.consent = consent
            self._consent_changes.append((inv.platform_user_id, channel, granted))

    # --- derived state ------------------------------------------------------------------------
    def _recompute_investment_totals(self) -> None:
        """Milestones and totals from investments, recomputed per touched investor (order-free)."""
        investor_ids = sorted({self.investments[i].investor_id for i in self._touched_investments})
        if not investor_ids:
            return
        rows_by_investor: dict[int, list[Investment]] = {}
        for part in _chunks(investor_ids):
            for row in self.session.scalars(select(Investment).where(Investment.investor_id.in_(part))):
                rows_by_investor.setdefault(row.investor_id, []).append(row)
        by_id = {inv.id: inv for inv in self.investors.values()}
        for investor_id, rows in rows_by_investor.items():
            inv = by_id.get(investor_id) or self.session.get(Investor, investor_id)
            created = [r for r in rows if r.started_at is not None]
            starts = [r.started_at for r in created]
            inv.first_investment_at = nth_earliest(starts, 1)
            inv.repeat_investment_at = nth_earliest(starts, 2)
            inv.investment_count = len(created)
            inv.investment_total_fen = sum(r.amount_fen or 0 for r in created)
            inv.holdings_fen = sum(
                max((r.amount_fen or 0) - r.redeemed_fen - r.matured_principal_fen, 0)
                for r in created if r.status == "active"
            )

    def _attribute(self) -> None:
        """Decide each (re)registered investor's channel and referrer, in the spec's order."""
        if not self._reattribute:
            return
        invs = [self.investors[uid] for uid in sorted(self._reattribute)]
        click_ids = sorted({i.click_id for i in invs if i.click_id})
        click_channel: dict[str, int] = {}
        for part in _chunks(click_ids):
            click_channel.update(self.session.execute(
                select(Click.click_id, Click.channel_id).where(Click.click_id.in_(part))))
        codes = sorted({i.referral_code_used for i in invs if i.referral_code_used})
        referrers: dict[str, int] = {}
        for part in _chunks(codes):
            for rid, rcode, ruid in self.session.execute(
                select(Investor.id, Investor.referral_code, Investor.platform_user_id).where(
                    or_(Investor.referral_code.in_(part), Investor.platform_user_id.in_(part)))
            ):
                referrers[rcode] = rid
                referrers[ruid] = rid
        channels = {c.code: c for c in self.session.scalars(select(AcquisitionChannel))}
        for inv in invs:
            referrer_id = referrers.get(inv.referral_code_used or "")
            if referrer_id == inv.id:
                referrer_id = None  # nobody refers themselves
            inv.referrer_id = referrer_id
            kind = attribution_kind(click_channel=inv.click_id in click_channel,
                                    channel_code=inv.channel_code_given, referrer_known=referrer_id is not None)
            if kind == "click":
                inv.channel_id = click_channel[inv.click_id or ""]
            elif kind == "code":
                inv.channel_id = self._channel(channels, (inv.channel_code_given or "")[:64], None).id
            elif kind == "referral":
                inv.channel_id = self._channel(channels, *REFERRAL_CHANNEL[:1], REFERRAL_CHANNEL).id
            else:
                inv.channel_id = self._channel(channels, *ORGANIC_CHANNEL[:1], ORGANIC_CHANNEL).id

    def _channel(self, channels: dict[str, AcquisitionChannel], code: str,
                 preset: tuple[str, str, str] | None) -> AcquisitionChannel:
        """Return the channel of a code, creating it (named after the code) so nothing is lost."""
        channel = channels.get(code)
        if channel is None:
            name, kind = (preset[1], preset[2]) if preset else (code, "other")
            channel = AcquisitionChannel(code=code, name=name, kind=kind, auto_created=preset is None,
                                         owner="", notes="", active=True)
            self.session.add(channel)
            self.session.flush()
            channels[code] = channel
        return channel

    # --- signals ------------------------------------------------------------------------------
    def _collect_emissions(self) -> None:
        out = self.emissions
        for inv in self.investors.values():
            before = self._before.get(inv.id)
            if before is None:
                continue
            for name, was in zip(MILESTONES, before, strict=True):
                if was is None and inv.milestone(name) is not None:
                    if name == "registered":
                        out.append(Emission(signals.investor_registered, {"investor_id": inv.id}))
                    out.append(Emission(signals.milestone_reached, {"investor_id": inv.id, "milestone": name}))
        for iid in sorted(self._touched_investments):
            row = self.investments[iid]
            started_before, status_before = self._status_before.get(iid, (None, None))
            ids = {"investor_id": row.investor_id, "investment_id": row.id}
            if started_before is None and row.started_at is not None:
                out.append(Emission(signals.investment_created, ids))
            if status_before != row.status and row.status == "redeemed":
                out.append(Emission(signals.investment_redeemed, ids))
            if status_before != row.status and row.status == "matured":
                out.append(Emission(signals.investment_matured, ids))
        for uid, channel, granted in self._consent_changes:
            out.append(Emission(signals.consent_changed, {"investor_id": self.investors[uid].id,
                                                          "channel": channel, "granted": granted}))

