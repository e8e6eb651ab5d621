"""Daily cohort rollups: registration day × acquisition channel × referred × first campaign entered, for each kept
conversion window.

A funnel or channel-economics view of a month reads a few hundred of these rows instead of the month's
registrations with their investments. They are kept exact and fresh like this:

- The event processor marks the registration days its batch changed (`CohortDaysProjection`, in the batch's own
  transaction: a crash loses no mark). Only the processor writes investors and investments.
- A scheduler job (`refresh`) rebuilds marked days from investors and investments, with the same pure rules as
  the live computation, and clears a mark only if nobody marked the day again meanwhile.
- Readers (`cells`) take the rows of settled days and compute marked days live, so a page is never staler than
  the processor; a window that is not kept, or a rollup not (yet) complete — a new install, a replay — is
  answered wholly live by the caller.
- `growth dashboards rebuild` (and the job, step by step, when the rollup is not complete) builds every day.

Campaign entries are written by campaigns, not the processor: the refresher marks their days from a member-id cursor
(`_member_days`). Rewards (incentive cost) are not rolled up: their writers are many (grants, fan-outs, jobs, staff);
they are read per cohort through a covering index (docs/architecture.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from campaigns.models import CampaignMember
from dashboards.metrics import FIRST_INVESTMENT_STEP, NO_CAMPAIGN, Cell, CellKey, campaign_key, step_seconds
from dashboards.models import CohortDay, CohortDirtyDay, RollupState
from growth.db import insert_many, table_of, within_days_after
from growth.investors.models import Investment, Investor
from growth.projections import Batch, LoggedEvent, Projection
from growth.timeutil import local_date, local_day_bounds, utcnow

ROLLUP_WINDOWS = (1, 3, 7, 14, 30, 60, 90, 180, 365)  # conversion windows kept, in days; others are read live
STATE = "cohort-days"
BUILD_DAYS_PER_RUN = 62  # a build step (one job run) writes two months of registration days
REFRESH_DAYS_PER_RUN = 200
MEMBER_ROWS_PER_RUN = 50_000  # campaign entries read per run (a big run's members take several)
MEMBER_HORIZON = timedelta(minutes=2)  # an entry's transaction is expected to commit within this
_ROLLED = ("registered_at", "kyc_verified_at", "card_bound_at", "first_deposit_at", "first_investment_at",
           "repeat_investment_at", "channel_id", "referrer_id")


# ---------------------------------------------------------------- computing cells (the one derivation)

def _first_investment(column: Any) -> Any:
    """Return a correlated subquery for a column of the investor's first investment (the funnel's tie rule)."""
    return (select(column)
            .where(Investment.investor_id == Investor.id, Investment.started_at == Investor.first_investment_at)
            .order_by(Investment.investment_id).limit(1).correlate(Investor).scalar_subquery())


def compute_cells(session: Session, first: date, last: date, windows: Sequence[int] = ROLLUP_WINDOWS, *,
                  registered_after: datetime | None = None) -> dict[CellKey, Cell]:
    """Compute the cells of the registration days [first, last] for each window, from investors, investments and
    campaign entries (`registered_after`: only those who registered after that instant)."""
    lo, _ = local_day_bounds(first)
    _, hi = local_day_bounds(last)
    in_days = [Investor.registered_at >= lo, Investor.registered_at < hi]
    if registered_after is not None:
        in_days.append(Investor.registered_at > registered_after)
    widest = max(windows)
    invested: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for investor_id, started, fen_days in session.execute(
            select(Investment.investor_id, Investment.started_at, Investment.amount_fen * Investment.term_days)
            .join(Investor, Investor.id == Investment.investor_id)
            .where(*in_days, within_days_after(Investment.started_at, Investor.registered_at, widest))):
        if fen_days is not None and started is not None:
            invested[investor_id].append((started, int(fen_days)))
    entries: dict[int, list[tuple[datetime, int, int]]] = defaultdict(list)
    m = CampaignMember
    for investor_id, entered, member_id, campaign_id, holdout in session.execute(
            select(m.investor_id, m.entered_at, m.id, m.campaign_id, m.holdout)
            .join(Investor, Investor.id == m.investor_id)
            .where(*in_days, within_days_after(m.entered_at, Investor.registered_at, widest))):
        entries[investor_id].append((entered, member_id, campaign_key(campaign_id, bool(holdout))))
    cells: dict[CellKey, Cell] = {}
    query = (select(Investor.id, Investor.registered_at, Investor.kyc_verified_at, Investor.card_bound_at,
                    Investor.first_deposit_at, Investor.first_investment_at, Investor.repeat_investment_at,
                    Investor.channel_id, Investor.referrer_id.is_not(None),
                    _first_investment(Investment.amount_fen), _first_investment(Investment.term_days))
             .where(*in_days).execution_options(yield_per=5000))
    for row in session.execute(query):
        investor_id, registered, milestones = row[0], row[1], tuple(row[1:7])
        channel_id, referred, first_fen, first_term = row[7] or 0, bool(row[8]), row[9], row[10]
        first_at, day = row[5], local_date(registered)
        mine = invested.get(investor_id, ())
        # The first campaign entered (earliest entry, then member id), as the live funnel picks it.
        first_entries = sorted(entries.get(investor_id, ()))
        for window in windows:
            span = timedelta(days=window)
            deadline = registered + span
            campaign = next((k for at, _id, k in first_entries if at <= deadline), NO_CAMPAIGN)
            key = (window, day, channel_id, referred, campaign)
            cell = cells.get(key)
            if cell is None:
                cell = cells[key] = Cell()
            reached = len(step_seconds(milestones, span))
            cell.registrations += 1
            for k in range(1, reached):
                cell.steps[k - 1] += 1
            if reached > FIRST_INVESTMENT_STEP and first_fen is not None:
                cell.funnel_first_fen += first_fen
                cell.funnel_first_fen_days += first_fen * (first_term or 0)
            if first_at is not None and first_at <= deadline:
                cell.first_investors += 1
                cell.first_investment_fen += first_fen or 0
            cell.amount_term_fen_days += sum(fen_days for at, fen_days in mine if at <= deadline)
    return cells


def _runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Return sorted days as runs of consecutive days [(first, last), …]."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _row(key: CellKey, cell: Cell) -> dict[str, Any]:
    window, day, channel_id, referred, campaign = key
    return {"window_days": window, "day": day, "channel_id": channel_id, "referred": referred, "campaign": campaign,
            "registrations": cell.registrations, **{f"step{k + 1}": n for k, n in enumerate(cell.steps)},
            "funnel_first_fen": cell.funnel_first_fen, "funnel_first_fen_days": cell.funnel_first_fen_days,
            "first_investors": cell.first_investors, "first_investment_fen": cell.first_investment_fen,
            "amount_term_fen_days": cell.amount_term_fen_days}


def build_days(session: Session, first: date, last: date) -> int:
    """Replace the rows of the registration days [first, last] with freshly computed ones; return how many."""
    cells = compute_cells(session, first, last)
    session.execute(delete(CohortDay).where(CohortDay.day >= first, CohortDay.day <= last))
    rows = [_row(key, cell) for key, cell in cells.items()]
    for i in range(0, len(rows), 2000):
        insert_many(session.connection(), table_of(CohortDay), rows[i:i + 2000])
    return len(rows)


# ---------------------------------------------------------------- marking (the processor) and refreshing (a job)

def mark_days(session: Session, days: Iterable[date], token: int) -> None:
    """Mark registration days as changed (race-free upsert: a later mark replaces the token)."""
    rows = [{"day": day, "token": token} for day in sorted(set(days))]
    if not rows:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(CohortDirtyDay)
    session.execute(stmt.on_conflict_do_update(index_elements=["day"], set_={"token": stmt.excluded.token}), rows)


class CohortDaysProjection(Projection):
    """Mark the registration days whose cohort a batch changed: milestones, channel, referrer or investments."""

    name = "dashboard-cohort-days"
    after = ("investors",)  # reads the batch's investor rows before and after the others change them
    tables = (table_of(CohortDay), table_of(CohortDirtyDay))

    def __init__(self, batch: Batch) -> None:
        super().__init__(batch)
        self._before: dict[str, tuple[Any, ...]] = {}
        self._invested: set[str] = set()
        self._token = 0

    def load(self, events: Sequence[LoggedEvent]) -> None:
        self._before = {uid: tuple(row.get(c) for c in _ROLLED) for uid, row in self.batch.investors.items()}
        self._invested = {e.user_id for e in events if e.type.startswith("investment.")}
        self._token = max((e.seq for e in events), default=0)

    def write(self) -> None:
        days: set[date] = set()
        for uid, row in self.batch.investors.items():
            before, after = self._before.get(uid), tuple(row.get(c) for c in _ROLLED)
            if before == after and uid not in self._invested:
                continue
            for registered in (before[0] if before else None, after[0]):
                if registered is not None:
                    days.add(local_date(registered))
        mark_days(self.batch.session, days, self._token)

    @classmethod
    def after_reset(cls, session: Session) -> None:
        # A replay rebuilds every investor: the rollup starts over once the log is read again.
        _set_state(session, built=False, next_day=None)


def _state(session: Session, *, lock: bool = False) -> RollupState:
    state = session.get(RollupState, STATE, with_for_update=lock)
    if state is None:
        state = RollupState(name=STATE, built=False, next_day=None, members_after=0, updated_at=utcnow())
        session.add(state)
        session.flush()
    return state


def _set_state(session: Session, *, built: bool, next_day: date | None) -> None:
    state = _state(session, lock=True)
    state.built, state.next_day, state.updated_at = built, next_day, utcnow()


def is_built(session: Session) -> bool:
    """Tell whether every registration day has its rows (else readers compute live)."""
    state = session.get(RollupState, STATE)
    return bool(state and state.built)


def _registration_days(session: Session) -> tuple[date, date] | None:
    lo, hi = session.execute(select(func.min(Investor.registered_at), func.max(Investor.registered_at))).one()
    return None if lo is None or hi is None else (local_date(lo), local_date(hi))


def build_step(session: Session, days: int = BUILD_DAYS_PER_RUN) -> tuple[date, date] | None:
    """Build the next `days` registration days of an incomplete rollup; return the days built (None: complete)."""
    state = _state(session, lock=True)
    if state.built:
        return None
    span = _registration_days(session)
    if span is None:
        _set_state(session, built=True, next_day=None)
        return None
    first = state.next_day or span[0]
    if state.next_day is None:  # a fresh build: forget rows of days that may have no registrations left
        session.execute(delete(CohortDay))
        # Entries made from now on mark their days; those before are read by the build itself.
        state.members_after = session.scalar(select(func.coalesce(func.max(CampaignMember.id), 0)).where(
            CampaignMember.created_at <= utcnow() - MEMBER_HORIZON)) or 0
    last = min(first + timedelta(days=days - 1), span[1])
    build_days(session, first, last)
    done = last >= span[1]
    _set_state(session, built=done, next_day=None if done else last + timedelta(days=1))
    return first, last


def _member_days(session: Session, after: int, now: datetime,
                 limit: int | None = MEMBER_ROWS_PER_RUN) -> tuple[set[date], int, int]:
    """Return the registration days of the campaign entries after member id `after`, how far the cursor may move
    (entries older than MEMBER_HORIZON: a later commit of a lower id is not expected past it) and the newest id."""
    m = CampaignMember
    rows = session.execute(
        select(m.id, m.created_at, Investor.registered_at).join(Investor, Investor.id == m.investor_id)
        .where(m.id > after).order_by(m.id).limit(limit)).all()
    days = {local_date(registered) for _id, _at, registered in rows if registered is not None}
    settled = after
    for member_id, created, _registered in rows:
        if created > now - MEMBER_HORIZON:
            break
        settled = member_id
    return days, settled, rows[-1][0] if rows else after


def refresh(*, session: Session, now: datetime | None = None, limit: int = REFRESH_DAYS_PER_RUN) -> int:
    """Mark the days of new campaign entries, then rebuild up to `limit` marked days (or take the next step of a
    full build); return how many days were built."""
    if not is_built(session):
        built = build_step(session)
        return 0 if built is None else (built[1] - built[0]).days + 1
    state = _state(session, lock=True)
    days, settled, newest = _member_days(session, state.members_after, now or utcnow())
    # Negative tokens: never equal to the processor's (event seqs), so neither side clears the other's mark.
    mark_days(session, days, -newest)
    state.members_after = settled
    marks = session.execute(select(CohortDirtyDay.day, CohortDirtyDay.token)
                            .order_by(CohortDirtyDay.day).limit(limit)).all()
    for first, last in _runs(day for day, _token in marks):
        build_days(session, first, last)
    if marks:
        # Only marks nobody renewed while we read: a day marked again is rebuilt on the next run.
        session.execute(delete(CohortDirtyDay).where(
            tuple_(CohortDirtyDay.day, CohortDirtyDay.token).in_([(d, t) for d, t in marks])))
    return len(marks)


def rebuild(*, session_scope: Callable[[], Any], progress: Callable[[int], None] | None = None) -> int:
    """Build every day from scratch, a step per transaction (the CLI); return how many days."""
    with session_scope() as session:
        _set_state(session, built=False, next_day=None)
    total = 0
    while True:
        with session_scope() as session:
            built = build_step(session)
        if built is None:
            return total
        n = (built[1] - built[0]).days + 1
        total += n
        if progress is not None:
            progress(n)


def registration_day_count(session: Session) -> int:
    """Return how many days the registrations span (a progress bar's length)."""
    span = _registration_days(session)
    return 0 if span is None else (span[1] - span[0]).days + 1


# ---------------------------------------------------------------- reading

DIMENSIONS = ("channel", "referred", "campaign")
_SUMMED = ("registrations", "step1", "step2", "step3", "step4", "step5", "funnel_first_fen", "funnel_first_fen_days",
           "first_investors", "first_investment_fen", "amount_term_fen_days")


def collapse(key: CellKey, keep: Iterable[str]) -> CellKey:
    """Return a cell's key with the dimensions not kept set to their blank (cells so keyed are summed)."""
    window, day, channel_id, referred, campaign = key
    return (window, day, channel_id if "channel" in keep else 0, referred if "referred" in keep else False,
            campaign if "campaign" in keep else NO_CAMPAIGN)


def _add(into: dict[CellKey, Cell], key: CellKey, cell: Cell) -> None:
    found = into.get(key)
    if found is None:
        into[key] = cell
        return
    found.registrations += cell.registrations
    found.steps = [a + b for a, b in zip(found.steps, cell.steps, strict=True)]
    found.funnel_first_fen += cell.funnel_first_fen
    found.funnel_first_fen_days += cell.funnel_first_fen_days
    found.first_investors += cell.first_investors
    found.first_investment_fen += cell.first_investment_fen
    found.amount_term_fen_days += cell.amount_term_fen_days


def cells(session: Session, start: date, end: date, window_days: int,
          keep: Iterable[str] = DIMENSIONS) -> dict[CellKey, Cell] | None:
    """Return the cells of the registration days [start, end] for a window, per day and the dimensions kept (the
    others summed, in SQL): settled days from their rows, marked days computed live; None when the rollup cannot
    answer (a window not kept, or the rollup incomplete)."""
    if window_days not in ROLLUP_WINDOWS or not is_built(session):
        return None
    kept = frozenset(keep)
    dirty = set(session.scalars(select(CohortDirtyDay.day).where(CohortDirtyDay.day >= start,
                                                                 CohortDirtyDay.day <= end)))
    # Campaign entries the refresher has not taken yet: their days are read live too.
    state = session.get(RollupState, STATE)
    pending, _settled, _newest = _member_days(session, state.members_after if state else 0, utcnow(), limit=None)
    dirty |= {day for day in pending if start <= day <= end}
    columns = {"channel": CohortDay.channel_id, "referred": CohortDay.referred, "campaign": CohortDay.campaign}
    grouped = [columns[d] for d in DIMENSIONS if d in kept]
    found: dict[CellKey, Cell] = {}
    row: Any
    for row in session.execute(
            select(CohortDay.day, *grouped, *(func.sum(getattr(CohortDay, c)) for c in _SUMMED))
            .where(CohortDay.window_days == window_days, CohortDay.day >= start, CohortDay.day <= end)
            .group_by(CohortDay.day, *grouped)):
        day = row[0]
        if day in dirty:
            continue
        dims: dict[str, Any] = dict(zip([d for d in DIMENSIONS if d in kept], row[1:1 + len(grouped)], strict=True))
        sums: list[int] = [int(v or 0) for v in row[1 + len(grouped):]]
        key: CellKey = (window_days, day, int(dims.get("channel", 0)), bool(dims.get("referred", False)),
                        int(dims.get("campaign", NO_CAMPAIGN)))
        found[key] = Cell(sums[0], sums[1:6], *sums[6:])
    for first, last in _runs(dirty):
        for key, cell in compute_cells(session, first, last, (window_days,)).items():
            _add(found, collapse(key, kept), cell)
    return found


def open_windows(session: Session, start: date, end: date, window_days: int, now: datetime,
                 keep: Iterable[str] = DIMENSIONS) -> tuple[date, dict[CellKey, int]]:
    """Return the first registration day whose window is still open, and per cell of that day (keyed as `cells`
    keys them) how many of its registrations are still inside their window (the days after it are wholly inside)."""
    since = now - timedelta(days=window_days)
    boundary = local_date(since)
    if not start <= boundary <= end:
        return boundary, {}
    counts: dict[CellKey, int] = defaultdict(int)
    young = compute_cells(session, boundary, boundary, (window_days,), registered_after=since)
    for key, cell in young.items():
        counts[collapse(key, keep)] += cell.registrations
    return boundary, dict(counts)
