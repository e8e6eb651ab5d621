"""The demo's campaigns: one of each type across the life cycle, approved by a second person, with results
that come from real runs over the demo investors."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, select

from campaigns.definition import CAMPAIGN_TYPES
from campaigns.demo import load_campaigns
from campaigns.models import STATUSES, Campaign, CampaignMember, CampaignRun, CampaignTransition
from campaigns.results import results
from channels.models import OutboxMessage
from growth.auth.models import StaffUser
from growth.demo import load_demo
from growth.investors.models import Investment
from growth.rewards.models import Reward


def _noon() -> datetime:
    """Return the latest 12:00 in Shanghai that has passed: the demo's clock, whatever the time of day.

    Trigger campaigns only take events accepted within 72 hours of occurring, so the demo must run near the
    real time; a fixed time of day keeps the schedule (runs at 10:00) the same against the data.
    """
    real = datetime.now(UTC)
    noon = datetime.combine(real.date(), time(4, 0), tzinfo=UTC)
    return noon if noon <= real else noon - timedelta(days=1)


def test_the_demo_has_every_campaign_type_in_every_state_with_consistent_results_from_real_runs(app, session):
    now = _noon()
    load_demo(app, investors=500, seed=11, now=now)
    summary = load_campaigns(app, seed=11, now=now)

    campaigns = session.scalars(select(Campaign).order_by(Campaign.id)).all()
    assert not summary.already_loaded and summary.campaigns == len(campaigns)
    assert {c.type for c in campaigns} == set(CAMPAIGN_TYPES)
    assert {c.status for c in campaigns} == set(STATUSES)
    staff = dict(session.execute(select(StaffUser.id, StaffUser.role)).all())
    for c in campaigns:
        assert staff[c.created_by] == "marketer"
        if c.approved_by is not None:  # four eyes: approved by an approver, never by its author
            assert staff[c.approved_by] == "approver" and c.approved_by != c.created_by
    rejected = [c for c in campaigns if c.rejection_reason]
    assert [c.status for c in rejected] == ["draft"]
    steps = {(t.campaign_id, t.action) for t in session.scalars(select(CampaignTransition))}
    assert {(rejected[0].id, "submit"), (rejected[0].id, "reject")} <= steps

    ran = [c for c in campaigns if c.status in ("finished", "running")]
    assert len(ran) == 2
    for c in ran:
        r = results(c.id, session=session)
        rows = session.scalar(select(func.count()).where(CampaignMember.campaign_id == c.id))
        assert r["members"] == rows == r["holdout"] + r["treated"] > 0
        assert r["treated"] == r["granted"] + r["budget_exhausted"] > 0
        assert r["rewards"]["granted"] >= r["granted"]
        assert sum(r["messages"]["sms"].values()) == r["granted"]  # one SMS per member who got the rewards
        assert session.scalar(select(func.count()).where(CampaignRun.campaign_id == c.id)) >= 1
        holdout = select(CampaignMember.investor_id).where(CampaignMember.campaign_id == c.id,
                                                           CampaignMember.holdout.is_(True))
        assert session.scalar(select(func.count()).where(Reward.campaign_id == c.id,
                                                         Reward.investor_id.in_(holdout))) == 0
        assert session.scalar(select(func.count()).where(OutboxMessage.campaign_id == c.id,
                                                         OutboxMessage.investor_id.in_(holdout))) == 0
    # After the runs members invested, the treated with the vouchers they got: the lift has something to show.
    redeemed = sum(results(c.id, session=session)["rewards"]["redeemed"] for c in ran)
    invested = sum(results(c.id, session=session)["invested"]["treated"]["investors"] for c in ran)
    assert redeemed > 0 and invested >= redeemed
    assert session.scalar(select(func.count()).where(Investment.investment_id.like("demo_cp_%"))) >= redeemed
    # The first-investment nudge chose people who had never invested, so whatever they invested came after it.
    nudge = results(next(c.id for c in ran if c.type == "first_investment_nudge"), session=session)
    shares = {side: nudge["invested"][side]["investors"] / max(nudge[side], 1) for side in ("treated", "holdout")}
    assert shares["treated"] > shares["holdout"]

    paused = next(c for c in campaigns if c.status == "paused")
    assert paused.type == "rate_boost"
    assert load_campaigns(app, seed=11, now=now).already_loaded
    session.commit()
    assert session.scalar(select(func.count()).select_from(Campaign)) == len(campaigns)
    assert session.scalar(select(func.count()).select_from(CampaignMember)) == summary.members
