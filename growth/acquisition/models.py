"""Acquisition channels (渠道), tracking links, clicks and daily costs."""

from __future__ import annotations

from datetime import date, datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from growth.db import Base
from growth.timeutil import utcnow

BigId = BigInteger().with_variant(Integer(), "sqlite")

# The one list of acquisition-channel kinds, in display order, each with its label (forms, list, filters, demo).
CHANNEL_KINDS = {
    "sem": _l("搜索引擎SEM"),
    "seo": _l("SEO"),
    "vertical": _l("垂直门户(网贷之家/网贷天眼)"),
    "wechat": _l("微信"),
    "weibo": _l("微博"),
    "qq_group": _l("QQ群"),
    "forum": _l("论坛/贴吧"),
    "offline": _l("线下活动"),
    "partner": _l("合作渠道"),
    "referral": _l("邀请好友"),
    "organic": _l("自然流量"),
    "other": _l("其他"),
}


def kind_label(kind: str) -> str:
    """Return the label of an acquisition-channel kind (the kind itself when it is not one we know)."""
    label = CHANNEL_KINDS.get(kind)
    return kind if label is None else str(label)


class AcquisitionChannel(Base):
    """Where investors come from: 百度SEM, 网贷之家, 微信公众号 ..."""

    __tablename__ = "acquisition_channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20), default="other")
    owner: Mapped[str] = mapped_column(String(100), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(default=True)
    # Created by the processor from an unknown channel_code, so no registration is lost.
    auto_created: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    links: Mapped[list[TrackingLink]] = relationship(back_populates="channel")


class TrackingLink(Base):
    """A short link /t/<code> carrying a channel and UTM parameters to a landing page."""

    __tablename__ = "tracking_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("acquisition_channels.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    landing_url: Mapped[str] = mapped_column(String(1000))
    utm_source: Mapped[str] = mapped_column(String(100), default="")
    utm_medium: Mapped[str] = mapped_column(String(100), default="")
    utm_campaign: Mapped[str] = mapped_column(String(100), default="")
    utm_content: Mapped[str] = mapped_column(String(100), default="")
    utm_term: Mapped[str] = mapped_column(String(100), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    channel: Mapped[AcquisitionChannel] = relationship(back_populates="links")


class Click(Base):
    """One visit through a tracking link; its click_id comes back on user.registered."""

    __tablename__ = "clicks"
    # By link (a link's stats) and by time with the channel (channel economics counts a period's clicks per channel).
    __table_args__ = (Index("ix_clicks_link_at", "link_id", "at"), Index("ix_clicks_at_channel", "at", "channel_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    click_id: Mapped[str] = mapped_column(String(40), unique=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("tracking_links.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("acquisition_channels.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(500), default="")
    referrer: Mapped[str] = mapped_column(String(1000), default="")


class ChannelCost(Base):
    """What a channel cost on one business day (integer fen); one row per channel and day."""

    __tablename__ = "channel_costs"
    __table_args__ = (UniqueConstraint("channel_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("acquisition_channels.id"), index=True)
    day: Mapped[date]
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(String(200), default="")
    entered_by: Mapped[str] = mapped_column(String(254), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
