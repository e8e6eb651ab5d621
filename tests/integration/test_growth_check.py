"""`growth check` against real components: a SQLite default, PostgreSQL behind on migrations, Redis up and down,
a real SMTP server (aiosmtpd), a fake SMS provider and webhook receiver over HTTP.

The command builds its app from the environment as an operator's shell would give it (every other GROWTH_*
variable removed); each check prints one line, a failure makes the exit status 1, `--json` says the same.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from alembic import command
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from growth.cli import cli
from growth.config import TestConfig
from growth.crypto import configure, new_key, parse_keys
from growth.migrate import alembic_config, upgrade
from tests.fakes.aliyun_sms import FakeAliyunSms
from tests.fakes.smtp import FakeSmtp, silent_server
from tests.fakes.webhook import FakeWebhookReceiver

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SECRET = "s" * 48
WEBHOOK = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def migrated_url(db_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database at the head revision: a migrated SQLite file, or this run's PostgreSQL one stamped at head."""
    if db_kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'growth.db'}"
        upgrade(url)
        yield url
        return
    url = request.getfixturevalue("database_url")  # created from the models: the head schema, no version table
    command.stamp(alembic_config(url), "head")
    yield url
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    engine.dispose()


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run `growth check` with exactly these GROWTH_* variables (and a fresh instance folder)."""

    def _run(*args: str, **env: str) -> Result:
        environ: dict[str, str | None] = {k: None for k in os.environ if k.startswith("GROWTH_")}
        # The tests' data key unless a test says otherwise: the command's app sets the process's key ring.
        environ.update(GROWTH_INSTANCE_PATH=str(tmp_path / "instance"), GROWTH_DATA_KEYS=TestConfig.DATA_KEYS)
        environ.update(env)
        return CliRunner().invoke(cli, ["check", *args], env=environ, catch_exceptions=False)

    return _run


def line(result: Result, name: str) -> str:
    """Return the output line of one check."""
    found = [ln for ln in result.output.splitlines() if ln[6:].startswith(name + " ")]
    assert len(found) == 1, result.output
    return found[0]


def test_the_embedded_sqlite_default_with_no_configuration_passes(run):
    result = run()
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output
    assert line(result, "database").startswith("ok")
    assert line(result, "migrations").startswith("ok")
    assert result.output.rstrip().endswith("all checks passed")
    quiet = run("--quiet")
    assert quiet.exit_code == 0 and quiet.output == ""  # nothing to report


@pytest.mark.postgres_only
def test_a_postgresql_database_behind_on_migrations_fails_and_says_to_upgrade(run, db_kind, request):
    name = f"growth_check_{os.getpid()}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade(url, "0005")
        env = {"GROWTH_DATABASE_URL": url, "GROWTH_SECRET_KEY": SECRET, "GROWTH_WEBHOOK_SECRET": WEBHOOK}
        behind = run(**env)
        assert behind.exit_code == 1, behind.output
        migrations = line(behind, "migrations")
        assert migrations.startswith("FAIL") and "at 0005" in migrations
        assert "growth db upgrade" in migrations
        assert line(behind, "database").startswith("ok")

        as_json = orjson.loads(run("--json", **env).output)
        assert as_json["ok"] is False
        assert {c["name"]: c["status"] for c in as_json["checks"]}["migrations"] == "FAIL"

        upgrade(url)
        current = run(**env)
        assert current.exit_code == 0, current.output
        assert line(current, "migrations").startswith("ok")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres_only
def test_postgresql_without_a_configured_secret_key_fails_as_every_host_would_sign_with_its_own(
        run, migrated_url, db_kind):
    result = run(GROWTH_DATABASE_URL=migrated_url, GROWTH_WEBHOOK_SECRET=WEBHOOK)
    assert result.exit_code == 1
    assert line(result, "secret-key").startswith("FAIL")
    assert "GROWTH_SECRET_KEY" in line(result, "secret-key")
    short = run(GROWTH_DATABASE_URL=migrated_url, GROWTH_WEBHOOK_SECRET=WEBHOOK, GROWTH_SECRET_KEY="change-me")
    assert line(short, "secret-key").startswith("FAIL")


@pytest.mark.postgres_only
def test_postgresql_without_configured_data_keys_fails_as_each_host_would_encrypt_with_its_own(
        run, migrated_url, db_kind):
    env = {"GROWTH_DATABASE_URL": migrated_url, "GROWTH_SECRET_KEY": SECRET, "GROWTH_WEBHOOK_SECRET": WEBHOOK}
    try:
        result = run(GROWTH_DATA_KEYS="", **env)
        assert result.exit_code == 1
        assert line(result, "data-keys").startswith("FAIL") and "growth keys new" in line(result, "data-keys")
        rotating = run(GROWTH_DATA_KEYS=f"{new_key('k2')},{TestConfig.DATA_KEYS}", **env)
        assert line(rotating, "data-keys").startswith("ok") and "1 older kept" in line(rotating, "data-keys")
        bad = run(GROWTH_DATA_KEYS="k2:short", **env)
        assert bad.exit_code == 1 and "GROWTH_DATA_KEYS" in line(bad, "config")
    finally:
        configure(parse_keys(TestConfig.DATA_KEYS))  # the commands' apps changed the process's key ring


def test_redis_answering_passes_and_a_wrong_redis_port_fails(run, migrated_url, db_kind):
    env = {"GROWTH_DATABASE_URL": migrated_url, "GROWTH_SECRET_KEY": SECRET, "GROWTH_WEBHOOK_SECRET": WEBHOOK}
    up = run(GROWTH_REDIS_URL="redis://127.0.0.1:6379/15", **env)
    assert line(up, "redis").startswith("ok"), up.output
    assert "PING" in line(up, "redis")

    down = run("--timeout", "2", GROWTH_REDIS_URL=f"redis://:pw-not-shown@127.0.0.1:{free_port()}/0", **env)
    assert down.exit_code == 1
    assert line(down, "redis").startswith("FAIL")
    assert "pw-not-shown" not in down.output  # credentials never printed


def test_a_real_smtp_server_passes_with_an_ehlo_and_receives_no_mail(run, migrated_url, db_kind):
    smtp = FakeSmtp().start()
    try:
        env = {"GROWTH_DATABASE_URL": migrated_url, "GROWTH_SECRET_KEY": SECRET, "GROWTH_WEBHOOK_SECRET": WEBHOOK,
               "GROWTH_MAIL_FROM": "增长 <hello@example.com>"}
        result = run(GROWTH_SMTP_URL=f"smtp://{smtp.host}:{smtp.port}", **env)
        assert result.exit_code == 0, result.output
        assert line(result, "smtp").startswith("ok")
        assert smtp.messages == []
        starttls = run(GROWTH_SMTP_URL=f"smtp://{smtp.host}:{smtp.port}?starttls=true", **env)
        assert line(starttls, "smtp").startswith("FAIL") and "STARTTLS" in line(starttls, "smtp")
    finally:
        smtp.stop()
    sock, port = silent_server()
    try:
        silent = run("--timeout", "1", GROWTH_SMTP_URL=f"smtp://127.0.0.1:{port}", **env)
    finally:
        sock.close()
    assert silent.exit_code == 1 and line(silent, "smtp").startswith("FAIL")
    nobody = run(GROWTH_SMTP_URL=f"smtp://127.0.0.1:{free_port()}", **env)
    assert line(nobody, "smtp").startswith("FAIL")
    no_sender = run(GROWTH_SMTP_URL="smtp://127.0.0.1:25", **(env | {"GROWTH_MAIL_FROM": ""}))
    assert "GROWTH_MAIL_FROM" in line(no_sender, "smtp")


def test_sms_credentials_missing_fail_by_name_and_a_reachable_provider_passes(run, tmp_path):
    aliyun = FakeAliyunSms().start()
    try:
        base = {"GROWTH_SMS_PROVIDER": "aliyun", "GROWTH_SMS_ENDPOINT": aliyun.endpoint, "GROWTH_SMS_PROTOCOL": "http",
                "GROWTH_SMS_ACCESS_KEY_ID": aliyun.access_key_id}
        missing = run(**base)
        assert missing.exit_code == 1
        assert "GROWTH_SMS_ACCESS_KEY_SECRET" in line(missing, "sms")
        assert "GROWTH_SMS_SIGN_NAME" in line(missing, "sms")
        complete = run(GROWTH_SMS_ACCESS_KEY_SECRET=aliyun.secret, GROWTH_SMS_SIGN_NAME="投资人增长", **base)
        assert complete.exit_code == 0, complete.output
        assert line(complete, "sms").startswith("ok")
        assert aliyun.received == []  # a connection, never a message
    finally:
        aliyun.stop()
    gone = run(GROWTH_SMS_ACCESS_KEY_SECRET="x", GROWTH_SMS_SIGN_NAME="投资人增长",
               **(base | {"GROWTH_SMS_ENDPOINT": f"127.0.0.1:{free_port()}"}))
    assert line(gone, "sms").startswith("FAIL") and "unreachable" in line(gone, "sms")


def test_wechat_with_half_its_credentials_fails(run):
    result = run(GROWTH_WECHAT_APPID="wx1234567890abcdef")
    assert result.exit_code == 1
    assert "GROWTH_WECHAT_SECRET" in line(result, "wechat")


def test_the_platform_webhook_must_be_well_formed_signed_and_reachable(run):
    receiver = FakeWebhookReceiver(WEBHOOK).start()
    try:
        ok = run(GROWTH_PLATFORM_WEBHOOK_URL=receiver.url + "?token=not-shown", GROWTH_PLATFORM_WEBHOOK_SECRET=WEBHOOK)
        assert line(ok, "webhook").startswith("ok"), ok.output
        assert "not-shown" not in ok.output
        unsigned = run(GROWTH_PLATFORM_WEBHOOK_URL=receiver.url)
        assert line(unsigned, "webhook").startswith("FAIL")
        assert "GROWTH_PLATFORM_WEBHOOK_SECRET" in line(unsigned, "webhook")
    finally:
        receiver.stop()
    malformed = run(GROWTH_PLATFORM_WEBHOOK_URL="platform.example.com/hook", GROWTH_PLATFORM_WEBHOOK_SECRET=WEBHOOK)
    assert malformed.exit_code == 1
    assert line(malformed, "webhook").startswith("FAIL")
    assert "must start with" in line(malformed, "webhook")


def test_a_setting_the_app_refuses_is_one_failure_with_its_reason_not_a_traceback(run):
    weak = run(GROWTH_WEBHOOK_SECRET="whsec_c2hvcnQ=")
    assert weak.exit_code == 1
    assert line(weak, "config").startswith("FAIL")
    assert "too weak" in weak.output and "Traceback" not in weak.output
    bad_number = run("--json", GROWTH_PROXY_COUNT="two")
    assert bad_number.exit_code == 1
    assert orjson.loads(bad_number.output)["checks"][0]["status"] == "FAIL"
    bad_url = run(GROWTH_PUBLIC_BASE_URL="growth.example.com")
    assert line(bad_url, "public-url").startswith("FAIL")
