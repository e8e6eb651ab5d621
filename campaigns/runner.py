"""Scheduled campaign runs: the scheduler's jobs record a run; the runner selects its audience in chunks.

`campaign-run` (a scheduler job per campaign, see `campaigns.scheduler`) records ONE `campaign_runs` row
per (campaign, scheduled time) — the latest fire time of the campaign's schedule, so a run missed while
no scheduler was up is made once when one comes back, if still inside the window — and starts the
campaign (scheduled → running). `campaigns-sync` keeps those jobs in step with the campaigns.

The runner (one active per database, lease "campaign-runner", with `CAMPAIGN_RUNNER_THREADS` threads)
selects each run's audience in chunks, each a span of investor ids (`campaign_run_chunks`). One short
transaction claims the spans up to the highest investor id under the run's row lock and moves the run's
keyset position past them; each is then fulfilled in a transaction of its own: the segment's query over
the span, the members (holdout decided by the stable hash, the entry rule applied) and the chunk marked
done commit together, under a lock on the chunk's row alone (SKIP LOCKED), so several threads fulfil one
run at once. A run killed halfway resumes where it stopped, a claimed chunk nobody finished is taken up
again, and nobody enters twice (members are unique per campaign, investor and entry key).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from campaigns import fanout, rules, segments
from campaigns.definition import Definition, parse, window_contains
from campaigns.models import Campaign, CampaignMember, CampaignRun, CampaignRunChunk
from campaigns.scheduler import add_job, current_scheduler, latest_fire, schedule_trigger
from campaigns.services import log_step
from growth.db import get_db, insert_many, table_of
from growth.investors.models import Investor
from growth.locks import claim, new_holder_id, release
from growth.timeutil import as_utc, utcnow

log = logging.getLogger("campaigns.runner")
LEASE = "campaign-runner"
SCHEDULED = ("scheduled", "running")
_MEMBERS = table_of(CampaignMember)
_CHUNKS = table_of(CampaignRunChunk)
CLAIM_AT_ONCE = 1_000  # chunks one claim makes at most (5,000,000 investor ids at the default chunk)


def _step(session: Session, campaign: Campaign, action: str, now: datetime, note: str | None = None) -> None:
    """Move a campaign as the system (start, finish), kept in its history and the audit log."""
    before = campaign.status
    to = rules.after(action, before)
    session.execute(update(Campaign).where(Campaign.id == campaign.id, Campaign.status == before)
                    .values(status=to, updated_at=now))
    session.expire(campaign)
    log_step(campaign, action, before, session=session, actor_id=None, now=now, note=note, actor="scheduler")


def job_id(campaign_id: int) -> str:
    """Return the scheduler job id of a campaign's schedule."""
    return f"campaign-{campaign_id}"


