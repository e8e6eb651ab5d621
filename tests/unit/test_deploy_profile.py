"""The deployment profile files agree with the code: every GROWTH_* variable they use is one the product reads,
the example environment file lists every one of them, and no variable is read without a place in the catalog."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from growth.envvars import example_text, names, variables

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NAME = re.compile(r"GROWTH_[A-Z0-9_]+")


def test_the_compose_file_parses_and_has_the_services_of_the_profile():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert {"postgres", "redis", "migrate", "web", "worker"} <= set(compose["services"])
    web, worker, migrate = (compose["services"][s] for s in ("web", "worker", "migrate"))
    assert web["command"][:3] == ["gunicorn", "-c", "deploy/gunicorn.conf.py"] and web["command"][-1] == "wsgi:app"
    assert worker["command"] == ["growth", "worker"] and worker["deploy"]["replicas"] >= 2
    assert migrate["command"] == ["growth", "db", "upgrade"] and migrate["restart"] == "no"
    assert web["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert web["env_file"] == "growth.env" and worker["env_file"] == "growth.env"
    # The stop grace outlasts the drain each process is told to do, or the runtime kills it mid-drain.
    assert int(web["stop_grace_period"].rstrip("s")) > int(web["environment"]["GROWTH_GRACEFUL_TIMEOUT"])
    assert int(worker["stop_grace_period"].rstrip("s")) > float(worker["environment"]["GROWTH_WORKER_STOP_SECONDS"])


def test_the_compose_file_and_the_units_use_only_variables_the_product_reads():
    known = names()
    for path in [DEPLOY / "compose.yaml", *sorted((DEPLOY / "systemd").glob("*.service")), DEPLOY / "gunicorn.conf.py"]:
        unknown = set(NAME.findall(path.read_text())) - known
        assert not unknown, f"{path.name}: {sorted(unknown)}"


def test_the_example_environment_file_lists_every_variable_once_and_nothing_else():
    text = (DEPLOY / "growth.env.example").read_text()
    listed = re.findall(r"^#? ?(GROWTH_[A-Z0-9_]+)=", text, flags=re.MULTILINE)
    assert sorted(listed) == sorted(v.name for v in variables())
    assert len(listed) == len(set(listed))
    # Generated: after adding a variable, regenerate it (growth/envvars.py says how).
    assert text == example_text()


def test_every_growth_variable_named_in_the_code_is_in_the_catalog():
    known = names()
    used: dict[str, str] = {}
    for package in ("growth", "campaigns", "channels", "dashboards"):
        for path in (ROOT / package).rglob("*.py"):
            for name in NAME.findall(path.read_text()):
                used.setdefault(name, str(path.relative_to(ROOT)))
    families = {n for n in used if n.endswith("_")}  # GROWTH_CRM_ …: prefixes of Config families, checked below
    missing = {n: where for n, where in used.items() if n not in known and n not in families}
    assert not missing
    for family in families - {"GROWTH_"}:
        assert any(k.startswith(family) for k in known), family


def test_the_systemd_units_stop_with_sigterm_and_wait_longer_than_the_drain():
    web = (DEPLOY / "systemd" / "growth-web.service").read_text()
    worker = (DEPLOY / "systemd" / "growth-worker@.service").read_text()

    def number(text: str, pattern: str) -> float:
        found = re.search(pattern, text)
        assert found, pattern
        return float(found.group(1))

    for unit in (web, worker):
        assert "KillSignal=SIGTERM" in unit
    assert number(web, r"TimeoutStopSec=(\d+)") > number(web, r"GROWTH_GRACEFUL_TIMEOUT=(\d+)")
    assert number(worker, r"TimeoutStopSec=(\d+)") > number(worker, r"GROWTH_WORKER_STOP_SECONDS=(\d+)")
    assert "ExecStart=/opt/growth/.venv/bin/growth worker" in worker
    assert "gunicorn -c /opt/growth/deploy/gunicorn.conf.py wsgi:app" in web


def test_gunicorn_writes_an_access_log_only_when_asked(monkeypatch):
    import runpy

    monkeypatch.delenv("GROWTH_WEB_ACCESS_LOG", raising=False)
    assert runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))["accesslog"] is None  # the proxy logs requests
    monkeypatch.setenv("GROWTH_WEB_ACCESS_LOG", "1")
    settings = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert settings["accesslog"] == "-" and "%(q)s" not in settings["access_log_format"]  # no query string
