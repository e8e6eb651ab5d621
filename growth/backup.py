"""`growth backup`: a consistent copy of the live database (docs/operations.md has restore and the drill).

SQLite: the online backup API (`sqlite3.Connection.backup`) copies pages in steps, inside one read
transaction, while the app keeps writing (WAL), to a temporary name; `PRAGMA
integrity_check` runs on the copy, and only a copy that passes gets its final, timestamped name.
PostgreSQL: `pg_dump -Fc` (custom format, for `pg_restore`), run with the password in the environment,
never on the command line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import URL, make_url

PAGES_PER_STEP = 1024  # ~4 MB a step: the writer waits at most one step's time for the lock


class BackupError(RuntimeError):
    """A backup that could not be made; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Backup:
    """A finished backup: where it is, how big, and how it was checked."""

    path: Path
    size: int
    check: str


def default_name(kind: str, now: datetime | None = None) -> str:
    """Return the timestamped file name of a backup (`growth-20261204T141500Z.db` / `.dump`)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"growth-{stamp}.{'db' if kind == 'sqlite' else 'dump'}"


def target_path(output: str | None, kind: str, default_dir: Path) -> Path:
    """Return the file to write: `output`, a stamped name in it if a folder (or ending in /), or in `default_dir`."""
    if output is None:
        return default_dir / default_name(kind)
    path = Path(output)
    return path / default_name(kind) if path.is_dir() or output.endswith(("/", os.sep)) else path


def sqlite_file(url: str) -> Path:
    """Return the database file of a SQLite URL (refusing in-memory databases)."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def backup_sqlite(source: Path, target: Path, *, progress: Callable[[int, int], None] | None = None) -> Backup:
    """Copy a live SQLite database with the online backup API, check the copy, then give it its name."""
    if not source.exists():
        raise BackupError(f"{source} does not exist (nothing to back up yet)")
    if target.exists():
        raise BackupError(f"{target} exists: choose another --output")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30, isolation_level=None)
    try:
        # One read transaction around every step: the copy is the database as of this moment. Writers go on
        # (WAL: a reader blocks nobody), and their commits cannot make the backup start over between steps,
        # which on a busy database it could do for ever.
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        dst = sqlite3.connect(partial)
        try:
            def step(status: int, remaining: int, total: int) -> None:
                if progress is not None:
                    progress(total - remaining, total)

            src.backup(dst, pages=PAGES_PER_STEP, progress=step)
            verdict = dst.execute("PRAGMA integrity_check").fetchall()
        finally:
            dst.close()
        src.execute("COMMIT")
    finally:
        src.close()
    result = ", ".join(str(row[0]) for row in verdict)
    if result != "ok":
        partial.unlink(missing_ok=True)
        raise BackupError(f"the copy failed its integrity check: {result[:300]}")
    os.chmod(partial, 0o600)  # personal data: the owner only
    partial.rename(target)
    return Backup(target, target.stat().st_size, "integrity_check ok")


def pg_dump_command(url: str, target: Path) -> tuple[list[str], dict[str, str]]:
    """Return the pg_dump command line for a database URL, and the environment that carries the password."""
    parsed: URL = make_url(url)
    command = ["pg_dump", "-Fc", "--no-owner", "-f", str(target)]
    if parsed.host:
        command += ["-h", parsed.host]
    if parsed.port:
        command += ["-p", str(parsed.port)]
    if parsed.username:
        command += ["-U", parsed.username]
    command.append(parsed.database or "")
    env = {"PGPASSWORD": parsed.password} if parsed.password else {}
    return command, {str(k): str(v) for k, v in env.items()}


def documented_command(url: str, target: Path) -> str:
    """Return the pg_dump command an operator can run by hand (the password comes from PGPASSWORD or ~/.pgpass)."""
    command, _env = pg_dump_command(url, target)
    return " ".join(command)


def backup_postgresql(url: str, target: Path) -> Backup:
    """Run `pg_dump -Fc` of the database into `target`; raise BackupError when it is missing or fails."""
    if shutil.which("pg_dump") is None:
        raise BackupError("pg_dump is not installed here (apt install postgresql-client, the server's major version "
                          f"or newer); or run on a host that has it: {documented_command(url, target)}")
    if target.exists():
        raise BackupError(f"{target} exists: choose another --output")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    command, extra = pg_dump_command(url, partial)
    done = subprocess.run(command, env={**os.environ, **extra}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise BackupError(f"pg_dump failed ({done.returncode}): {done.stderr.strip()[:500]}")
    listed = subprocess.run(["pg_restore", "--list", str(partial)], capture_output=True, text=True,
                            check=False) if shutil.which("pg_restore") else None
    if listed is not None and listed.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackupError(f"pg_restore cannot read the dump: {listed.stderr.strip()[:300]}")
    os.chmod(partial, 0o600)
    partial.rename(target)
    check = f"pg_restore --list: {len(listed.stdout.splitlines())} entries" if listed is not None else "not checked"
    return Backup(target, target.stat().st_size, check)