def task_campaign_run(session: Session, now: datetime, campaign_id: int) -> None:
    """Record the run due now for a scheduled campaign (once per scheduled time) and start the campaign."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.status not in SCHEDULED:
        return
    definition = parse(campaign.definition)
    trigger = schedule_trigger(definition)
    due = latest_fire(trigger, now) if trigger is not None else None
    if due is None or not window_contains(definition, due):
        return
    inserted = insert_many(session.connection(), table_of(CampaignRun), [{
        "campaign_id": campaign.id, "scheduled_for": as_utc(due), "status": "selecting", "after_investor_id": 0,
        "selected": 0, "started_at": now, "finished_at": None}], returning=("id",), skip_conflicts=True)
    if inserted and campaign.status == "scheduled":
        _step(session, campaign, "start", now, note=f"run for {as_utc(due).isoformat()}")
    if inserted:
        log.info("campaign %s: run for %s recorded", campaign.id, due.isoformat())


def task_sync_schedules(session: Session, now: datetime) -> None:
    """Keep one scheduler job per scheduled campaign; drop the jobs of campaigns no longer scheduled."""
    scheduler = current_scheduler()
    if scheduler is None:
        return
    wanted: set[str] = set()
    for campaign_id, version, document in session.execute(
            select(Campaign.id, Campaign.version, Campaign.definition).where(Campaign.status.in_(SCHEDULED))):
        trigger = schedule_trigger(parse(document))
        if trigger is None:
            continue
        wanted.add(job_id(campaign_id))
        name = f"campaign {campaign_id} v{version}"  # a changed (re-approved) definition replaces the job
        job = scheduler.get_job(job_id(campaign_id))
        if job is None or job.name != name:
            add_job(scheduler, job_id(campaign_id), trigger, "campaign-run", campaign_id, name=name)
    for job in scheduler.get_jobs():
        if job.id.startswith("campaign-") and job.id not in wanted:
            job.remove()


def _finish_if_done(session: Session, campaign: Campaign, definition: Definition, run: CampaignRun,
                    now: datetime) -> None:
    """Finish a campaign whose schedule has no run left after this one (a one-shot, or a cron past its window)."""
    trigger = schedule_trigger(definition)
    last = as_utc(run.scheduled_for)
    nxt = trigger.get_next_fire_time(last, max(now, last + timedelta(seconds=1))) if trigger is not None else None
    if nxt is None or not window_contains(definition, nxt):
        _step(session, campaign, "finish", now)


def select_chunk(*, session: Session, now: datetime, chunk: int = segments.CHUNK) -> int:
    """Do the runner's next step; return how much it did (investors looked at, chunks claimed; 0: nothing now).

    The step is to fulfil a claimed chunk no other transaction holds, or else to claim the next chunk of the
    oldest unfinished run (or to finish that run when all its chunks are done).
    """
    piece = session.scalar(
        select(CampaignRunChunk).join(CampaignRun, CampaignRun.id == CampaignRunChunk.run_id)
        .join(Campaign, Campaign.id == CampaignRun.campaign_id)
        .where(CampaignRunChunk.done.is_(False), CampaignRun.status == "selecting", Campaign.status == "running")
        .order_by(CampaignRunChunk.id).limit(1).with_for_update(of=CampaignRunChunk, skip_locked=True))
    if piece is not None:
        return _fulfil(session, piece, now)
    return _claim(session, now, chunk)


def _claim(session: Session, now: datetime, chunk: int) -> int:
    """Claim the chunks of the oldest unfinished run up to the highest investor id; finish it when none is left.

    Every span up to the highest id is claimed at once (at most CLAIM_AT_ONCE), so the runner's threads
    spend their transactions fulfilling; investors who register meanwhile get spans of their own at the
    next claim, once those are done.
    """
    run = session.scalar(select(CampaignRun).join(Campaign, Campaign.id == CampaignRun.campaign_id)
                         .where(CampaignRun.status == "selecting", Campaign.status.in_(("running", "cancelled")))
                         .order_by(CampaignRun.id).limit(1).with_for_update(of=CampaignRun))
    if run is None:
        return 0
    campaign = session.get(Campaign, run.campaign_id)
    assert campaign is not None
    if campaign.status == "cancelled":
        run.status, run.finished_at = "cancelled", now
        return 1
    # A chunk is a span of investor ids, not of the audience: claiming reads nothing but the highest id, and
    # fulfilling runs the segment's query over the span alone, which the primary key serves whatever the
    # planner guesses of the segment (bench/README.md, the fan-out).
    top = session.scalar(select(func.max(Investor.id))) or 0
    if run.after_investor_id < top:
        ends = [*range(run.after_investor_id + chunk, top, chunk), top][:CLAIM_AT_ONCE]
        starts = [run.after_investor_id, *ends[:-1]]
        insert_many(session.connection(), _CHUNKS, [
            {"run_id": run.id, "after_investor_id": after, "through_investor_id": through, "selected": 0,
             "done": False} for after, through in zip(starts, ends, strict=True)])
        run.after_investor_id = ends[-1]
        return len(ends)
    chunks = CampaignRunChunk
    if session.scalar(select(func.count()).where(chunks.run_id == run.id, chunks.done.is_(False))):
        return 0  # the last chunks are being fulfilled by other threads: the run finishes after them
    run.selected = session.scalar(select(func.coalesce(func.sum(chunks.selected), 0))
                                  .where(chunks.run_id == run.id)) or 0
    run.status, run.finished_at = "selected", now
    _finish_if_done(session, campaign, definition=parse(campaign.definition), run=run, now=now)
    return 1


def _fulfil(session: Session, piece: CampaignRunChunk, now: datetime) -> int:
    """Enter a claimed chunk's members (holdout by the stable hash, the entry rule applied) and mark it done."""
    run = session.get(CampaignRun, piece.run_id)
    assert run is not None
    campaign = session.get(Campaign, run.campaign_id)
    assert campaign is not None
    definition = parse(campaign.definition)
    at = as_utc(run.scheduled_for)
    batch = segments.members_between(definition.audience, session=session, now=at,
                                     after_id=piece.after_investor_id, through_id=piece.through_investor_id)
    every = definition.entry.every_days
    latest: dict[int, datetime] = {}
    if every and batch:
        ids = [m.investor_id for m in batch]
        for investor_id, entered in session.execute(
                select(CampaignMember.investor_id, CampaignMember.entered_at)
                .where(CampaignMember.campaign_id == campaign.id, CampaignMember.investor_id.in_(ids))):
            entered = as_utc(entered)
            latest[investor_id] = max(latest.get(investor_id, entered), entered)
    rows: list[dict[str, Any]] = []
    for m in batch:
        if every and m.investor_id in latest and at - latest[m.investor_id] < timedelta(days=every):
            continue
        holdout = segments.in_holdout(campaign.id, m.user_id, definition.holdout_percent)
        rows.append({"campaign_id": campaign.id, "investor_id": m.investor_id,
                     "entry_key": "once" if every is None else f"run:{run.id}", "cause": f"run:{run.id}",
                     "run_id": run.id, "event_seq": None, "investment_id": None, "holdout": holdout,
                     "entered_at": at, "status": "holdout" if holdout else "pending", "due_at": now,
                     "created_at": now, "fulfilled_at": None, "rewards_granted": 0})
    if not rows:
        selected = 0
    elif fanout.in_sql(definition):  # fulfilled as they enter: members, grants and messages in this transaction
        selected = fanout.fulfil_chunk(session, campaign, definition, rows, now=now)
    else:  # fulfilment renders their messages
        selected = len(insert_many(session.connection(), _MEMBERS, rows, returning=("id",), skip_conflicts=True))
    piece.selected, piece.done = selected, True
    return max(1, len(batch))


