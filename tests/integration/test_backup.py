"""`growth backup`: a consistent copy of a live database that restores and passes `growth check`.

SQLite: the backup runs while another thread keeps committing investors; the copy passes its integrity
check, holds every investor committed before the backup began and no half of anything (ids without a gap),
and restored by copying it back it serves the app. PostgreSQL: `pg_dump -Fc`, restored with `pg_restore`
into an empty database (the restore drill of docs/operations.md); without pg_dump the error says what to do.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import create_engine, func, insert, select, text

from growth.cli import cli
from growth.config import TestConfig
from growth.db import Database, insert_many, table_of
from growth.investors.models import Investor
from growth.investors.rules import referral_code_for
from growth.migrate import alembic_config, upgrade

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def investor_row(n: int) -> dict:
    uid = f"b{n:07d}"
    return {"platform_user_id": uid, "referral_code": referral_code_for(uid), "phone": f"+86139{n:08d}",
            "registered_at": datetime.now(UTC), "investment_count": 0, "investment_total_fen": 0, "holdings_fen": 0,
            "deposit_total_fen": 0, "withdrawal_total_fen": 0}


def seed(db: Database, start: int, count: int) -> None:
    with db.session_scope(write=True) as session:
        insert_many(session.connection(), table_of(Investor), [investor_row(n) for n in range(start, start + count)])


def check(url: str, instance: Path) -> tuple[int, str]:
    """Run `growth check` on a database as an operator would; return the exit code and output."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("GROWTH_")} | {
        "GROWTH_DATA_KEYS": TestConfig.DATA_KEYS}
    env.update(GROWTH_DATABASE_URL=url, GROWTH_INSTANCE_PATH=str(instance), GROWTH_SECRET_KEY="k" * 48,
               GROWTH_WEBHOOK_SECRET=TestConfig.WEBHOOK_SECRET)
    result = CliRunner().invoke(cli, ["check"], env=env, catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.sqlite_only
def test_a_sqlite_backup_taken_while_a_writer_commits_restores_with_every_row_committed_before_it(
        tmp_path, db_kind):
    live = tmp_path / "live" / "growth.db"
    live.parent.mkdir()
    url = f"sqlite:///{live}"
    upgrade(url)
    db = Database(url)
    seed(db, 0, 40_000)  # several MB: the copy takes many steps of the backup API
    stop, written = threading.Event(), [40_000]

    def writer() -> None:
        n = 40_000
        while not stop.is_set():
            with db.session_scope(write=True) as session:
                session.execute(insert(Investor), [investor_row(n)])
            n += 1
            written[0] = n

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while written[0] < 40_020:  # the writer is going
            stop.wait(0.01)
        before = written[0]
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("GROWTH_")} | {
        "GROWTH_DATA_KEYS": TestConfig.DATA_KEYS}
        env.update(GROWTH_DATABASE_URL=url, GROWTH_INSTANCE_PATH=str(tmp_path / "instance"))
        result = CliRunner().invoke(cli, ["backup", "--output", f"{tmp_path / 'backups'}/"], env=env,
                                    catch_exceptions=False)
        while written[0] < before + 200 and thread.is_alive():  # and goes on after
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join(30)
    assert result.exit_code == 0, result.output
    assert "integrity_check ok" in result.output and "copying pages" in result.output
    (copy,) = list((tmp_path / "backups").glob("growth-*.db"))
    assert copy.stat().st_mode & 0o077 == 0  # the owner's only
    db.dispose()

    # The restore of docs/operations.md: the app stopped, the copy put back in place of the database.
    shutil.copyfile(copy, live)
    for leftover in (live.with_name("growth.db-wal"), live.with_name("growth.db-shm")):
        leftover.unlink(missing_ok=True)
    with sqlite3.connect(live) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        count, low, high = conn.execute("SELECT count(*), min(id), max(id) FROM investors").fetchone()
    assert count >= before  # everything committed before the backup began
    assert count < written[0]  # and not what came after it ended
    assert (low, high) == (1, count)  # a snapshot: no row missing in between
    code, output = check(url, tmp_path / "instance")
    assert code == 0, output


@pytest.mark.postgres_only
def test_a_postgresql_backup_is_a_pg_dump_that_pg_restore_puts_into_an_empty_database(
        database_url, tmp_path, db_kind):
    command.stamp(alembic_config(database_url), "head")  # made from the models: the head schema, as if migrated
    db = Database(database_url)
    seed(db, 0, 500)
    db.dispose()
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("GROWTH_")} | {
        "GROWTH_DATA_KEYS": TestConfig.DATA_KEYS}
    env.update(GROWTH_DATABASE_URL=database_url, GROWTH_INSTANCE_PATH=str(tmp_path / "instance"))
    target = tmp_path / "growth.dump"
    result = CliRunner().invoke(cli, ["backup", "-o", str(target)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "pg_restore --list" in result.output

    name = f"growth_restore_{os.getpid()}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    restored = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        subprocess.run(["pg_restore", "--no-owner", "-h", "127.0.0.1", "-U", "postgres", "-d", name, str(target)],
                       check=True, capture_output=True)
        engine = create_engine(restored)
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Investor)) == 500
        engine.dispose()
        upgrade(restored)  # `growth db upgrade` after a restore: a no-op here, the dump is of this release
        code, output = check(restored, tmp_path / "instance")
        assert code == 0, output
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        source = create_engine(database_url)
        with source.begin() as conn:
            conn.execute(text("DROP TABLE alembic_version"))  # the next test's database has none
        source.dispose()

    printed = CliRunner().invoke(cli, ["backup", "--print-command", "-o", "/backups/x.dump"], env=env)
    assert printed.output.startswith("pg_dump -Fc") and "/backups/x.dump" in printed.output
    no_tools = CliRunner().invoke(cli, ["backup", "-o", str(tmp_path / "again.dump")],
                                  env=env | {"PATH": str(tmp_path / "empty-bin")})
    assert no_tools.exit_code == 1
    assert "pg_dump is not installed" in no_tools.output and "Traceback" not in no_tools.output
