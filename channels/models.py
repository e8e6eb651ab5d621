"""Consent to marketing messages: a ledger of statements and the current state per investor and channel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from growth.db import Base

BigId = BigInteger().with_variant(Integer(), "sqlite")

# Where a statement came from. Only platform-event statements are projections of the log (a replay
# rebuilds them); the others were told to us directly and are kept.
PLATFORM_EVENT = "platform_event"
# "crm_call": an agent logged 要求勿扰 on a call (growth.crm), which withdraws consent on every channel.
CONSENT_SOURCES = (PLATFORM_EVENT, "unsubscribe_link", "sms_reply", "wechat", "crm_call")


class ConsentStatement(Base):
    """One statement of consent (granted) or opt-out for one channel, with its evidence; never changed."""

    __tablename__ = "consent_statements"
    __table_args__ = (Index("ix_consent_statements_investor_channel", "investor_id", "channel"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    investor_id: Mapped[int] = mapped_column(ForeignKey("investors.id"))
    channel: Mapped[str] = mapped_column(String(16))  # sms / email / wechat
    granted: Mapped[bool]
    occurred_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(32))  # one of CONSENT_SOURCES
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The platform event (or reply, callback …) it came from: each is recorded once.
    event_id: Mapped[str | None] = mapped_column(String(200), unique=True)


class ConsentState(Base):
    """The statement that currently holds for an investor and channel: the latest; on a tie the opt-out."""

    __tablename__ = "consent_states"
    __table_args__ = (UniqueConstraint("investor_id", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    investor_id: Mapped[int] = mapped_column(ForeignKey("investors.id"))
    channel: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool]
    occurred_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(32))


# --- the outbox -------------------------------------------------------------------------------------

# The spec's message statuses (campaigns-api.md §5), with the labels every page shows for them.
STATUS_LABELS = {
    "queued": _l("排队中"),
    "deferred": _l("暂缓"),
    "sending": _l("发送中"),
    "sent": _l("已发送"),
    "delivered": _l("已送达"),
    "failed": _l("失败"),
    "dead": _l("重试用尽"),
    "skipped_no_consent": _l("未获同意"),
    "capped": _l("超出频次"),
    "unreachable": _l("无法触达"),
}
STATUSES = tuple(STATUS_LABELS)
WAITING = ("queued", "deferred")  # a worker will look at it again
FINAL = ("sent", "delivered", "failed", "dead", "skipped_no_consent", "capped", "unreachable")
RETRYABLE = ("failed", "dead", "capped", "unreachable", "skipped_no_consent")  # staff may queue it again

CHANNEL_LABELS = {"wechat": _l("微信"), "sms": _l("短信"), "email": _l("邮件"), "webhook": _l("平台回调")}
MESSAGE_CHANNELS = tuple(CHANNEL_LABELS)
CLASS_LABELS = {"service": _l("服务通知"), "marketing": _l("营销")}

# Why delivery did not send a message (its `error_code` when the reason is ours, not a provider's).
REASON_LABELS = {
    "channel_off": _l("该渠道未配置"),
    "no_address": _l("投资人在该渠道没有联系方式"),
    "no_consent": _l("投资人未同意接收该渠道的营销消息"),
    "cap": _l("已达营销频次上限"),
    "sms_opt_out_missing": _l("营销短信缺少退订用语"),
    "mass_quota": _l("本月微信群发次数已用完"),
    "mass_needs_two": _l("微信群发至少需要两位关注者"),
    "config": _l("渠道配置有误"),
    "adapter_error": _l("发送程序出错"),
}
NOT_ERRORS = ("capped", "skipped_no_consent", "deferred")  # outcomes of the rules, not failures of a channel

# Why a message waits (status `deferred`).
HOLD_LABELS = {"registration": _l("等待注册信息"), "quiet_hours": _l("免打扰时段"), "paused": _l("渠道已暂停"),
               "rate": _l("限速"), "kill_switch": _l("营销一键暂停")}


def _only_present(column: str) -> dict[str, Any]:
    """The options of a partial index holding only the rows where `column` is set, on both databases."""
    where = text(f"{column} IS NOT NULL")
    return {"postgresql_where": where, "sqlite_where": where}


class OutboxMessage(Base):
    """One message to one investor over one channel for one cause; written in its cause's transaction.

    `key` is the idempotency key — (campaign or sender, investor, channel, cause) — so a replay, a retry
    or a second worker never makes a second message. `content` holds the rendered message (text,
    subject, html, provider template code and params, WeChat kind/template/data, webhook body); the
    recipient's address is looked up when sending, so new contact data applies.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_due", "status", "due_at"),
        Index("ix_outbox_messages_investor_created", "investor_id", "created_at"),
        Index("ix_outbox_messages_campaign", "campaign_id", "id"),
        # /metrics: outbox depth by status and channel (index-only), and the send latency of recent sends.
        Index("ix_outbox_messages_status_channel", "status", "channel"),
        # Only the rows that have one (a queued message has neither): a run queues hundreds of thousands, and
        # every lookup compares the column with a value, which implies NOT NULL (migration 0023).
        Index("ix_outbox_messages_sent_at", "sent_at", **_only_present("sent_at")),
        Index("ix_outbox_messages_provider_id", "provider_id", **_only_present("provider_id")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    campaign_id: Mapped[int | None]
    sender: Mapped[str] = mapped_column(String(64))  # campaign / reward / crm / system …
    cause: Mapped[str] = mapped_column(String(200))  # trigger event id, run id, reward id …
    # No foreign key to investors: they are never deleted (erasure anonymises them in place), and a campaign
    # run queues hundreds of thousands of messages, each then a row lock on its investor (bench/README.md).
    investor_id: Mapped[int | None]
    user_id: Mapped[str | None] = mapped_column(String(200), index=True)  # the platform's user id (API)
    channel: Mapped[str] = mapped_column(String(16))
    message_class: Mapped[str] = mapped_column(String(16))
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fallback: Mapped[str | None] = mapped_column(String(16))  # e.g. WeChat → sms when WeChat cannot reach them
    fallback_of: Mapped[int | None] = mapped_column(BigId)

    status: Mapped[str] = mapped_column(String(24), default="queued")
    hold_reason: Mapped[str | None] = mapped_column(String(32))  # deferred: HOLD_LABELS
    attempts: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[datetime]  # when a worker may take it (next attempt, end of quiet hours)
    lease_until: Mapped[datetime | None]  # while `sending`: after this a crashed worker's claim is taken over
    claimed_by: Mapped[str | None] = mapped_column(String(128))

    provider: Mapped[str | None] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(128))  # BizId, WeChat msgid / job id
    recipient_masked: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(500))

    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]


