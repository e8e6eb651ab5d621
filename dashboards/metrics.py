"""Pure metric code: funnels from milestone timestamps, and how their groups are presented."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from math import ceil
from typing import Any

from growth.investors.models import MILESTONES
from growth.money import fen_to_api
from growth.timeutil import iso_week_key, local_date

FUNNEL_STEPS = MILESTONES  # the standard funnel walks the milestones in order
FIRST_INVESTMENT_STEP = FUNNEL_STEPS.index("first_investment")
OTHERS_KEY = "__others__"


@dataclass(frozen=True, slots=True)
class CohortMember:
    """One investor of a funnel cohort: milestone times in FUNNEL_STEPS order, and what it is grouped by."""

    milestones: tuple[datetime | None, ...]
    channel_code: str | None
    channel_name: str | None
    referred: bool = False
    # The first campaign the investor entered within the window, and on which side (None: no campaign).
    campaign: CampaignEntry | None = None
    first_investment_fen: int | None = None  # the first investment's amount and term (the money view)
    first_investment_term_days: int | None = None


@dataclass(frozen=True, slots=True)
class CampaignEntry:
    """A campaign an investor entered: its id and name, and whether they were held out."""

    campaign_id: int
    name: str
    holdout: bool


GROUP_BY = ("none", "channel", "week", "campaign", "referral")
NO_CAMPAIGN_KEY = "none"
HOLDOUT_SUFFIX = "-holdout"
# Labels are data in the API, like the channels' names: the same in every language (pages translate them).
REFERRAL_GROUP_LABELS = {"referred": "被邀请", "not_referred": "非邀请"}
NO_CAMPAIGN_LABEL = "未参加活动"
HOLDOUT_LABEL = "%s（对照组）"


@dataclass
class FunnelGroup:
    """Counts per step for one group, how many of its members are still inside their window, and the money and
    times of those who converted."""

    key: str
    label: str
    counts: list[int] = field(default_factory=lambda: [0] * len(FUNNEL_STEPS))
    # Members registered less than window_days before `now`: their later steps may still happen.
    immature: int = 0
    # Σ of the first investments of the members counted at the first-investment step: amount, amount × term days.
    first_investment_fen: int = 0
    first_investment_fen_days: int = 0
    # Per step, the seconds from registration to reaching it, of every member counted at it (step 0: empty).
    seconds: list[list[float]] = field(default_factory=lambda: [[] for _ in FUNNEL_STEPS])

    @property
    def registered(self) -> int:
        """Return the group's size (its first step)."""
        return self.counts[0]

    @property
    def first_investment_annualised_fen(self) -> int:
        """Return Σ first-investment amount × term / 365, rounded half-up to the fen."""
        return half_up(self.first_investment_fen_days, YEAR_DAYS)

    def add(self, member: CohortMember, reached: int, immature: int, seconds: Sequence[float]) -> None:
        """Count one member who reached `reached` leading steps, taking `seconds[k]` to reach step k."""
        for k in range(reached):
            self.counts[k] += 1
        for k in range(1, reached):
            self.seconds[k].append(seconds[k])
        self.immature += immature
        if reached > FIRST_INVESTMENT_STEP and member.first_investment_fen is not None:
            self.first_investment_fen += member.first_investment_fen
            self.first_investment_fen_days += member.first_investment_fen * (member.first_investment_term_days or 0)


@dataclass
class FunnelResult:
    """The whole cohort's counts and each group's, groups sorted by key."""

    total: FunnelGroup
    groups: list[FunnelGroup]


def steps_reached(milestones: Sequence[datetime | None], window: timedelta) -> int:
    """Return how many leading steps happened, each within `window` of registration."""
    return len(step_seconds(milestones, window))


def step_seconds(milestones: Sequence[datetime | None], window: timedelta) -> list[float]:
    """Return, for each leading step reached within `window` of registration, the seconds it took to reach it.

    A step is reached when it and every step before it have happened, so its time is the latest of theirs.
    """
    registered = milestones[0]
    if registered is None:
        return []
    deadline = registered + window
    reached: list[float] = []
    latest = registered
    for at in milestones:
        if at is None or at > deadline:
            break
        latest = max(latest, at)
        reached.append((latest - registered).total_seconds())
    return reached


def _group_of(member: CohortMember, group_by: str) -> tuple[str, str]:
    """Return the (key, label) of the group a member falls in."""
    if group_by == "channel":
        key = member.channel_code or "organic"
        return key, member.channel_name or key
    if group_by == "week":
        key = iso_week_key(local_date(member.milestones[0]))  # type: ignore[arg-type]
        return key, key
    if group_by == "referral":
        key = "referred" if member.referred else "not_referred"
        return key, REFERRAL_GROUP_LABELS[key]
    entry = member.campaign
    if entry is None:
        return NO_CAMPAIGN_KEY, NO_CAMPAIGN_LABEL
    if entry.holdout:
        return f"{entry.campaign_id}{HOLDOUT_SUFFIX}", HOLDOUT_LABEL % entry.name
    return str(entry.campaign_id), entry.name


