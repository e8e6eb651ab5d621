"""Read the projected state back as plain data, to compare runs (order-free, replay) field by field."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import delete, select

from channels.services import consent_of
from growth.acquisition.models import AcquisitionChannel
from growth.db import get_db
from growth.events.models import PlatformEvent
from growth.events.processor import reset_projections
from growth.investors.models import FundsMovement, Investment, Investor
from growth.projections import projections_of
from growth.referrals.models import ReferralConfirmation, ReferralReview, ReferralVisit

# Everything the projector derives from the log; database ids are left out (they differ between runs).
INVESTOR_FIELDS = (
    "platform_user_id", "referral_code", "phone", "phone_at", "name", "name_at", "email", "email_at",
    "wechat_openid", "wechat_openid_at", "registered_at", "kyc_verified_at", "card_bound_at", "first_deposit_at",
    "first_investment_at", "repeat_investment_at", "click_id", "channel_code_given", "referral_code_used",
    "device_id", "registration_ip", "investment_count", "investment_total_fen", "holdings_fen",
    "deposit_total_fen", "withdrawal_total_fen", "last_activity_at",
)
INVESTMENT_FIELDS = (
    "investment_id", "product_id", "product_name", "term_days", "annual_rate_bp", "amount_fen", "started_at",
    "maturity_date", "status", "reward_ids", "redeemed_fen", "redeemed_at", "matured_principal_fen",
    "interest_fen", "matured_at",
)
MOVEMENT_FIELDS = ("kind", "external_id", "amount_fen", "occurred_at")


def snapshot(app: Flask) -> dict[str, Any]:
    """Return every investor, investment and fund movement as plain dicts keyed by platform ids."""
    with get_db(app).session_scope() as s:
        investors = list(s.scalars(select(Investor)))
        by_id = {inv.id: inv.platform_user_id for inv in investors}
        channels = {c.id: c.code for c in s.scalars(select(AcquisitionChannel))}
        state: dict[str, Any] = {"investors": {}, "investments": {}, "movements": {}}
        for inv in investors:
            row = {f: getattr(inv, f) for f in INVESTOR_FIELDS}
            row["channel"] = channels.get(inv.channel_id) if inv.channel_id else None
            row["referrer"] = by_id.get(inv.referrer_id) if inv.referrer_id else None
            row["consent"] = consent_of(session=s, investor_id=inv.id)
            state["investors"][inv.platform_user_id] = row
        for it in s.scalars(select(Investment)):
            row = {f: getattr(it, f) for f in INVESTMENT_FIELDS}
            row["investor"] = by_id[it.investor_id]
            state["investments"][it.investment_id] = row
        for mv in s.scalars(select(FundsMovement)):
            row = {f: getattr(mv, f) for f in MOVEMENT_FIELDS}
            row["investor"] = by_id[mv.investor_id]
            state["movements"][(mv.kind, mv.external_id)] = row
        return state


def wipe(app: Flask, *, investors: bool = False) -> None:
    """Reset the projections and delete the log (and, when asked, the investor rows too)."""
    with get_db(app).session_scope(write=True) as s:
        reset_projections(session=s, projections=projections_of(app))
        s.execute(delete(PlatformEvent))
        if investors:
            # Rows that point at investors but are not the log's (staff reviews, the confirmation feed, visits).
            for model in (ReferralReview, ReferralConfirmation, ReferralVisit):
                s.execute(delete(model))
            s.execute(delete(Investor))
