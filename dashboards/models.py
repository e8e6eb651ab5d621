"""What the dashboards maintain so a page reads a few hundred rows, not a registration cohort (dashboards.rollup)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from growth.db import Base


class CohortDay(Base):
    """One registration day's cohort (Asia/Shanghai) in one acquisition channel, referred or not, with one first
    campaign entered, seen through one conversion window: the funnel's step counts and first-investment money, and
    channel economics' cohort figures.

    Every figure is exact for its window, derived by the same rules as the live computation (dashboards.rollup).
    """

    __tablename__ = "dashboard_cohort_days"

    window_days: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(primary_key=True)  # 0: the investor has no channel
    referred: Mapped[bool] = mapped_column(primary_key=True)
    # The first campaign entered within the window: campaign id × 2 + held out (0: none; metrics.campaign_key).
    campaign: Mapped[int] = mapped_column(primary_key=True)
    registrations: Mapped[int]
    # The funnel: how many reached each step after registration, every earlier step within the window.
    step1: Mapped[int]
    step2: Mapped[int]
    step3: Mapped[int]
    step4: Mapped[int]
    step5: Mapped[int]
    # Σ first investment (amount, amount × term days) of those counted at the first-investment step.
    funnel_first_fen: Mapped[int] = mapped_column(BigInteger)
    funnel_first_fen_days: Mapped[int] = mapped_column(BigInteger)
    # Channel economics (campaigns-api.md §7): first investment within the window, whatever came before it …
    first_investors: Mapped[int]
    first_investment_fen: Mapped[int] = mapped_column(BigInteger)
    # … and Σ amount × term days of every investment started within the window.
    amount_term_fen_days: Mapped[int] = mapped_column(BigInteger)


class CohortDirtyDay(Base):
    """A registration day whose cohort changed since its rows were built: read live until rebuilt.

    `token` is the marking batch's last event seq; the refresher deletes a mark only if the token is still the
    one it read, so a day marked again while it was being rebuilt is rebuilt again.
    """

    __tablename__ = "dashboard_cohort_dirty_days"

    day: Mapped[date] = mapped_column(primary_key=True)
    token: Mapped[int] = mapped_column(BigInteger)


class RollupState(Base):
    """Whether the cohort days are complete (a replay or a new install starts over), and how far a build got."""

    __tablename__ = "dashboard_rollup_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    built: Mapped[bool] = mapped_column(default=False)
    next_day: Mapped[date | None]  # a build in progress: every day before it is built
    # Campaign entries (written by campaigns, not the processor) up to this member id have marked their days.
    members_after: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime]