def funnel(members: Iterable[CohortMember], *, window_days: int, group_by: str,
           now: datetime | None = None) -> FunnelResult:
    """Count the funnel overall and per group (one of GROUP_BY); `now` marks open windows.

    Groups by campaign put a campaign's held-out members in a group of their own ("<id>-holdout"), and those who
    entered no campaign within the window under "none".
    """
    window = timedelta(days=window_days)
    total = FunnelGroup("total", "total")
    groups: dict[str, FunnelGroup] = {}
    for member in members:
        seconds = step_seconds(member.milestones, window)
        registered = member.milestones[0]
        immature = int(now is not None and registered is not None and registered + window > now)
        total.add(member, len(seconds), immature, seconds)
        if group_by == "none":
            continue
        key, label = _group_of(member, group_by)
        group = groups.get(key)
        if group is None:
            group = groups[key] = FunnelGroup(key, label)
        group.add(member, len(seconds), immature, seconds)
    return FunnelResult(total, [groups[k] for k in sorted(groups)])


def median(values: Sequence[float]) -> float | None:
    """Return the median (the mean of the two middle values of an even count); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], share: float) -> float | None:
    """Return the nearest-rank percentile (the smallest value with at least `share` of the values at or below it)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-round(share * 1000) * len(ordered) // 1000))  # ceil(share × n) without float error
    return ordered[rank - 1]


def conversion_rates(counts: Sequence[int]) -> list[float | None]:
    """Return each step's share of the first step (None when the cohort is empty)."""
    first = counts[0] if counts else 0
    return [(c / first if first else None) for c in counts]


def largest_groups(groups: Sequence[FunnelGroup], limit: int) -> tuple[list[FunnelGroup], list[FunnelGroup]]:
    """Split groups into the `limit` largest by registrations (ties by key) and the rest."""
    ranked = sorted(groups, key=lambda g: (-g.registered, g.key))
    if len(ranked) <= limit:
        return ranked, []
    return ranked[:limit], ranked[limit:]


def merge_groups(groups: Iterable[FunnelGroup], *, key: str = OTHERS_KEY, label: str = "") -> FunnelGroup:
    """Return one group whose counts, money and times are the sums of the given groups'."""
    merged = FunnelGroup(key, label)
    for group in groups:
        merged.counts = [a + b for a, b in zip(merged.counts, group.counts, strict=True)]
        merged.immature += group.immature
        merged.first_investment_fen += group.first_investment_fen
        merged.first_investment_fen_days += group.first_investment_fen_days
        for mine, theirs in zip(merged.seconds, group.seconds, strict=True):
            mine.extend(theirs)
    return merged


# ---------------------------------------------------------------- the daily cohort rollup (dashboards.rollup)

CellKey = tuple[int, date, int, bool, int]  # window days, registration day, channel id (0: none), referred, campaign
NO_CAMPAIGN = 0  # a cell's campaign key when nobody in it entered a campaign within the window


def campaign_key(campaign_id: int, holdout: bool) -> int:
    """Return the cell's key of a first campaign entered: the campaign and its side in one integer (never 0)."""
    return campaign_id * 2 + int(holdout)


@dataclass
class Cell:
    """One registration day's cohort in one channel, referred or not, with one first campaign, through one window
    (a rollup row)."""

    registrations: int = 0
    steps: list[int] = field(default_factory=lambda: [0] * (len(FUNNEL_STEPS) - 1))  # reached, after registration
    funnel_first_fen: int = 0
    funnel_first_fen_days: int = 0
    first_investors: int = 0  # economics: first investment within the window, whatever came before
    first_investment_fen: int = 0
    amount_term_fen_days: int = 0


def cell_immature(key: CellKey, cell: Cell, boundary: date, on_boundary: dict[CellKey, int]) -> int:
    """Return how many of a cell's members are still inside their window: all after the boundary day, none
    before it, and on it the count given for the cell."""
    day = key[1]
    if day > boundary:
        return cell.registrations
    return on_boundary.get(key, 0) if day == boundary else 0