class Unreachable(Base):
    """An investor a provider refused for good on a channel, for the address it refused.

    New contact data clears it by itself: the refusal only holds while the investor's address still
    has the same digest (a WeChat follow clears it explicitly).
    """

    __tablename__ = "channel_unreachable"
    __table_args__ = (UniqueConstraint("investor_id", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    investor_id: Mapped[int] = mapped_column(ForeignKey("investors.id"))
    channel: Mapped[str] = mapped_column(String(16))
    contact_digest: Mapped[str] = mapped_column(String(64))  # sha256 of the refused address, never the address
    code: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))
    since: Mapped[datetime]
    message_id: Mapped[int | None] = mapped_column(BigId)


class CapUsage(Base):
    """Marketing messages counted against one frequency cap for one investor in one period."""

    __tablename__ = "marketing_cap_usage"
    __table_args__ = (UniqueConstraint("investor_id", "scope", "period"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    investor_id: Mapped[int] = mapped_column(ForeignKey("investors.id"))
    scope: Mapped[str] = mapped_column(String(16))  # a channel or "all"
    period: Mapped[str] = mapped_column(String(24))  # "day:2026-12-03" / "week:2026-W49"
    used: Mapped[int] = mapped_column(default=0)


class RateSlot(Base):
    """The next free send slot of a provider (GCRA), shared by every worker when there is no Redis."""

    __tablename__ = "provider_rate_slots"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_at: Mapped[float]  # seconds since the epoch


class ChannelSetting(Base):
    """A setting overridden on the settings page; it wins over the environment until cleared."""

    __tablename__ = "channel_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[int | None]
    updated_at: Mapped[datetime]


class SharedToken(Base):
    """A value every worker shares (the WeChat access token), with its expiry."""

    __tablename__ = "shared_tokens"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]


class WechatMassJob(Base):
    """One WeChat mass send (4 a month for a service account); totals arrive with MASSSENDJOBFINISH."""

    __tablename__ = "wechat_mass_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(64), unique=True)
    campaign_id: Mapped[int | None]
    recipients: Mapped[int]
    sent_at: Mapped[datetime]
    status: Mapped[str | None] = mapped_column(String(64))  # WeChat's Status, e.g. "send success"
    total_count: Mapped[int | None]
    filter_count: Mapped[int | None]
    sent_count: Mapped[int | None]
    error_count: Mapped[int | None]
    finished_at: Mapped[datetime | None]


class WechatFollower(Base):
    """A follower of the official account as its callbacks tell it, with the QR scene they came by."""

    __tablename__ = "wechat_followers"

    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str] = mapped_column(String(128), unique=True)
    subscribed: Mapped[bool]
    scene: Mapped[str | None] = mapped_column(String(64))  # the parametric QR scene (an acquisition channel's code)
    first_scene: Mapped[str | None] = mapped_column(String(64))  # the scene of their first follow: their channel
    changed_at: Mapped[datetime]


class MessageTemplate(Base):
    """A reusable message wording for one channel and class (the template library)."""

    __tablename__ = "message_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    message_class: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(200), default="")  # email
    body: Mapped[str] = mapped_column(Text)  # Jinja text: SMS wording, email text, WeChat mass text
    html: Mapped[str] = mapped_column(Text, default="")  # email HTML part
    provider_template: Mapped[str] = mapped_column(String(64), default="")  # SMS template code / WeChat template id
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)  # provider template params / WeChat data (Jinja)
    archived: Mapped[bool] = mapped_column(default=False)
    updated_by: Mapped[int | None]
    updated_at: Mapped[datetime]


class WechatSceneQr(Base):
    """A permanent parametric QR code of the official account for one scene (an acquisition channel's code).

    Kept by scene, not on the acquisition channel: the scene is what WeChat's callbacks carry (the
    followers' `scene`/`first_scene`), and channels never reads acquisition's tables.
    """

    __tablename__ = "wechat_scene_qrcodes"

    id: Mapped[int] = mapped_column(primary_key=True)
    scene: Mapped[str] = mapped_column(String(64), unique=True)
    ticket: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(String(500))  # what the QR encodes (WeChat's answer); rendered locally
    created_by: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime]
