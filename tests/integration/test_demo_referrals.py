"""The demo's referral program: every state, every fraud rule, staff decisions and share-link visits."""

from __future__ import annotations

from sqlalchemy import func, select

from growth.demo import load_demo
from growth.referrals.models import REASON_LABELS, STATUSES, Referral, ReferralVisit


def test_the_demo_has_referrals_in_every_state_with_every_fraud_rule_and_invites(app, session):
    load_demo(app, investors=200, seed=11)
    referrals = session.scalars(select(Referral)).all()
    assert {r.status for r in referrals} == set(STATUSES)
    assert {f["code"] for r in referrals for f in r.flags} == set(REASON_LABELS)
    assert {r.confirmed_how for r in referrals} >= {"automatic", "staff"}
    assert {r.decision for r in referrals} >= {"approved", "rejected"}
    assert session.scalar(select(func.count()).select_from(ReferralVisit)) > 0