def runner_threads(app: Flask) -> int:
    """Return how many threads the elected runner uses: the setting, one on SQLite (one writer at a time)."""
    return 1 if get_db(app).engine.dialect.name == "sqlite" else int(app.config["CAMPAIGN_RUNNER_THREADS"])


def run_campaign_runner(app: Flask, stop: threading.Event) -> None:
    """Background worker: stand by for the runner lease, then select runs chunk by chunk.

    While it holds the lease, `CAMPAIGN_RUNNER_THREADS - 1` more threads take chunks too: each step locks
    only its own chunk (or, to claim one, the run's row for a moment), so they never do the same work.
    """
    db = get_db(app)
    holder = new_holder_id()
    ttl = timedelta(seconds=app.config["LEADER_LEASE_SECONDS"])
    idle = app.config.get("CAMPAIGN_RUNNER_IDLE_SECONDS", 1.0)
    leading = threading.Event()
    done_helping = threading.Event()
    helpers = [threading.Thread(target=_help, args=(app, leading, done_helping, idle), daemon=True,
                                name=f"campaign-runner-{n + 2}") for n in range(runner_threads(app) - 1)]
    for helper in helpers:
        helper.start()
    try:
        while not stop.is_set():
            with db.session_scope(write=True) as session:
                now = utcnow()
                held = claim(LEASE, holder, session=session, now=now, ttl=ttl)
                done = select_chunk(session=session, now=now) if held else 0
            if held:  # the helpers follow the lease once its renewal has committed
                leading.set()
            else:
                leading.clear()
                stop.wait(ttl.total_seconds() / 3)
                continue
            if not done:
                stop.wait(idle)
    finally:
        done_helping.set()
        for helper in helpers:
            helper.join(timeout=ttl.total_seconds())
        if leading.is_set():
            leading.clear()
            with db.session_scope(write=True) as session:
                release(LEASE, holder, session=session)


def _help(app: Flask, leading: threading.Event, done: threading.Event, idle: float) -> None:
    """A helper thread of the elected runner: take chunks while this process holds the lease."""
    db = get_db(app)
    while not done.is_set():
        if not leading.is_set():
            done.wait(idle)
            continue
        try:
            with db.session_scope(write=True) as session:
                stepped = select_chunk(session=session, now=utcnow())
        except Exception:  # a failed chunk rolls back and waits for the next try, like the main thread's
            log.exception("campaign runner helper: a step failed; trying again in %.0f s", idle)
            stepped = 0
        if not stepped:
            done.wait(idle)
