"""Investors, their investments and fund movements: projections of the event log."""

from __future__ import annotations

from datetime import date, datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from growth.crypto import BLIND_LENGTH, Sealed, keyring
from growth.db import Base
from growth.investors.rules import SEARCH_INDEX_OF, search_index

# The one list of milestones, in funnel order, with the labels every page shows for them.
MILESTONE_LABELS = {
    "registered": _l("注册"),
    "kyc_verified": _l("实名认证"),
    "card_bound": _l("绑卡"),
    "first_deposit": _l("首次充值"),
    "first_investment": _l("首投"),
    "repeat_investment": _l("复投"),
}
MILESTONES = tuple(MILESTONE_LABELS)


def _bytewise(length: int) -> String:
    """A string column compared byte by byte on every database (PostgreSQL's "C" collation, SQLite's default).

    Prefix searches are ranges (`>= prefix AND < next prefix`) on an index; under a language collation
    (en_US …) strings with one prefix need not sort together, so the range would miss some.
    """
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class Investor(Base):
    """A platform user as we know them: profile, milestones, attribution, running totals."""

    __tablename__ = "investors"
    __table_args__ = (
        # A registration cohort's funnel and economics read this index alone (no table rows).
        Index("ix_investors_funnel", "registered_at", "channel_id", "first_investment_at", "kyc_verified_at",
              "card_bound_at", "first_deposit_at", "repeat_investment_at", "referrer_id"),
        Index("ix_investors_first_investment", "first_investment_at"),  # the home KPIs' first investors per day
        # The search box's keyed hashes (growth.crypto.blind; growth.investors.rules.search_index).
        Index("ix_investors_phone_index", "phone_index"),
        Index("ix_investors_phone_tail_index", "phone_tail_index"),
        Index("ix_investors_name_index", "name_index"),
        Index("ix_investors_email_index", "email_index"),
        # The processor asks which of a batch's investors are erased: few rows have a value, so this is small.
        Index("ix_investors_erased", "erased_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_user_id: Mapped[str] = mapped_column(_bytewise(200), unique=True)  # searched by prefix
    referral_code: Mapped[str] = mapped_column(String(16), unique=True)

    # Profile; each field keeps the occurred_at it came from, so the latest wins in any arrival order.
    # Phone (E.164), name and email are stored encrypted (growth.crypto.Sealed: read and written as plain text
    # in Python, never comparable in SQL); they are found through their keyed hashes below.
    phone: Mapped[str | None] = mapped_column(Sealed("investors.phone"))
    phone_at: Mapped[datetime | None]
    name: Mapped[str | None] = mapped_column(Sealed("investors.name"))
    name_at: Mapped[datetime | None]
    email: Mapped[str | None] = mapped_column(Sealed("investors.email"))
    email_at: Mapped[datetime | None]
    wechat_openid: Mapped[str | None] = mapped_column(String(128), index=True)
    wechat_openid_at: Mapped[datetime | None]
    # Keyed hashes of the phone, its last 4 digits, the name and the email (growth.investors.rules.search_index),
    # written with them by every writer: the search box and the message receipts look investors up by these.
    phone_index: Mapped[str | None] = mapped_column(String(BLIND_LENGTH))
    phone_tail_index: Mapped[str | None] = mapped_column(String(BLIND_LENGTH))
    name_index: Mapped[str | None] = mapped_column(String(BLIND_LENGTH))
    email_index: Mapped[str | None] = mapped_column(String(BLIND_LENGTH))

    # Milestones: the earliest occurred_at of each kind.
    registered_at: Mapped[datetime | None]
    kyc_verified_at: Mapped[datetime | None]
    card_bound_at: Mapped[datetime | None]
    first_deposit_at: Mapped[datetime | None]
    first_investment_at: Mapped[datetime | None]
    repeat_investment_at: Mapped[datetime | None]

    # Attribution, from the earliest user.registered.
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("acquisition_channels.id"), index=True)
    click_id: Mapped[str | None] = mapped_column(String(200), index=True)  # a click's registration (funnel)
    channel_code_given: Mapped[str | None] = mapped_column(String(200))
    referral_code_used: Mapped[str | None] = mapped_column(String(200), index=True)
    referrer_id: Mapped[int | None] = mapped_column(ForeignKey("investors.id"), index=True)
    device_id: Mapped[str | None] = mapped_column(String(200))
    registration_ip: Mapped[str | None] = mapped_column(String(200))

    # When the investor was erased (growth.privacy): their personal data is gone and no event brings it back.
    # Not from the log: a replay keeps it.
    erased_at: Mapped[datetime | None]

    # Running totals (integer fen).
    investment_count: Mapped[int] = mapped_column(default=0)
    investment_total_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    holdings_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    deposit_total_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    withdrawal_total_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    last_activity_at: Mapped[datetime | None]

    investments: Mapped[list[Investment]] = relationship(back_populates="investor", order_by="Investment.started_at")

    def milestone(self, name: str) -> datetime | None:
        """Return when a milestone was reached."""
        return getattr(self, f"{name}_at")


def _keep_search_index(field: str) -> None:
    """Keep a profile field's keyed hashes in step when the ORM sets it (the processor's bulk writes set them too)."""

    @event.listens_for(getattr(Investor, field), "set")
    def _set(target: Investor, value: str | None, _old: object, _initiator: object) -> None:
        for column, digest in search_index(keyring(), field, value).items():
            setattr(target, column, digest)


for _field in SEARCH_INDEX_OF:
    _keep_search_index(_field)


class Investment(Base):
    """One investment at the platform, from its created/redeemed/matured events."""

    __tablename__ = "investments"
    # An investor's investments by start, with what channel economics sums (amount × term) in the index itself.
    __table_args__ = (Index("ix_investments_investor_started", "investor_id", "started_at", "amount_fen", "term_days",
                            "investment_id"),
                      Index("ix_investments_started_amount", "started_at", "amount_fen"),  # volume per day (KPIs)
                      # Re-investment at maturity reads a range of maturities, with their investor and principal.
                      Index("ix_investments_matured", "matured_at", "investor_id", "matured_principal_fen"))

    id: Mapped[int] = mapped_column(primary_key=True)
    investment_id: Mapped[str] = mapped_column(String(200), unique=True)
    investor_id: Mapped[int] = mapped_column(ForeignKey("investors.id"))
    product_id: Mapped[str | None] = mapped_column(String(200))
    product_name: Mapped[str | None] = mapped_column(String(200))
    term_days: Mapped[int | None]
    annual_rate_bp: Mapped[int | None]
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime | None]
    maturity_date: Mapped[date | None] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active / redeemed / matured
    reward_ids: Mapped[list[str]] = mapped_column(default=list)
    redeemed_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    redeemed_at: Mapped[datetime | None]
    matured_principal_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    interest_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    matured_at: Mapped[datetime | None]

    investor: Mapped[Investor] = relationship(back_populates="investments")


class FundsMovement(Base):
    """A deposit or withdrawal, once per platform id, so totals never double count."""

    __tablename__ = "funds_movements"
    # external_id first: the processor looks movements up by the platform's id. The investor page and its
    # timeline read an investor's movements newest first.
    __table_args__ = (UniqueConstraint("external_id", "kind"),
                      Index("ix_funds_movements_investor_occurred", "investor_id", "occurred_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # deposit / withdrawal
    external_id: Mapped[str] = mapped_column(String(200))
    investor_id: Mapped[int] = mapped_column(ForeignKey("investors.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime]


class InvestorTag(Base):
    """A label staff put on an investor (vip, 高净值, 回访中 …), for segments and worklists; not from the log."""

    __tablename__ = "investor_tags"
    __table_args__ = (UniqueConstraint("investor_id", "tag"), Index("ix_investor_tags_tag", "tag"))

    id: Mapped[int] = mapped_column(primary_key=True)
    investor_id: Mapped[int] = mapped_column(ForeignKey("investors.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