def _cell_group(key: CellKey, group_by: str, channels: dict[int, tuple[str, str]],
                campaigns: dict[int, str]) -> tuple[str, str]:
    _window, day, channel_id, referred, campaign = key
    if group_by == "channel":
        return channels.get(channel_id, ("organic", "organic"))
    if group_by == "week":
        week = iso_week_key(day)
        return week, week
    if group_by == "referral":
        group = "referred" if referred else "not_referred"
        return group, REFERRAL_GROUP_LABELS[group]
    if campaign == NO_CAMPAIGN:
        return NO_CAMPAIGN_KEY, NO_CAMPAIGN_LABEL
    campaign_id, holdout = divmod(campaign, 2)
    name = campaigns.get(campaign_id, str(campaign_id))
    return (f"{campaign_id}{HOLDOUT_SUFFIX}", HOLDOUT_LABEL % name) if holdout else (str(campaign_id), name)


def funnel_from_cells(cells: dict[CellKey, Cell], *, group_by: str, channels: dict[int, tuple[str, str]],
                      campaigns: dict[int, str], boundary: date,
                      on_boundary: dict[CellKey, int]) -> FunnelResult:
    """Return the funnel (without times to convert) from rollup cells; `channels` maps ids to (code, name) and
    `campaigns` ids to names."""
    total = FunnelGroup("total", "total")
    groups: dict[str, FunnelGroup] = {}
    for key, cell in cells.items():
        immature = cell_immature(key, cell, boundary, on_boundary)
        targets = [total]
        if group_by != "none":
            name, label = _cell_group(key, group_by, channels, campaigns)
            targets.append(groups.setdefault(name, FunnelGroup(name, label)))
        for group in targets:
            group.counts[0] += cell.registrations
            for k, n in enumerate(cell.steps, start=1):
                group.counts[k] += n
            group.immature += immature
            group.first_investment_fen += cell.funnel_first_fen
            group.first_investment_fen_days += cell.funnel_first_fen_days
    return FunnelResult(total, [groups[k] for k in sorted(groups)])


@dataclass(frozen=True, slots=True)
class WeekSpan:
    """An ISO week as shown to people: its days, and which of them the selected range covers."""

    key: str
    monday: date
    sunday: date
    first: date  # first day of the week inside the selected range
    last: date  # last day inside the range, and not after today
    current: bool

    @property
    def partial(self) -> bool:
        """Return whether the week is cut by the range's start or end, or is still running."""
        return self.current or self.first != self.monday or self.last != self.sunday


def week_span(key: str, *, start: date, end: date, today: date) -> WeekSpan:
    """Return the days of an ISO week key ("2026-W48") within [start, end] and up to today."""
    year, week = key.split("-W")
    monday = date.fromisocalendar(int(year), int(week), 1)
    sunday = monday + timedelta(days=6)
    return WeekSpan(key, monday, sunday, max(monday, start), min(sunday, end, max(today, monday)),
                    monday <= today <= sunday)


def day_range_text(first: date, last: date) -> str:
    """Format a day range compactly: "11-23–11-29" (years only when they differ from the first's)."""
    if first == last:
        return f"{first:%m-%d}"
    if first.year != last.year:
        return f"{first:%Y-%m-%d}–{last:%Y-%m-%d}"
    return f"{first:%m-%d}–{last:%m-%d}"


def week_label(span: WeekSpan) -> str:
    """Return "2026-W48 · 11-23–11-29": the ISO key with its Monday-to-Sunday dates."""
    return f"{span.key} · {day_range_text(span.monday, span.sunday)}"


def immature_since(now: datetime, window_days: int) -> date:
    """Return the first registration date (Asia/Shanghai) whose window has not closed by `now`."""
    return local_date(now - timedelta(days=window_days))


# ---------------------------------------------------------------- channel economics (campaigns-api.md §7)

YEAR_DAYS = 365
TOTAL_CODE = "total"
TOTAL_LABEL = "合计"  # data, like the channels' names: the same in every language of the API


def half_up(numerator: int, denominator: int) -> int:
    """Divide non-negative integers, rounding half up (0.5 fen → 1 fen)."""
    return (2 * numerator + denominator) // (2 * denominator)


