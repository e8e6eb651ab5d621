"""What the operator's probes read: worker heartbeats and the last runs of scheduled jobs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from growth.db import Base

# Crashes of a background worker (`growth.background`) share the job-run table under this prefix.
WORKER_PREFIX = "worker:"


class WorkerHeartbeat(Base):
    """One running `growth worker` process: written every few seconds, removed when it stops cleanly."""

    __tablename__ = "worker_heartbeats"

    holder: Mapped[str] = mapped_column(String(128), primary_key=True)  # host:pid:random (growth.locks)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    workers: Mapped[list[str]]  # the names of the background workers it runs
    started_at: Mapped[datetime]
    seen_at: Mapped[datetime] = mapped_column(index=True)


class JobRun(Base):
    """The last run of one scheduled job (or the crashes of one background worker), for /metrics."""

    __tablename__ = "job_runs"

    job_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    last_duration_seconds: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(String(128))  # the exception's class only: messages may hold PII
