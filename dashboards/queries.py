"""SQL → rows for the dashboards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from campaigns.models import Campaign, CampaignMember
from dashboards import rollup
from dashboards.metrics import (
    CampaignEntry,
    ChannelFigures,
    CohortMember,
    FunnelResult,
    cell_immature,
    funnel_from_cells,
)
from growth.acquisition.models import AcquisitionChannel, ChannelCost, Click
from growth.acquisition.projection import ORGANIC_CHANNEL
from growth.db import within_days_after
from growth.investors.models import Investment, Investor
from growth.rewards.models import Reward
from growth.timeutil import local_day_bounds

FIRST_DAY, LAST_DAY = date(1, 1, 2), date(9999, 12, 30)


def funnel_cohort(*, session: Session, start: date, end: date, window_days: int = 30, campaigns: bool = False,
                  money: bool = False) -> Iterator[CohortMember]:
    """Yield the investors whose registration (Asia/Shanghai date) lies in [start, end].

    `campaigns` adds each member's first campaign entered within the window (one index lookup per member), `money`
    their first investment's amount and term (another); the counts alone read one covering index.
    """
    lo, hi = _day_bounds(start, end)
    columns: list[Any] = [Investor.registered_at, Investor.kyc_verified_at, Investor.card_bound_at,
                          Investor.first_deposit_at, Investor.first_investment_at, Investor.repeat_investment_at,
                          AcquisitionChannel.code, AcquisitionChannel.name, Investor.referrer_id.is_not(None)]
    if campaigns:
        m = CampaignMember
        # One integer per member (campaign id × 2 + held out) keeps it to one correlated lookup.
        columns.append(
            select(m.campaign_id * 2 + case((m.holdout, 1), else_=0))
            .where(m.investor_id == Investor.id, within_days_after(m.entered_at, Investor.registered_at, window_days))
            .order_by(m.entered_at, m.id).limit(1).correlate(Investor).scalar_subquery())
    if money:
        first = (select(Investment.amount_fen, Investment.term_days)
                 .where(Investment.investor_id == Investor.id, Investment.started_at == Investor.first_investment_at)
                 .order_by(Investment.investment_id).limit(1).correlate(Investor))
        columns += [first.with_only_columns(Investment.amount_fen).scalar_subquery(),
                    first.with_only_columns(Investment.term_days).scalar_subquery()]
    query = (
        select(*columns)
        .outerjoin(AcquisitionChannel, AcquisitionChannel.id == Investor.channel_id)
        .where(Investor.registered_at >= lo, Investor.registered_at < hi)
        .execution_options(yield_per=5000)
    )
    names: dict[int, str] = {}
    if campaigns:
        names = dict(session.execute(select(Campaign.id, Campaign.name)).all())
    for row in session.execute(query):
        entry = None
        if campaigns and row[9] is not None:
            campaign_id, holdout = divmod(int(row[9]), 2)
            entry = CampaignEntry(campaign_id, names.get(campaign_id, str(campaign_id)), bool(holdout))
        amount, term = (row[-2], row[-1]) if money else (None, None)
        yield CohortMember(tuple(row[:6]), row[6], row[7], bool(row[8]), entry,
                           None if amount is None else int(amount), None if term is None else int(term))


def funnel_from_rollup(*, session: Session, start: date, end: date, window_days: int, group_by: str,
                       now: datetime | None) -> FunnelResult | None:
    """Return the funnel's counts and money from the daily rollup; None when it cannot answer (see rollup.cells).

    Without `now`, nobody is counted as inside their window (the API does not report it).
    """
    # Only the dimension the grouping needs (the day is always kept: weeks, marked days, open windows).
    keep = {"channel": ("channel",), "referral": ("referred",), "campaign": ("campaign",)}.get(group_by, ())
    found = rollup.cells(session, max(start, FIRST_DAY), min(end, LAST_DAY), window_days, keep)
    if found is None:
        return None
    boundary, on_boundary = (date.max, {}) if now is None else rollup.open_windows(session, start, end, window_days,
                                                                                 now, keep)
    ids = sorted({key[2] for key in found if key[2]})
    channels = {cid: (code, name) for cid, code, name in session.execute(
        select(AcquisitionChannel.id, AcquisitionChannel.code, AcquisitionChannel.name)
        .where(AcquisitionChannel.id.in_(ids)))} if ids else {}
    campaigns = dict(session.execute(select(Campaign.id, Campaign.name)).all()) if group_by == "campaign" else {}
    return funnel_from_cells(found, group_by=group_by, channels=channels, campaigns=campaigns, boundary=boundary,
                             on_boundary=on_boundary)


def click_conversion(*, session: Session, start: date, end: date, window_days: int) -> dict[str, tuple[int, int]]:
    """Return per channel code the tracking-link clicks on the Shanghai days [start, end] and how many of them
    became a registration (the investor's click_id) within the window of the click."""
    lo, hi = _day_bounds(start, end)
    registered = and_(Investor.click_id == Click.click_id,
                      within_days_after(Investor.registered_at, Click.at, window_days))
    rows = session.execute(
        select(AcquisitionChannel.code, func.count(), func.count(Investor.id))
        .select_from(Click)
        .join(AcquisitionChannel, AcquisitionChannel.id == Click.channel_id)
        .outerjoin(Investor, registered)
        .where(Click.at >= lo, Click.at < hi)
        .group_by(AcquisitionChannel.code)
    ).all()
    return {code: (int(clicks), int(registrations)) for code, clicks, registrations in rows}


def default_range(today: date, days: int = 30) -> tuple[date, date]:
    """Return the last `days` business days up to today."""
    return today - timedelta(days=days - 1), today


def _day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """Return the UTC [lo, hi) instants of the Asia/Shanghai days start..end."""
    lo, _ = local_day_bounds(max(start, FIRST_DAY))
    _, hi = local_day_bounds(min(end, LAST_DAY))
    return lo, hi


def _first_investment_amount() -> object:
    """The amount of an investor's first investment: the earliest start, the platform's id breaking a tie."""
    return (
        select(Investment.amount_fen)
        .where(Investment.investor_id == Investor.id, Investment.started_at == Investor.first_investment_at)
        .order_by(Investment.investment_id).limit(1)
        .correlate(Investor).scalar_subquery()
    )


def channel_economics(*, session: Session, start: date, end: date, window_days: int,
                      now: datetime) -> list[ChannelFigures]:
    """Return the raw figures of channel economics (spec §7) per channel, in fen and counts, unrounded.

    A fixed number of aggregate queries whatever the size: the cohort (registered on a Shanghai day in [start,
    end]) per channel with its first investors and its investments within the window — from the daily rollup
    when it can answer (dashboards.rollup), else from the cohort's index —, its rewards within the window (a join
    on an index by investor), daily costs and tracking-link clicks in the range, and the channels' names. Every
    channel with a cost, a click or a registration gets a row; investors without a channel count as organic.
    """
    lo, hi = _day_bounds(start, end)
    in_cohort = (Investor.registered_at >= lo, Investor.registered_at < hi)
    figures: dict[int | None, ChannelFigures] = {}

    def row(channel_id: int | None) -> ChannelFigures:
        found = figures.get(channel_id)
        if found is None:
            found = figures[channel_id] = ChannelFigures(code="", label="")
        return found

    cells = rollup.cells(session, max(start, FIRST_DAY), min(end, LAST_DAY), window_days, ("channel",))
    if cells is not None:
        boundary, on_boundary = rollup.open_windows(session, start, end, window_days, now, ("channel",))
        for key, cell in cells.items():
            f = row(key[2] or None)
            f.registrations += cell.registrations
            f.first_investors += cell.first_investors
            f.first_investment_fen += cell.first_investment_fen
            f.amount_term_fen_days += cell.amount_term_fen_days
            f.immature += cell_immature(key, cell, boundary, on_boundary)
    else:
        _live_cohort(session, in_cohort, window_days, now, row)
    _add_incentives_costs_clicks(session, in_cohort, start, end, window_days, lo, hi, row)
    return _named(session, figures)


def _live_cohort(session: Session, in_cohort: tuple[Any, ...], window_days: int, now: datetime,
                 row: Callable[[int | None], ChannelFigures]) -> None:
    """Add the cohort's registrations, first investors and investments per channel, read from the cohort itself."""
    first_within = within_days_after(Investor.first_investment_at, Investor.registered_at, window_days)
    cohort = session.execute(
        select(Investor.channel_id, func.count(),
               func.sum(case((first_within, 1), else_=0)),
               func.sum(case((first_within, func.coalesce(_first_investment_amount(), 0)), else_=0)),
               # Registered less than a window before now: their window is still open.
               func.sum(case((Investor.registered_at > now - timedelta(days=window_days), 1), else_=0)))
        .where(*in_cohort).group_by(Investor.channel_id)
    ).all()
    invested = session.execute(
        select(Investor.channel_id, func.sum(Investment.amount_fen * Investment.term_days))
        .join(Investment, Investment.investor_id == Investor.id)
        .where(*in_cohort, within_days_after(Investment.started_at, Investor.registered_at, window_days))
        .group_by(Investor.channel_id)
    ).all()
    for cid, n, firsts, first_fen, immature in cohort:
        f = row(cid)
        f.registrations, f.first_investors = int(n), int(firsts or 0)
        f.first_investment_fen, f.immature = int(first_fen or 0), int(immature or 0)
    for cid, fen_days in invested:
        row(cid).amount_term_fen_days = int(fen_days or 0)


def _add_incentives_costs_clicks(session: Session, in_cohort: tuple[Any, ...], start: date, end: date,
                                 window_days: int, lo: datetime, hi: datetime,
                                 row: Callable[[int | None], ChannelFigures]) -> None:
    """Add the rewards granted to the cohort within the window, and the range's costs and clicks, per channel."""
    incentives = session.execute(
        select(Investor.channel_id, func.sum(Reward.cost_fen))
        .join(Reward, Reward.investor_id == Investor.id)
        .where(*in_cohort, within_days_after(Reward.granted_at, Investor.registered_at, window_days))
        .group_by(Investor.channel_id)
    ).all()
    costs = session.execute(
        select(ChannelCost.channel_id, func.sum(ChannelCost.amount_fen))
        .where(ChannelCost.day >= start, ChannelCost.day <= end).group_by(ChannelCost.channel_id)
    ).all()
    clicks = session.execute(
        select(Click.channel_id, func.count()).where(Click.at >= lo, Click.at < hi).group_by(Click.channel_id)
    ).all()

    for cid, fen in incentives:
        row(cid).incentive_fen = int(fen or 0)
    for cid, fen in costs:
        row(cid).cost_fen = int(fen or 0)
    for cid, n in clicks:
        row(cid).clicks = int(n)


def _named(session: Session, figures: dict[int | None, ChannelFigures]) -> list[ChannelFigures]:
    """Give each channel's figures its code and name, merging rows that share a code, sorted by code."""
    ids = [cid for cid in figures if cid is not None]
    names = {cid: (code, name) for cid, code, name in session.execute(
        select(AcquisitionChannel.id, AcquisitionChannel.code, AcquisitionChannel.name)
        .where(AcquisitionChannel.id.in_(ids)))} if ids else {}
    by_code: dict[str, ChannelFigures] = {}
    for cid, f in figures.items():
        # An investor without a channel counts as organic (the funnel's rule; attribution always sets one).
        f.code, f.label = names.get(cid, ORGANIC_CHANNEL[:2]) if cid is not None else ORGANIC_CHANNEL[:2]
        by_code[f.code] = by_code[f.code].merged(f) if f.code in by_code else f
    return [by_code[code] for code in sorted(by_code)]
