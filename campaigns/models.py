"""Campaigns: the definition document, its life cycle, and every transition it went through."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from growth.db import Base
from growth.timeutil import utcnow

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


class SavedSegment(Base):
    """An audience (spec §2 `audience`) saved under a name, so the editor can load it into another campaign."""

    __tablename__ = "campaign_saved_segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    audience: Mapped[dict[str, Any]]  # {"all": [conditions]} exactly as `campaigns.definition` dumps it
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
