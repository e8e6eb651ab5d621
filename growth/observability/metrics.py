"""Prometheus metrics: per-process web counters, and numbers read from the database at scrape time.

Delivery, the processor and the scheduler run in worker processes, while web nodes serve /metrics: what
they do is read from the database when Prometheus scrapes (`DatabaseCollector`), so any web node reports
the same cross-process numbers. Request counters are per process; under gunicorn with several workers set
PROMETHEUS_MULTIPROC_DIR (before the app is imported) and every worker's samples are merged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from flask import Flask
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from channels.models import MESSAGE_CHANNELS, OutboxMessage
from growth.db import get_db, seconds_between
from growth.events.models import PlatformEvent, ProcessorCursor
from growth.observability.models import WORKER_PREFIX, JobRun, WorkerHeartbeat
from growth.timeutil import utcnow

log = logging.getLogger("growth.observability.metrics")

disable_created_metrics()  # the *_created series double every counter's lines for nothing a dashboard uses
# Per process: created once, at import (multiprocess mode chooses its storage then).
HTTP_REQUESTS = Counter("growth_http_requests", "Web requests served, by endpoint, method and status",
                        ["endpoint", "method", "status"], registry=None)
HTTP_SECONDS = Histogram("growth_http_request_duration_seconds", "Time to answer a web request, by endpoint",
                         ["endpoint", "method"], registry=None,
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0))
EVENTS_RECEIVED = Counter("growth_events_received", "Platform events in signed ingest requests, by outcome "
                          "(accepted: appended to the log; duplicate; rejected)", ["outcome"], registry=None)
_PROCESS_METRICS = (HTTP_REQUESTS, HTTP_SECONDS, EVENTS_RECEIVED)

# The cursors that read the event log by its seq (others, e.g. over referral confirmations, count other things).
LOG_CURSORS = ("projections", "campaign-triggers")
PENDING_CAP = 1_000_000  # a pending count stops here: a scrape must stay cheap even when a processor is far behind
# Outbox statuses counted by channel: the waiting work and the failures (sent and delivered grow without bound).
DEPTH_STATUSES = ("queued", "deferred", "sending", "failed", "dead")
LATENCY_WINDOW = timedelta(minutes=5)
LATENCY_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
REGISTRY = "growth.observability.registry"


class DatabaseCollector(Collector):
    """Collects the cross-process numbers from the database at scrape time (a few indexed queries)."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def describe(self) -> list[Metric]:
        """Describe nothing up front: registering must not query the database."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield every database-derived metric (and whether the database answered)."""
        up = GaugeMetricFamily("growth_metrics_database_up", "1 when the scrape could read the database")
        try:
            with get_db(self.app).session_scope() as session:
                metrics = list(self._collect(session))
        except Exception:
            log.warning("metrics: the database could not be read", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _collect(self, session: Session) -> Iterator[Metric]:
        now = utcnow()
        last_seq = session.scalar(select(func.coalesce(func.max(PlatformEvent.seq), 0))) or 0
        size = GaugeMetricFamily("growth_event_log_last_seq", "Sequence number of the newest event in the log "
                                 "(the log's size; its rate is the ingest rate across every web node)")
        size.add_metric([], last_seq)
        yield size

        lag = GaugeMetricFamily("growth_event_cursor_lag_events", "Events in the log not yet read by a consumer "
                                f"(capped at {PENDING_CAP})", labels=["cursor"])
        position = GaugeMetricFamily("growth_event_cursor_position", "Last event seq a consumer has read",
                                     labels=["cursor"])
        cursors = {name: at for name, at in session.execute(
            select(ProcessorCursor.name, ProcessorCursor.position).where(ProcessorCursor.name.in_(LOG_CURSORS)))}
        for name in LOG_CURSORS:
            at = cursors.get(name, 0)
            pending = select(PlatformEvent.seq).where(PlatformEvent.seq > at).limit(PENDING_CAP).subquery()
            lag.add_metric([name], session.scalar(select(func.count()).select_from(pending)) or 0)
            position.add_metric([name], at)
        yield lag
        yield position

        depth = GaugeMetricFamily("growth_outbox_messages", "Outbox messages by status and channel "
                                  f"(statuses: {', '.join(DEPTH_STATUSES)})", labels=["status", "channel"])
        counts = {(status, channel): n for status, channel, n in session.execute(
            select(OutboxMessage.status, OutboxMessage.channel, func.count())
            .where(OutboxMessage.status.in_(DEPTH_STATUSES))
            .group_by(OutboxMessage.status, OutboxMessage.channel))}
        for status in DEPTH_STATUSES:
            for channel in sorted(set(MESSAGE_CHANNELS) | {c for s, c in counts if s == status}):
                depth.add_metric([status, channel], counts.get((status, channel), 0))
        yield depth
        yield self._latency(session, now)
        yield from self._jobs(session)

        max_age = timedelta(seconds=float(self.app.config["READY_HEARTBEAT_SECONDS"]))
        alive, newest = session.execute(select(
            func.count(case((WorkerHeartbeat.seen_at >= now - max_age, 1))),
            func.max(WorkerHeartbeat.seen_at))).one()
        workers = GaugeMetricFamily("growth_workers_alive", "`growth worker` processes with a recent heartbeat")
        workers.add_metric([], alive or 0)
        yield workers
        if newest is not None:
            age = GaugeMetricFamily("growth_worker_heartbeat_age_seconds", "Seconds since the newest worker heartbeat")
            age.add_metric([], max(0.0, (now - newest).total_seconds()))
            yield age

    def _latency(self, session: Session, now: Any) -> Metric:
        latency = seconds_between(OutboxMessage.sent_at, OutboxMessage.created_at)
        row = session.execute(
            select(func.count(), func.coalesce(func.sum(latency), 0.0),
                   *(func.coalesce(func.sum(case((latency <= bound, 1), else_=0)), 0) for bound in LATENCY_BUCKETS))
            .where(OutboxMessage.sent_at >= now - LATENCY_WINDOW)).one()
        total, total_seconds, *within = row
        family = GaugeHistogramMetricFamily(
            "growth_send_latency_seconds", "Time from queued to sent of the messages sent in the last "
            f"{int(LATENCY_WINDOW.total_seconds())} s (a window, not a running total)")
        buckets = [(_le(bound), float(n)) for bound, n in zip(LATENCY_BUCKETS, within, strict=True)]
        family.add_metric([], [*buckets, ("+Inf", float(total))], gsum_value=float(total_seconds))
        return family

    def _jobs(self, session: Session) -> Iterator[Metric]:
        last_run = GaugeMetricFamily("growth_job_last_run_timestamp_seconds",
                                     "When a scheduled job last finished (Unix time)", labels=["job"])
        last_ok = GaugeMetricFamily("growth_job_last_success_timestamp_seconds",
                                    "When a scheduled job last succeeded (Unix time)", labels=["job"])
        duration = GaugeMetricFamily("growth_job_last_duration_seconds", "How long a job's last run took",
                                     labels=["job"])
        runs = CounterMetricFamily("growth_job_runs", "Runs of a scheduled job", labels=["job"])
        failures = CounterMetricFamily("growth_job_failures", "Failed runs of a scheduled job", labels=["job"])
        crashes = CounterMetricFamily("growth_worker_crashes", "Crashes of a background worker (restarted after 5 s)",
                                      labels=["worker"])
        for job in session.scalars(select(JobRun).order_by(JobRun.job_id)):
            if job.job_id.startswith(WORKER_PREFIX):
                crashes.add_metric([job.job_id.removeprefix(WORKER_PREFIX)], job.failures)
                continue
            labels = [job.job_id]
            if job.last_finished_at is not None:
                last_run.add_metric(labels, job.last_finished_at.timestamp())
            if job.last_success_at is not None:
                last_ok.add_metric(labels, job.last_success_at.timestamp())
            if job.last_duration_seconds is not None:
                duration.add_metric(labels, job.last_duration_seconds)
            runs.add_metric(labels, job.runs)
            failures.add_metric(labels, job.failures)
        yield from (last_run, last_ok, duration, runs, failures, crashes)


def _le(bound: float) -> str:
    return str(bound)


def registry_for(app: Flask) -> CollectorRegistry:
    """Return the app's registry (built once): this process's metrics, or every process's in multiprocess mode."""
    registry = app.extensions.get(REGISTRY)
    if registry is None:
        registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.MultiProcessCollector(registry)
        else:
            for metric in _PROCESS_METRICS:
                registry.register(metric)
            ProcessCollector(registry=registry)
        registry.register(DatabaseCollector(app))
        app.extensions[REGISTRY] = registry
    return registry


def count_received(*, accepted: int, duplicates: int, rejected: int) -> None:
    """Count the events of one ingest request by outcome (this process's counter)."""
    for outcome, n in (("accepted", accepted), ("duplicate", duplicates), ("rejected", rejected)):
        if n:
            EVENTS_RECEIVED.labels(outcome).inc(n)
