"""The scheduler: APScheduler with its jobs in our database, run by ONE elected worker process.

Every `growth worker` runs `run_scheduler`, but only the holder of the lease row "scheduler" starts an
APScheduler `BackgroundScheduler` (SQLAlchemy job store, table `scheduler_jobs`, Asia/Shanghai); the
others stand by and take over when its lease lapses, so two workers never run a schedule twice. Jobs
have explicit ids and are added with `replace_existing=True`; each runs through `run_job`, the one
wrapper (app context, a write session committed once or rolled back, a log line with its timing).

Campaign schedules are jobs too: the `campaigns-sync` job keeps one job per scheduled campaign
(`campaign-<id>`: a date trigger for `at`, a cron trigger inside the window for `cron`) and removes the
jobs of campaigns that are no longer scheduled. Misfire policy: `coalesce=True` and no grace limit, so a
run missed while no scheduler was up runs ONCE when one comes back (if still inside the window), and
`campaign_runs` is unique per (campaign, scheduled time), so a run is never made twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from campaigns.definition import Definition, cron_trigger
from growth.db import get_db
from growth.locks import claim, new_holder_id, release
from growth.observability.services import record_job_run
from growth.timeutil import SHANGHAI, utcnow

log = logging.getLogger("campaigns.scheduler")
LEASE = "scheduler"
JOBS_TABLE = "scheduler_jobs"
MISFIRE_POLICY = {"coalesce": True, "misfire_grace_time": None, "max_instances": 1}

# What a job may run, by name: `(session, now, *args) -> None` and whether it writes. Filled by the composition root.
_TASKS: dict[str, tuple[Callable[..., None], bool]] = {}
# The app the elected scheduler of this process serves (jobs are stored by reference, not with the app).
_APPS: dict[str, Flask] = {}
_SCHEDULER: dict[str, BackgroundScheduler] = {}


def register_task(name: str, fn: Callable[..., None], *, write: bool = True) -> None:
    """Make a task runnable by scheduled jobs under a stable name.

    `write=False` gives the task a read transaction: a task that changes the scheduler's own jobs must not
    hold the database's write lock while the job store writes (on SQLite that would wait on itself).
    """
    _TASKS[name] = (fn, write)


def current_scheduler() -> BackgroundScheduler | None:
    """Return the running scheduler of this process, if it is the elected one."""
    return _SCHEDULER.get("current")


def run_job(task: str, *args: Any) -> None:
    """Run a task as a job: app context, one write transaction, a log line with its timing."""
    app = _APPS.get("current")
    if app is None:  # the scheduler of this process has stopped; the next leader runs it
        return
    started = time.monotonic()
    began = utcnow()
    with app.app_context():
        try:
            fn, write = _TASKS[task]
            with get_db(app).session_scope(write=write) as session:
                fn(session, utcnow(), *args)
        except Exception as err:
            log.exception("job %s%r failed after %.3f s", task, args, time.monotonic() - started)
            record_job_run(app, task, started=began, error=err)  # by task: campaign runs share one series
            raise
    record_job_run(app, task, started=began)
    log.info("job %s%r done in %.3f s", task, args, time.monotonic() - started)


def add_job(scheduler: BackgroundScheduler, job_id: str, trigger: BaseTrigger, task: str, *args: Any,
            name: str | None = None) -> None:
    """Add (or replace) a job running `task` through the wrapper."""
    scheduler.add_job(run_job, trigger, args=[task, *args], id=job_id, name=name or task, replace_existing=True,
                      **MISFIRE_POLICY)


def latest_fire(trigger: BaseTrigger, now: datetime, *, horizon: timedelta = timedelta(days=400)) -> datetime | None:
    """Return the trigger's latest fire time at or before `now` (None when it has not fired yet)."""
    if isinstance(trigger, DateTrigger):
        at: datetime = trigger.run_date
        return at if at <= now else None
    fire = trigger.get_next_fire_time(None, now - horizon)
    latest = None
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return latest


def schedule_trigger(definition: Definition) -> BaseTrigger | None:
    """Return the APScheduler trigger of a campaign's `schedule` (cron in Asia/Shanghai, inside the window)."""
    schedule, window = definition.schedule, definition.window
    if schedule is None:
        return None
    if schedule.at is not None:
        return DateTrigger(run_date=schedule.at, timezone=SHANGHAI)
    assert schedule.cron is not None
    return cron_trigger(schedule.cron, start=window.start if window else None, end=window.end if window else None)


# Periodic system jobs by id: (every how many seconds, task). Declared by the composition root.
_SYSTEM: dict[str, tuple[float, str]] = {}


def register_system_job(job_id: str, every_seconds: float, task: str) -> None:
    """Declare a periodic job every elected scheduler keeps (explicit id, replaced on every start)."""
    _SYSTEM[job_id] = (every_seconds, task)


def build_scheduler(app: Flask) -> BackgroundScheduler:
    """Return a scheduler whose jobs live in the app's database (not started; its table created if missing)."""
    db = get_db(app)
    store = SQLAlchemyJobStore(engine=db.engine, tablename=JOBS_TABLE)
    # The store creates its table when started, on a connection of its own; on a fresh SQLite file that raced the
    # other background workers' writes ("database is locked" on the first `make run`). Created here as a writer
    # (BEGIN IMMEDIATE waits for the lock), the store then finds it.
    with db.session_scope(write=True) as session:
        store.jobs_t.create(session.connection(), checkfirst=True)
    return BackgroundScheduler(jobstores={"default": store}, timezone=SHANGHAI,
                               job_defaults=dict(MISFIRE_POLICY))


def run_scheduler(app: Flask, stop: threading.Event) -> None:
    """Background worker: stand by for the scheduler lease; while holding it, run the APScheduler."""
    db = get_db(app)
    holder = new_holder_id()
    ttl = timedelta(seconds=app.config["LEADER_LEASE_SECONDS"])
    scheduler: BackgroundScheduler | None = None
    try:
        while not stop.is_set():
            with db.session_scope(write=True) as session:
                leading = claim(LEASE, holder, session=session, now=utcnow(), ttl=ttl)
            if leading and scheduler is None:
                _APPS["current"] = app
                scheduler = build_scheduler(app)
                _SCHEDULER["current"] = scheduler
                scheduler.start(paused=True)
                for job_id, (every, task) in _SYSTEM.items():
                    # From now: a new leader runs each system job at once (syncs the campaigns' jobs, expires
                    # what lapsed while no scheduler was up), then every `every` seconds.
                    add_job(scheduler, job_id, IntervalTrigger(seconds=every, start_date=utcnow(), timezone=SHANGHAI),
                            task)
                scheduler.resume()
                log.info("scheduler %s is now the active scheduler", holder)
            elif not leading and scheduler is not None:
                log.warning("scheduler %s lost the lease; stopping its jobs", holder)
                scheduler.shutdown(wait=False)
                scheduler = None
                _APPS.pop("current", None)
                _SCHEDULER.pop("current", None)
            stop.wait(ttl.total_seconds() / 3)
    finally:
        if scheduler is not None:
            if scheduler.running:  # a signal may have stopped it already (APScheduler raises on a second stop)
                scheduler.shutdown(wait=True)
            _APPS.pop("current", None)
            _SCHEDULER.pop("current", None)
            with db.session_scope(write=True) as session:
                release(LEASE, holder, session=session)

