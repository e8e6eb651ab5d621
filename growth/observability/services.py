"""Heartbeats of worker processes, the record of job runs, and the readiness checks."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from growth.db import get_db
from growth.locks import new_holder_id
from growth.migrate import code_heads, database_heads
from growth.observability.models import WORKER_PREFIX, JobRun, WorkerHeartbeat
from growth.observability.rules import heartbeat_fresh
from growth.timeutil import utcnow

log = logging.getLogger("growth.observability")


# --- heartbeats -------------------------------------------------------------------------------------


def beat(holder: str, workers: Sequence[str], *, session: Session, now: datetime, started_at: datetime) -> None:
    """Write (or refresh) this process's heartbeat row."""
    found = session.execute(update(WorkerHeartbeat).where(WorkerHeartbeat.holder == holder)
                            .values(seen_at=now, workers=list(workers))
                            .execution_options(synchronize_session=False))
    if not getattr(found, "rowcount", 0):
        session.add(WorkerHeartbeat(holder=holder, host=socket.gethostname(), pid=os.getpid(), workers=list(workers),
                                    started_at=started_at, seen_at=now))
        session.flush()


def forget(holder: str, *, session: Session) -> None:
    """Remove a heartbeat row (a clean stop)."""
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.holder == holder))


def prune(*, session: Session, before: datetime) -> int:
    """Remove the heartbeats of processes not seen since `before` (killed ones never remove theirs)."""
    result = session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.seen_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


def newest_heartbeat(*, session: Session) -> datetime | None:
    """Return when any worker was last seen (the index on seen_at answers it)."""
    return session.scalar(select(func.max(WorkerHeartbeat.seen_at)))


@dataclass
class Heartbeat:
    """A thread that keeps one process's heartbeat row fresh until stopped, then removes it."""

    app: Flask
    workers: Sequence[str]
    holder: str = field(default_factory=new_holder_id)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        """Write the first heartbeat now (readiness need not wait), then keep it fresh in a thread."""
        self.started_at = utcnow()
        max_age = timedelta(seconds=float(self.app.config["READY_HEARTBEAT_SECONDS"]))
        self._write(prune_before=self.started_at - 10 * max_age)
        self.thread = threading.Thread(target=self._run, name="growth-heartbeat", daemon=True)
        self.thread.start()

    def _write(self, prune_before: datetime | None = None) -> None:
        try:
            with get_db(self.app).session_scope(write=True) as session:
                now = utcnow()
                if prune_before is not None:
                    prune(session=session, before=prune_before)
                beat(self.holder, self.workers, session=session, now=now, started_at=self.started_at)
        except Exception:  # a busy or briefly unreachable database: the next beat tries again
            log.warning("could not write the worker heartbeat", exc_info=True)

    def _run(self) -> None:
        every = float(self.app.config["HEARTBEAT_SECONDS"])
        while not self.stop.wait(every):
            self._write()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop beating and remove the row, so readiness reflects the processes that really run."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout)
        try:
            with get_db(self.app).session_scope(write=True) as session:
                forget(self.holder, session=session)
        except Exception:
            log.warning("could not remove the worker heartbeat", exc_info=True)


# --- job runs -----------------------------------------------------------------------------------------


def record_run(job_id: str, *, session: Session, started: datetime, finished: datetime,
               error: BaseException | None = None) -> None:
    """Record one finished run of a job (or one crash of a worker), success or failure."""
    values: dict[str, Any] = {"last_started_at": started, "last_finished_at": finished,
                              "last_duration_seconds": (finished - started).total_seconds()}
    if error is None:
        values["last_success_at"] = finished
    else:
        values.update(last_failure_at=finished, last_error=type(error).__name__[:128])
    found = session.execute(
        update(JobRun).where(JobRun.job_id == job_id)
        .values(runs=JobRun.runs + 1, failures=JobRun.failures + (0 if error is None else 1), **values)
        .execution_options(synchronize_session=False))
    if not getattr(found, "rowcount", 0):
        try:
            with session.begin_nested():
                session.add(JobRun(job_id=job_id, runs=1, failures=0 if error is None else 1, **values))
        except IntegrityError:  # another process inserted it first: count on its row
            session.execute(
                update(JobRun).where(JobRun.job_id == job_id)
                .values(runs=JobRun.runs + 1, failures=JobRun.failures + (0 if error is None else 1), **values)
                .execution_options(synchronize_session=False))


def record_job_run(app: Flask, job_id: str, *, started: datetime, error: BaseException | None = None) -> None:
    """Record a job run in a short transaction of its own; never fail the job over it."""
    try:
        with get_db(app).session_scope(write=True) as session:
            record_run(job_id, session=session, started=started, finished=utcnow(), error=error)
    except Exception:
        log.warning("could not record the run of job %s", job_id, exc_info=True)


def record_worker_crash(app: Flask, worker: str, error: BaseException, *, started: datetime) -> None:
    """Count a crash of a background worker (the processor, delivery …) for /metrics."""
    record_job_run(app, WORKER_PREFIX + worker, started=started, error=error)


# --- readiness ------------------------------------------------------------------------------------------


@dataclass
class Check:
    """One readiness check's outcome."""

    name: str
    ok: bool
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        """Return the check as JSON (the detail never holds personal data or secrets)."""
        return {"ok": self.ok, **({"detail": self.detail} if self.detail else {})}


def readiness(app: Flask, *, now: datetime | None = None) -> list[Check]:
    """Run the readiness checks: the database answers, its schema is at head, a worker beats recently."""
    now = now or utcnow()
    db = get_db(app)
    checks: list[Check] = []
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            checks.append(Check("database", True))
            current, heads = database_heads(conn), code_heads()
            if current == heads:
                checks.append(Check("migrations", True))
            else:
                checks.append(Check("migrations", False, f"schema at {', '.join(sorted(current)) or 'nothing'}, "
                                                         f"code needs {', '.join(sorted(heads))}"))
            if app.config["READY_REQUIRES_WORKER"]:
                with Session(bind=conn) as session:
                    newest = newest_heartbeat(session=session)
                max_age = timedelta(seconds=float(app.config["READY_HEARTBEAT_SECONDS"]))
                if heartbeat_fresh(newest, now=now, max_age=max_age):
                    checks.append(Check("worker", True))
                else:
                    seen = "never" if newest is None else f"{(now - newest).total_seconds():.0f} s ago"
                    checks.append(Check("worker", False, f"no worker heartbeat in {max_age.total_seconds():.0f} s "
                                                         f"(newest: {seen})"))
            conn.rollback()
    except Exception as err:  # unreachable, refused, wrong credentials: say which kind, not the URL
        name = "database" if not checks else "checks"
        checks.append(Check(name, False, type(err).__name__))
    return checks
