"""Campaigns on the investor 360 timeline: each campaign an investor entered, in the holdout or treated, by which
run or trigger, and what fulfilment made of it.

`growth` may not import campaigns, so the composition root registers `entries` with the CRM's timeline
(`growth.crm.timeline.register_source`).
"""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from campaigns.definition import CAMPAIGN_TYPE_LABELS
from campaigns.models import MEMBER_STATUS_LABELS, Campaign, CampaignMember
from growth.crm.timeline import Entry, Link, SourceContext

KIND = "campaign"
LABEL = _l("参与的活动")
TONES = {"done": "success", "holdout": "secondary", "pending": "info", "budget_exhausted": "warning",
         "failed": "danger", "cancelled": "secondary"}


def entries(ctx: SourceContext) -> list[Entry]:
    """Return the investor's campaign entries, newest first (one query on the members' investor index)."""
    rows = ctx.session.execute(
        select(CampaignMember.id, CampaignMember.campaign_id, CampaignMember.entered_at, CampaignMember.holdout,
               CampaignMember.status, CampaignMember.run_id, CampaignMember.cause, CampaignMember.rewards_granted,
               Campaign.name, Campaign.type)
        .join(Campaign, Campaign.id == CampaignMember.campaign_id)
        .where(CampaignMember.investor_id == ctx.investor.id)
        .order_by(CampaignMember.entered_at.desc(), CampaignMember.id.desc()).limit(ctx.limit)).all()
    out = []
    for r in rows:
        group = _("对照组（不发放）") if r.holdout else _("实验组")
        how = _("第 %(id)d 次执行", id=r.run_id) if r.run_id is not None else _("触发：%(cause)s", cause=r.cause)
        parts = [str(CAMPAIGN_TYPE_LABELS.get(r.type, r.type)), group, how]
        if r.rewards_granted:
            parts.append(_("奖励 %(n)d 个", n=r.rewards_granted))
        out.append(Entry(r.entered_at, KIND, _("进入活动「%(name)s」", name=r.name), " · ".join(parts),
                         Link("campaigns.detail", {"campaign_id": r.campaign_id}),
                         status=str(MEMBER_STATUS_LABELS.get(r.status, r.status)),
                         tone=TONES.get(r.status, "secondary")))
    return out
