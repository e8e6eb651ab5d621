"""Campaigns: the definition document, its life cycle, and every transition it went through."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from growth.db import Base
from growth.timeutil import utcnow

BigId = BigInteger().with_variant(Integer(), "sqlite")

# The life cycle of spec §3, in the order a campaign goes through it, with the labels pages show.
STATUS_LABELS = {
    "draft": _l("草稿"),
    "pending_approval": _l("待审批"),
    "active": _l("进行中"),
    "scheduled": _l("已排期"),
    "running": _l("执行中"),
    "paused": _l("已暂停"),
    "finished": _l("已结束"),
    "cancelled": _l("已取消"),
}
STATUSES = tuple(STATUS_LABELS)
ACTION_LABELS = {
    "create": _l("创建"),
    "edit": _l("修改"),
    "submit": _l("提交审批"),
    "approve": _l("批准"),
    "reject": _l("驳回"),
    "pause": _l("暂停"),
    "resume": _l("继续执行"),
    "cancel": _l("取消"),
    "start": _l("开始执行"),
    "finish": _l("结束"),
}


class Campaign(Base):
    """One campaign: its spec §2 document and where it stands in the life cycle."""

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(32))
    message_class: Mapped[str] = mapped_column(String(16))
    definition: Mapped[dict[str, Any]]  # the spec's document exactly as `campaigns.definition.dump` gives it
    status: Mapped[str] = mapped_column(String(20), default="draft")
    paused_from: Mapped[str | None] = mapped_column(String(20))  # where `resume` goes back to
    version: Mapped[int] = mapped_column(default=1)  # one more for every change of the definition
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    submitted_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    submitted_at: Mapped[datetime | None]
    approved_at: Mapped[datetime | None]
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CampaignTransition(Base):
    """One step of a campaign's life cycle (or an edit), who took it and why: the campaign's history."""

    __tablename__ = "campaign_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    note: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int]
    at: Mapped[datetime] = mapped_column(default=utcnow)


MEMBER_STATUS_LABELS = {
    "pending": _l("待发放"),
    "holdout": _l("对照组"),
    "done": _l("已发放"),
    "budget_exhausted": _l("预算用尽"),
    "failed": _l("发放失败"),
    "cancelled": _l("活动已取消"),
}


class CampaignMember(Base):
    """One entry of an investor into a campaign (a trigger fire or a run's selection): the campaign's work unit.

    `entry_key` carries the entry rule: "once" for `entry.once` (so the unique constraint lets an investor
    in once, whatever races), else the fire's cause or run. Members are written in the same transaction as
    the trigger cursor or the run's progress, and fulfilled (rewards, messages) later, each in a savepoint,
    so a crash between the two loses nothing and a retry does nothing twice.
    """

    __tablename__ = "campaign_members"
    __table_args__ = (
        UniqueConstraint("campaign_id", "investor_id", "entry_key"),
        Index("ix_campaign_members_due", "status", "due_at"),
        Index("ix_campaign_members_campaign_status", "campaign_id", "status"),
        # The investor 360 timeline reads an investor's entries, newest first.
        Index("ix_campaign_members_investor_entered", "investor_id", "entered_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No foreign keys: a run writes thousands of members per chunk, all of one campaign and one run, which the
    # chunk's own code reads first, from investors it has just read (campaigns and investors are never deleted:
    # erasure anonymises an investor in place). Each check was a lookup and a row lock on the parent per row,
    # a third of a run's time, and two runner threads share-locked the one campaign and run (bench/README.md).
    campaign_id: Mapped[int]
    investor_id: Mapped[int]
    entry_key: Mapped[str] = mapped_column(String(255))
    cause: Mapped[str] = mapped_column(String(255))  # the fire (registered, investment_created:inv_1) or run:<id>
    run_id: Mapped[int | None]
    event_seq: Mapped[int | None] = mapped_column(BigInteger)  # the log event that fired it
    investment_id: Mapped[str | None] = mapped_column(String(200))  # the triggering investment, if any
    holdout: Mapped[bool] = mapped_column(default=False)
    entered_at: Mapped[datetime]  # the fire's occurred_at or the run's time (entry.every_days counts from it)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    rewards_granted: Mapped[int] = mapped_column(default=0)  # how many rewards fulfilment granted the member
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    fulfilled_at: Mapped[datetime | None]


class CampaignRun(Base):
    """One scheduled run of a campaign, once per scheduled time; it records how far its selection got."""

    __tablename__ = "campaign_runs"
    __table_args__ = (UniqueConstraint("campaign_id", "scheduled_for"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    scheduled_for: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="selecting")  # selecting → selected
    after_investor_id: Mapped[int] = mapped_column(BigInteger, default=0)  # the selection's keyset: resumes here
    selected: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class CampaignRunChunk(Base):
    """One chunk of a run's audience, (after_investor_id, through_investor_id]: claimed, then fulfilled.

    The runner claims the spans up to the highest investor id under the run's row lock (a short transaction
    that reads nothing but that id) and fulfils each in another, which locks only the chunk's row (SKIP
    LOCKED): so several runner threads fulfil a run's chunks at once, and a chunk left behind by a crash is
    taken up again.
    """

    __tablename__ = "campaign_run_chunks"
    __table_args__ = (Index("ix_campaign_run_chunks_waiting", "run_id", "done"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("campaign_runs.id", ondelete="CASCADE"))
    after_investor_id: Mapped[int] = mapped_column(BigInteger)
    through_investor_id: Mapped[int] = mapped_column(BigInteger)
    selected: Mapped[int] = mapped_column(default=0)  # the members it entered, once done
    done: Mapped[bool] = mapped_column(default=False)
class SavedSegment(Base):
    """An audience (spec §2 `audience`) saved under a name, so the editor can load it into another campaign."""

    __tablename__ = "campaign_saved_segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    audience: Mapped[dict[str, Any]]  # {"all": [conditions]} exactly as `campaigns.definition` dumps it
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
