"""CRM tables: follow-up tasks, call logs, notes, messages sent by agents, investor owners and settings.

A task is unique twice over: `cause_key` names the occurrence that caused it (an investor's stall, an
investment's maturity, a withdrawal, a call's follow-up date) and is never reused, so a closed task is not
made again by the next run; `source_key` is "<investor id>:<reason>" while the task is open and NULL once
it is closed, so an investor has at most one open task per reason (NULLs never clash, on either database).
"""

from __future__ import annotations

from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from growth.db import Base
from growth.overrides import SettingRow
from growth.timeutil import utcnow

# Why a task exists, in display order, with labels (the rules make all but `campaign` and `follow_up`).
REASON_LABELS = {
    "registered_no_kyc": _l("注册未实名"),
    "kyc_no_deposit": _l("实名未充值"),
    "deposited_no_investment": _l("充值未投资"),
    "maturing": _l("投资即将到期"),
    "large_redemption": _l("大额赎回/提现"),
    "dormant": _l("沉睡客户"),
    "referral_review": _l("邀请风控审核中"),
    "campaign": _l("活动任务"),
    "follow_up": _l("约定回访"),
}
REASONS = tuple(REASON_LABELS)
STATUS_LABELS = {"open": _l("待处理"), "done": _l("已完成"), "cancelled": _l("已取消")}
TASK_STATUSES = tuple(STATUS_LABELS)
# A call's outcome codes with their labels; `do_not_contact` also withdraws marketing consent everywhere.
OUTCOME_LABELS = {
    "interested": _l("接通-有意向"),
    "not_interested": _l("接通-无意向"),
    "no_answer": _l("未接通"),
    "refused": _l("拒绝"),
    "invalid_number": _l("空号"),
    "do_not_contact": _l("要求勿扰"),
    "invested": _l("已投资"),
}
OUTCOMES = tuple(OUTCOME_LABELS)
# Outcomes where the agent reached the investor (the manager view's contact rate); 未接通 and 空号 did not.
CONNECTED_OUTCOMES = ("interested", "not_interested", "refused", "do_not_contact", "invested")
DO_NOT_CONTACT = "do_not_contact"
# The campaigns' trigger consumer reads the calls after its cursor of this name (in `processor_cursors`); a call
# is logged while holding that cursor row's lock (`services.lock_call_feed`), so call ids commit in order and a
# consumer moving its cursor to the last id it read skips none (PostgreSQL hands out ids before commit).
CALL_FEED_CURSOR = "campaign-crm-calls"
# A task a campaign step asks for: its cause names the campaign and its member, so it is made once per member.
CAMPAIGN_REASON = "campaign"
# What delivery would do with a message an agent is about to send (rules.send_checks), as the page says it.
SEND_CHECK_LABELS = {
    "paused": _l("该渠道已暂停：消息会排队，恢复后发出"),
    "kill_switch": _l("营销一键暂停已开启：营销消息会暂缓，解除后发出"),
    "channel_off": _l("该渠道未配置：消息无法发出"),
    "quiet_hours": _l("现在是免打扰时段：营销消息将暂缓到免打扰结束后发出"),
    "no_address": _l("投资人在该渠道没有联系方式：无法触达"),
    "refused": _l("服务商曾拒收该联系方式：无法触达"),
    "no_consent": _l("投资人未同意接收该渠道的营销消息：发送时将被拦截"),
    "consent_withdrawn": _l("投资人已退订该渠道的营销消息：发送时将被拦截"),
    "sms_opt_out_missing": _l("营销短信缺少退订用语：发送时将被拦截"),
    "cap": _l("已达营销频次上限：发送时将被拦截"),
}
# SLA states of an open task (rules.sla_state): before its due time, past it, past it by more than a day.
SLA_LABELS = {"due": _l("未到期"), "overdue": _l("已逾期"), "breached": _l("严重逾期")}


class CrmTask(Base):
    """One follow-up for one investor: why, for whom, by when, and how it ended."""

    __tablename__ = "crm_tasks"
    __table_args__ = (
        Index("ix_crm_tasks_assignee_status_due", "assignee_id", "status", "due_at"),
        Index("ix_crm_tasks_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    investor_id: Mapped[int] = mapped_column(ForeignKey("investors.id"), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    assigned_at: Mapped[datetime | None]
    due_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    # "<investor id>:<reason>" while open, NULL once closed: one open task per investor and reason.
    source_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    # What caused it ("maturing:<investment id>", "call:<call id>" …): never made twice, open or closed.
    cause_key: Mapped[str] = mapped_column(String(200), unique=True)
    note: Mapped[str | None] = mapped_column(Text)


class CrmCall(Base):
    """One call (or WeChat conversation) an agent logged, with its outcome and the next follow-up agreed."""

    __tablename__ = "crm_calls"
    __table_args__ = (Index("ix_crm_calls_investor_outcome", "investor_id", "outcome"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("crm_tasks.id"), index=True)
    investor_id: Mapped[int] = mapped_column(ForeignKey("investors.id"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    next_follow_up_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CrmNote(Base):
    """A free-text note about an investor."""

    __tablename__ = "crm_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    investor_id: Mapped[int] = mapped_column(ForeignKey("investors.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CrmOwner(Base):
    """The agent who owns an investor: their new tasks go to them while they are under their cap."""

    __tablename__ = "crm_owners"

    investor_id: Mapped[int] = mapped_column(ForeignKey("investors.id"), primary_key=True, autoincrement=False)
    agent_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    since: Mapped[datetime] = mapped_column(default=utcnow)


class CrmSetting(SettingRow, Base):
    """One CRM setting changed on the settings page (key/value); a missing key takes the configured default."""

    __tablename__ = "crm_settings"


# The pages whose filters can be saved, with the query arguments each keeps (anything else is dropped).
SAVED_SEARCH_PAGES = {
    "investors": ("q", "channel", "milestone", "stalled", "tag"),
    "worklist": ("scope", "reason", "status"),
}


class SavedSearch(Base):
    """A staff member's filters of the investor list or the worklist, kept under a name (optionally shared)."""

    __tablename__ = "saved_searches"
    __table_args__ = (UniqueConstraint("owner_id", "page", "name"), Index("ix_saved_searches_page_shared", "page",
                                                                          "shared"))

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    page: Mapped[str] = mapped_column(String(16))  # a key of SAVED_SEARCH_PAGES
    name: Mapped[str] = mapped_column(String(50))
    args: Mapped[dict[str, str]] = mapped_column(JSON)  # the page's query arguments
    shared: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


BigId = BigInteger().with_variant(Integer(), "sqlite")


class CrmMessage(Base):
    """A templated message an agent sent to an investor: the CRM's record of it, beside its outbox row.

    `form_token` is the send form's one-time token, unique: a double submit finds the first send and
    sends nothing more. The message's delivery status is its outbox row's (`outbox_id`).
    """

    __tablename__ = "crm_messages"
    __table_args__ = (Index("ix_crm_messages_investor_created", "investor_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    investor_id: Mapped[int] = mapped_column(ForeignKey("investors.id"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("crm_tasks.id"))
    template_id: Mapped[int | None] = mapped_column(ForeignKey("message_templates.id"))
    template_name: Mapped[str] = mapped_column(String(100))  # as it was named when sent
    channel: Mapped[str] = mapped_column(String(16))
    message_class: Mapped[str] = mapped_column(String(16))
    outbox_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("outbox_messages.id"))
    form_token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
