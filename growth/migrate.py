"""Alembic, driven from code: the migrations live in the package, no alembic.ini needed."""

from __future__ import annotations

from functools import cache

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from growth.db import standalone_engine


def alembic_config(url: str) -> AlembicConfig:
    """Return an Alembic config pointing at the package's migrations and this database."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", "growth:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@cache
def scripts() -> ScriptDirectory:
    """Return the migrations shipped with this code (read once: they do not change while it runs)."""
    return ScriptDirectory.from_config(alembic_config(""))


def code_heads() -> set[str]:
    """Return the newest revision(s) of this code's migrations."""
    return set(scripts().get_heads())


def database_heads(conn: Connection) -> set[str]:
    """Return the revision(s) the database's schema is at (empty: never migrated)."""
    return set(MigrationContext.configure(conn).get_current_heads())


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema up to a revision."""
    command.upgrade(alembic_config(url), revision)


def is_empty(url: str) -> bool:
    """Tell whether the database has no tables of ours yet."""
    engine = standalone_engine(url)
    try:
        return not inspect(engine).get_table_names()
    finally:
        engine.dispose()


def is_current(url: str) -> bool:
    """Tell whether the schema is at the newest revision."""
    engine = standalone_engine(url)
    try:
        with engine.connect() as conn:
            return database_heads(conn) == code_heads()
    finally:
        engine.dispose()
