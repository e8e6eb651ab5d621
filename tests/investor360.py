"""An investor with one or more rows of every kind the investor 360 timeline shows (for integration and page tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from campaigns.models import Campaign, CampaignMember
from growth.crm.models import CrmCall, CrmNote, CrmOwner, CrmTask
from growth.investors.models import FundsMovement, Investment
from growth.rewards.models import Reward, RewardBudget, RewardEntry
from growth.timeutil import SHANGHAI
from tests.factories import make_investor, make_message, make_user

NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
DAY = timedelta(days=1)
PHONE = "+8613800138000"
NAME = "张三丰"
EMAIL = "zhang@example.com"


@dataclass
class Rich:
    """The investor's id and the ids of what was made for them."""

    investor_id: int
    agent_id: int
    task_open: int
    task_closed: int
    campaign_id: int
    message_id: int
    reward_id: int


def make_rich_investor(session: Session, *, now: datetime = NOW) -> Rich:
    """Make an investor with milestones, investments (made, redeemed, matured, maturing), a deposit and a withdrawal,
    a reward granted and redeemed, messages (one naming them), a campaign entry, a call, a note and two tasks."""
    agent = make_user(session, role="agent")
    inv = make_investor(session, platform_user_id="u_rich", phone=PHONE, name=NAME, email=EMAIL,
                        registered_at=now - 40 * DAY, kyc_verified_at=now - 39 * DAY,
                        first_deposit_at=now - 38 * DAY, first_investment_at=now - 37 * DAY)
    session.add_all([
        Investment(investment_id="inv_a", investor_id=inv.id, product_name="月月盈", term_days=30, annual_rate_bp=850,
                   amount_fen=1_000_000, started_at=now - 37 * DAY, maturity_date=(now - 7 * DAY).date(),
                   status="matured", matured_at=now - 7 * DAY, matured_principal_fen=1_000_000, interest_fen=6_986),
        Investment(investment_id="inv_b", investor_id=inv.id, product_name="季季盈", term_days=90, annual_rate_bp=900,
                   amount_fen=500_000, started_at=now - 20 * DAY, maturity_date=(now + 70 * DAY).date(),
                   status="redeemed", redeemed_at=now - 5 * DAY, redeemed_fen=500_000),
        Investment(investment_id="inv_c", investor_id=inv.id, product_name="周周盈", term_days=14, annual_rate_bp=600,
                   amount_fen=200_000, started_at=now - 10 * DAY, status="active",
                   maturity_date=(now.astimezone(SHANGHAI) + 4 * DAY).date()),
        FundsMovement(kind="deposit", external_id="dep_1", investor_id=inv.id, amount_fen=2_000_000,
                      occurred_at=now - 38 * DAY),
        FundsMovement(kind="withdrawal", external_id="wd_1", investor_id=inv.id, amount_fen=300_000,
                      occurred_at=now - 4 * DAY),
    ])
    budget = RewardBudget(owner_type="manual", owner_key="manual", name="手工", created_at=now - 30 * DAY)
    session.add(budget)
    session.flush()
    reward = Reward(key="rw-test-1", investor_id=inv.id, kind="voucher", status="redeemed", budget_id=budget.id,
                    amount_fen=5_000, granted_at=now - 30 * DAY, granted_by="admin@example.com", cause="manual")
    session.add(reward)
    session.flush()
    session.add_all([
        RewardEntry(key=f"{reward.id}:granted", reward_id=reward.id, kind="granted", source="grant",
                    at=now - 30 * DAY, recorded_at=now - 30 * DAY, actor="admin@example.com", amount_fen=5_000),
        RewardEntry(key=f"{reward.id}:redeemed", reward_id=reward.id, kind="redeemed", source="projection",
                    at=now - 20 * DAY, recorded_at=now - 20 * DAY, actor="evt_9", amount_fen=5_000,
                    investment_id="inv_b"),
    ])
    campaign = Campaign(name="双十二加息", type="rate_boost", message_class="marketing", definition={},
                        status="running", created_at=now - 15 * DAY, updated_at=now - 15 * DAY)
    session.add(campaign)
    session.flush()
    session.add(CampaignMember(campaign_id=campaign.id, investor_id=inv.id, entry_key="once", cause="registered",
                               holdout=True, entered_at=now - 15 * DAY, status="holdout", due_at=now - 15 * DAY,
                               created_at=now - 15 * DAY))
    message = make_message(session, investor_id=inv.id, campaign_id=campaign.id, status="delivered",
                           created_at=now - 14 * DAY, updated_at=now - 14 * DAY,
                           content={"text": f"{NAME}您好，您的加息券已到账，客服电话 13800138000，"
                                            f"邮箱 {EMAIL}。回T退订", "template_code": "SMS_123"})
    make_message(session, investor_id=inv.id, sender="crm", channel="email", message_class="service",
                 status="failed", created_at=now - 3 * DAY, updated_at=now - 3 * DAY, error_code="550",
                 content={"subject": "三丰，您的到期提醒", "text": "…"})
    task_closed = CrmTask(investor_id=inv.id, reason="maturing", status="done", assignee_id=agent.id,
                          due_at=now - 2 * DAY, created_at=now - 6 * DAY, closed_at=now - 2 * DAY, closed_by=agent.id,
                          cause_key=f"maturing:{inv.id}")
    task_open = CrmTask(investor_id=inv.id, reason="follow_up", status="open", assignee_id=agent.id,
                        due_at=now + DAY, created_at=now - 2 * DAY, source_key=f"{inv.id}:follow_up",
                        cause_key=f"call:test:{inv.id}")
    session.add_all([task_closed, task_open])
    session.flush()
    session.add_all([
        CrmCall(task_id=task_closed.id, investor_id=inv.id, agent_id=agent.id, outcome="interested",
                note="想了解新手标", next_follow_up_at=now + DAY, created_at=now - 2 * DAY),
        CrmNote(investor_id=inv.id, author_id=agent.id, body="客户偏好短期产品", created_at=now - DAY),
        CrmOwner(investor_id=inv.id, agent_id=agent.id, since=now - 6 * DAY),
    ])
    session.flush()
    return Rich(inv.id, agent.id, task_open.id, task_closed.id, campaign.id, message.id, reward.id)
