"""/healthz, /readyz and the access rule of /metrics, and the request id every response carries."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from growth.app import create_app
from growth.config import TestConfig
from growth.observability.services import beat
from growth.timeutil import utcnow
from tests.observability import stamped


def _beat(session, *, ago: timedelta = timedelta(0)) -> None:
    now = utcnow() - ago
    beat("test-host:1:abc", ["events-processor"], session=session, now=now, started_at=now)
    session.commit()


def _app_on(url: str, tmp_path: Path):
    os.environ["GROWTH_INSTANCE_PATH"] = str(tmp_path / "instance")
    config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    return create_app(config | {"DATABASE_URL": url})


UNREACHABLE = {
    "sqlite": lambda tmp: f"sqlite:///{tmp}/no-such-folder/growth.db",
    "postgresql": lambda tmp: "postgresql+psycopg://postgres@127.0.0.1:1/nothing",
}


@pytest.mark.parametrize("kind", sorted(UNREACHABLE))
def test_healthz_answers_alive_without_touching_the_database(kind, tmp_path):
    client = _app_on(UNREACHABLE[kind](tmp_path), tmp_path).test_client()

    response = client.get("/healthz")

    assert (response.status_code, response.json) == (200, {"status": "ok"})


@pytest.mark.parametrize("kind", sorted(UNREACHABLE))
def test_readyz_answers_503_naming_the_database_when_it_cannot_be_reached(kind, tmp_path):
    client = _app_on(UNREACHABLE[kind](tmp_path), tmp_path).test_client()

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json["failed"] == ["database"]
    assert response.json["checks"]["database"]["ok"] is False
    assert "127.0.0.1" not in response.get_data(as_text=True)  # says which check, not where the database is


def test_readyz_is_ready_with_the_schema_at_head_and_a_recent_worker_heartbeat(app, client, session, db_kind):
    _beat(session, ago=timedelta(seconds=10))
    with stamped(app):
        response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json == {"status": "ready", "failed": [],
                             "checks": {"database": {"ok": True}, "migrations": {"ok": True}, "worker": {"ok": True}}}


def test_readyz_answers_503_naming_the_worker_without_a_heartbeat_or_with_an_old_one(app, client, session, db_kind):
    with stamped(app):
        none = client.get("/readyz")
        _beat(session, ago=timedelta(seconds=app.config["READY_HEARTBEAT_SECONDS"] + 5))
        stale = client.get("/readyz")

    for response in (none, stale):
        assert response.status_code == 503
        assert response.json["failed"] == ["worker"]
    assert "never" in none.json["checks"]["worker"]["detail"]


@pytest.mark.parametrize("app_config", [{"READY_REQUIRES_WORKER": False}])
def test_readyz_needs_no_worker_when_the_deployment_runs_none_on_purpose(app, client, db_kind):
    with stamped(app):
        response = client.get("/readyz")

    assert response.status_code == 200
    assert set(response.json["checks"]) == {"database", "migrations"}


def test_readyz_answers_503_naming_migrations_when_the_schema_is_behind_the_code(app, client, session, db_kind):
    _beat(session)
    with stamped(app, "0019_cohort_rollup"):
        response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json["failed"] == ["migrations"]
    assert "0019_cohort_rollup" in response.json["checks"]["migrations"]["detail"]


def test_every_response_echoes_a_sane_request_id_and_replaces_a_strange_one(client, db_kind):
    given = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.42:x"})
    strange = client.get("/healthz", headers={"X-Request-ID": "<script>alert(1)</script>"})
    none = client.get("/login")
    refused = client.get("/investors/")  # the guard's redirect carries one too

    assert given.headers["X-Request-ID"] == "lb-7f3a.42:x"
    for response in (strange, none, refused):
        assert len(response.headers["X-Request-ID"]) == 32
    assert strange.headers["X-Request-ID"] != none.headers["X-Request-ID"]


@pytest.mark.parametrize("app_config", [{"METRICS_TOKEN": "scrape-secret-0123456789"}])
def test_metrics_answers_loopback_or_the_bearer_token_and_refuses_everyone_else(client, db_kind):
    outside = {"environ_base": {"REMOTE_ADDR": "10.2.3.4"}}

    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", **outside).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}, **outside).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-0123456789"},
                      **outside).status_code == 200
    # A reverse proxy on the same machine: its requests come from loopback but are not local ones.
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403