def ratio_text(value: Fraction | None, places: int = 4) -> str | None:
    """Format an exact ratio as a decimal string rounded half-up (away from zero) to `places`: "1.6612"."""
    if value is None:
        return None
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return str(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


@dataclass
class ChannelFigures:
    """One channel's economics for a period, exact: counts and fen, the annualised amount as Σ amount × term.

    Everything rounded is derived from these at the end (spec §7: money rounded half-up to the fen once).
    """

    code: str
    label: str
    cost_fen: int = 0
    clicks: int = 0
    registrations: int = 0
    first_investors: int = 0
    first_investment_fen: int = 0
    amount_term_fen_days: int = 0  # Σ amount (fen) × term_days over the cohort's investments in the window
    incentive_fen: int = 0
    immature: int = 0  # members registered less than a window ago: their figures may still grow

    def merged(self, other: ChannelFigures) -> ChannelFigures:
        """Return the sums of two channels' figures, under this one's code and label."""
        sums = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)
                if f.name not in ("code", "label")}
        return replace(self, **sums)

    @property
    def annualised_fen(self) -> int:
        """Return Σ amount × term_days / 365, rounded half-up to the fen."""
        return half_up(self.amount_term_fen_days, YEAR_DAYS)

    @property
    def cac_fen(self) -> int | None:
        """Return the cost per first investor (None when there is none)."""
        return half_up(self.cost_fen, self.first_investors) if self.first_investors else None

    @property
    def cost_per_registration_fen(self) -> int | None:
        """Return the cost per registration (None when nobody registered)."""
        return half_up(self.cost_fen, self.registrations) if self.registrations else None

    @property
    def spend_fen(self) -> int:
        """Return what the channel's investors cost in all: acquisition cost and incentives."""
        return self.cost_fen + self.incentive_fen

    @property
    def annualised_per_yuan(self) -> Fraction | None:
        """Return the first-window annualised investment per yuan of acquisition cost (None without a cost)."""
        if not self.cost_fen:
            return None
        return Fraction(self.amount_term_fen_days, YEAR_DAYS * self.cost_fen)

    @property
    def net_roi(self) -> Fraction | None:
        """Return (annualised amount − cost − incentive cost) ÷ (cost + incentive cost), exact; None without spend.

        The annualised amount stands for what the cohort brought: the platform's volume-weighted business, not
        its profit (we know no margin), so this reads "annualised yuan invested beyond each yuan spent".
        """
        if not self.spend_fen:
            return None
        return (Fraction(self.amount_term_fen_days, YEAR_DAYS) - self.spend_fen) / self.spend_fen


def economics_total(rows: Iterable[ChannelFigures]) -> ChannelFigures:
    """Return the total of channel rows (exact sums; rounded only when shown)."""
    total = ChannelFigures(TOTAL_CODE, TOTAL_LABEL)
    for row in rows:
        total = total.merged(row)
    return total


def _money(fen: int | None) -> str | None:
    return None if fen is None else fen_to_api(fen)


def parse_fee_rate(text: str | None) -> Fraction | None:
    """Read the platform's annual service-fee rate ("0.0250" = 2.5 % a year); None when not set.

    Raise ValueError with what is expected: a decimal above 0 and below 1.
    """
    if text is None or not str(text).strip():
        return None
    try:
        rate = Fraction(Decimal(str(text).strip()))
    except (ArithmeticError, ValueError):
        rate = Fraction(-1)
    if not 0 < rate < 1:
        raise ValueError(f"ECONOMICS_SERVICE_FEE_RATE must be an annual rate between 0 and 1, like 0.0250 (2.5 %), "
                         f"not {text!r}")
    return rate


def payback_days(row: ChannelFigures, *, fee_rate: Fraction | None, window_days: int) -> int | None:
    """Return how many days of the cohort's service fees, earned at its first window's pace, repay what it cost.

    The investments started in the window earn the platform fee_rate × Σ amount × term ÷ 365 (the annualised
    amount) over their terms; at that pace per `window_days`, the spend (acquisition cost and incentives) is repaid
    after spend ÷ that × window_days days, rounded up. None without a fee rate, a spend or an investment.
    """
    if fee_rate is None or not row.spend_fen or not row.amount_term_fen_days:
        return None
    fees_per_window = fee_rate * Fraction(row.amount_term_fen_days, YEAR_DAYS)
    return ceil(window_days * row.spend_fen / fees_per_window)


def economics_json(row: ChannelFigures, *, fee_rate: Fraction | None = None, window_days: int = 30) -> dict[str, Any]:
    """Return one row as the API answers it (spec §7 fields, then this project's extras)."""
    return {
        "code": row.code, "label": row.label, "cost": fen_to_api(row.cost_fen), "clicks": row.clicks,
        "registrations": row.registrations, "first_investors": row.first_investors,
        "first_investment_amount": fen_to_api(row.first_investment_fen),
        "annualised_amount": fen_to_api(row.annualised_fen), "incentive_cost": fen_to_api(row.incentive_fen),
        "cac": _money(row.cac_fen), "cost_per_registration": _money(row.cost_per_registration_fen),
        "annualised_per_yuan": ratio_text(row.annualised_per_yuan), "net_roi": ratio_text(row.net_roi),
        "registrations_window_open": row.immature,
        "payback_days": payback_days(row, fee_rate=fee_rate, window_days=window_days),
    }
