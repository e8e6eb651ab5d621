"""/metrics scraped and parsed after a real flow: events ingested and processed, messages queued and sent, jobs run."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from campaigns import scheduler
from channels.adapters.port import Channel, MessageClass
from channels.delivery import Deliverer
from channels.outbox import NewMessage, enqueue
from growth.background import BackgroundRunner
from growth.events.processor import drain
from growth.investors.models import Investor
from growth.observability.models import JobRun
from growth.timeutil import utcnow
from tests.events import event, post_events
from tests.observability import scrape, value
from tests.processes import product_env

ROOT = Path(__file__).resolve().parents[2]


def _register(n: int) -> list[dict]:
    at = datetime.now(UTC)
    return [event("user.registered", f"m-u{i}", at, phone=f"+86138000000{i:02d}", name=f"测试{i}",
                  email=f"m{i}@example.com") for i in range(n)]


def test_a_scrape_shows_ingested_events_the_processor_lag_and_its_catching_up(app, client, db_kind):
    before = value(scrape(client), "growth_events_received_total", outcome="accepted") or 0.0

    events = _register(3)
    assert post_events(client, events).json["accepted"] == 3
    assert post_events(client, events).json["duplicates"] == 3
    behind = scrape(client)
    drain(app)
    caught_up = scrape(client)

    assert value(behind, "growth_events_received_total", outcome="accepted") == before + 3
    assert value(behind, "growth_events_received_total", outcome="duplicate") >= 3
    assert value(behind, "growth_event_log_last_seq") == 3
    assert value(behind, "growth_event_cursor_lag_events", cursor="projections") == 3
    assert value(caught_up, "growth_event_cursor_lag_events", cursor="projections") == 0
    assert value(caught_up, "growth_event_cursor_position", cursor="projections") == 3
    assert value(caught_up, "growth_metrics_database_up") == 1


def test_a_scrape_shows_the_outbox_depth_by_channel_then_the_send_latency_once_delivery_sent(app, client, session,
                                                                                           db_kind):
    post_events(client, _register(2))
    drain(app)
    investors = session.scalars(select(Investor).order_by(Investor.id)).all()
    for investor in investors:
        enqueue(NewMessage(sender="system", cause="metrics-test", channel=Channel.SMS,
                           message_class=MessageClass.SERVICE, investor_id=investor.id,
                           user_id=investor.platform_user_id, content={"text": "您的红包已到账"}),
                session=session, now=utcnow())
    session.commit()
    queued = scrape(client)

    app.config["CHANNEL_ENV"] = {}  # the console SMS provider
    assert Deliverer(app).run_once() == 2
    sent = scrape(client)

    assert value(queued, "growth_outbox_messages", status="queued", channel="sms") == 2
    assert value(queued, "growth_outbox_messages", status="queued", channel="email") == 0
    assert value(queued, "growth_send_latency_seconds_gcount") == 0
    assert value(sent, "growth_outbox_messages", status="queued", channel="sms") == 0
    assert value(sent, "growth_send_latency_seconds_gcount") == 2
    assert value(sent, "growth_send_latency_seconds_bucket", le="+Inf") == 2
    assert value(sent, "growth_send_latency_seconds_bucket", le="3600.0") == 2
    assert value(sent, "growth_outbox_messages", status="failed", channel="sms") == 0


def test_a_scrape_shows_each_scheduled_jobs_last_run_success_and_failures(app, client, monkeypatch, db_kind):
    def fine(session, now):
        pass

    def broken(session, now):
        raise RuntimeError("the provider is down")

    monkeypatch.setitem(scheduler._TASKS, "metrics-fine", (fine, True))
    monkeypatch.setitem(scheduler._TASKS, "metrics-broken", (broken, True))
    monkeypatch.setitem(scheduler._APPS, "current", app)
    started = time.time()
    scheduler.run_job("metrics-fine")
    scheduler.run_job("metrics-fine")
    with pytest.raises(RuntimeError):
        scheduler.run_job("metrics-broken")
    samples = scrape(client)

    assert value(samples, "growth_job_runs_total", job="metrics-fine") == 2
    assert value(samples, "growth_job_failures_total", job="metrics-fine") == 0
    assert value(samples, "growth_job_last_success_timestamp_seconds", job="metrics-fine") >= int(started)
    assert value(samples, "growth_job_failures_total", job="metrics-broken") == 1
    assert value(samples, "growth_job_last_run_timestamp_seconds", job="metrics-broken") >= int(started)
    assert value(samples, "growth_job_last_success_timestamp_seconds", job="metrics-broken") is None


def test_a_crashing_background_worker_is_counted_and_restarted(app, client, session, db_kind):
    calls = []

    def flaky(app, stop):
        calls.append(1)
        raise ValueError("a bug")

    runner = BackgroundRunner(app, {"flaky": flaky}, heartbeat=False)
    runner.start()
    deadline = time.monotonic() + 30
    while session.get(JobRun, "worker:flaky") is None and time.monotonic() < deadline:
        session.rollback()
        time.sleep(0.05)
    runner.shutdown()
    samples = scrape(client)

    assert value(samples, "growth_worker_crashes_total", worker="flaky") == 1
    assert calls == [1]


MULTIPROCESS_SCRIPT = """
import os, sys
from sqlalchemy import create_engine
from growth.app import create_app
from growth.config import TestConfig
from growth.db import Base
from growth.models import import_all_models

import_all_models()
url = "sqlite:///" + sys.argv[1]
engine = create_engine(url)
Base.metadata.create_all(engine)
engine.dispose()
config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
client = create_app(config | {"DATABASE_URL": url}).test_client()
client.get("/healthz")
client.get("/healthz")
sys.stdout.write(client.get("/metrics").get_data(as_text=True))
"""


def test_with_a_multiprocess_folder_the_request_metrics_are_merged_from_files_every_worker_writes(tmp_path):
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = product_env()
    env.update(PROMETHEUS_MULTIPROC_DIR=str(folder), GROWTH_INSTANCE_PATH=str(tmp_path / "instance"))
    runs = [subprocess.run([sys.executable, "-c", MULTIPROCESS_SCRIPT, str(tmp_path / f"db{n}.sqlite")], env=env,
                           cwd=ROOT, capture_output=True, text=True, timeout=120, check=True) for n in (1, 2)]

    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(runs[1].stdout) for s in family.samples}
    healthz = (("endpoint", "observability.healthz"), ("method", "GET"), ("status", "200"))
    assert samples[("growth_http_requests_total", healthz)] == 4  # two from each process
    assert samples[("growth_metrics_database_up", ())] == 1
    assert list(folder.glob("counter_*.db"))
