"""The instance folder, database and secrets are private from the start; weak webhook secrets stop start-up."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from growth.app import create_app
from growth.cli import cli
from growth.config import ConfigError, TestConfig, check_webhook_secrets
from growth.db import get_db

STRONG = "whsec_" + base64.b64encode(b"x" * 24).decode()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual umask 022, which leaves new files readable by everyone unless the code says otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def no_chmod(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any chmod: the modes must be right when the files are created, not fixed afterwards."""
    def refuse(*_args: object, **_kw: object) -> None:
        raise AssertionError("chmod after creation: the file was open to others for a moment")

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(Path, "chmod", refuse)


def test_a_new_instance_gets_a_private_folder_database_wal_and_secrets(tmp_path, monkeypatch, loose_umask, no_chmod):
    instance = tmp_path / "instance"
    monkeypatch.setenv("GROWTH_INSTANCE_PATH", str(instance))
    for name in ("GROWTH_DATABASE_URL", "GROWTH_SECRET_KEY", "GROWTH_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    app = create_app({"TESTING": True})
    try:
        with get_db(app).session_scope(write=True) as session:  # opens the WAL: growth.db-wal and -shm appear
            session.execute(text("CREATE TABLE probe (x INTEGER)"))
            session.execute(text("INSERT INTO probe VALUES (1)"))
        files = {p.name: mode(p) for p in instance.iterdir()}
    finally:
        get_db(app).dispose()
    assert mode(instance) == 0o700
    assert {"growth.db", "growth.db-wal", "growth.db-shm", "secret_key", "webhook_secret"} <= set(files)
    assert {name: m for name, m in files.items() if m != 0o600} == {}
    check_webhook_secrets((instance / "webhook_secret").read_text())  # the generated one passes the rule


def test_a_second_start_keeps_the_generated_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("GROWTH_INSTANCE_PATH", str(tmp_path / "instance"))
    for name in ("GROWTH_DATABASE_URL", "GROWTH_SECRET_KEY", "GROWTH_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    first = create_app({"TESTING": True})
    second = create_app({"TESTING": True})
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert first.config["WEBHOOK_SECRET"] == second.config["WEBHOOK_SECRET"]
    assert not [p for p in (tmp_path / "instance").iterdir() if p.name.startswith(".")]  # no temporary left


@pytest.mark.parametrize("secret", [
    TestConfig.WEBHOOK_SECRET,
    STRONG,
    "whsec_" + base64.b64encode(bytes(range(32))).decode(),
    f"{STRONG} {TestConfig.WEBHOOK_SECRET}",
])
def test_whsec_secrets_of_at_least_24_bytes_are_accepted(secret):
    check_webhook_secrets(secret)


@pytest.mark.parametrize(("secret", "says"), [
    ("whsec_YQ==", "too weak: 1 bytes"),
    ("changeme", "whsec_<base64>"),
    ("whsec_" + base64.b64encode(b"x" * 23).decode(), "too weak: 23 bytes"),
    ("whsec_not*base64!", "not valid base64"),
    (base64.b64encode(b"x" * 32).decode(), "whsec_<base64>"),
    (f"{STRONG} whsec_YQ==", "secret 2 of 2 is too weak"),
])
def test_a_weak_or_malformed_webhook_secret_is_refused_with_a_message_that_says_why(secret, says):
    with pytest.raises(ConfigError, match="GROWTH_WEBHOOK_SECRET") as err:
        check_webhook_secrets(secret)
    assert says in str(err.value)
    assert "YQ==" not in str(err.value) and "changeme" not in str(err.value)  # never echo the secret


def test_the_app_refuses_to_start_with_a_weak_webhook_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("GROWTH_INSTANCE_PATH", str(tmp_path / "instance"))
    with pytest.raises(ConfigError):
        create_app({"TESTING": True, "WEBHOOK_SECRET": "whsec_YQ==", "SECRET_KEY": "k"})


def test_a_weak_secret_left_in_the_instance_file_is_refused_too(tmp_path, monkeypatch):
    instance = tmp_path / "instance"
    instance.mkdir(mode=0o700)
    (instance / "webhook_secret").write_text("changeme\n")
    monkeypatch.setenv("GROWTH_INSTANCE_PATH", str(instance))
    monkeypatch.delenv("GROWTH_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ConfigError, match="webhook_secret"):
        create_app({"TESTING": True, "SECRET_KEY": "k"})


@pytest.mark.parametrize("command", [["users", "list"], ["serve", "--port", "1"], ["worker"]])
def test_the_cli_exits_non_zero_with_a_clear_message_on_a_weak_webhook_secret(tmp_path, command):
    env = {"GROWTH_INSTANCE_PATH": str(tmp_path / "instance"), "GROWTH_WEBHOOK_SECRET": "changeme",
           "GROWTH_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    result = CliRunner().invoke(cli, command, env=env)
    assert result.exit_code == 1
    assert "Error: GROWTH_WEBHOOK_SECRET must look like whsec_<base64>" in result.output
    assert "Traceback" not in result.output
