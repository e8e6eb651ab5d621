"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from growth.db import Base
from growth.migrate import is_current, is_empty, upgrade
from growth.models import import_all_models


@pytest.fixture
def empty_database_url(db_kind, tmp_path, request):
    if db_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test", isolation_level="AUTOCOMMIT")
    name = f"growth_migrate_{request.node.name[-12:].strip('[]')}_{id(request) % 100000}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_upgrading_an_empty_database_gives_the_models_schema_with_no_difference(empty_database_url):
    import_all_models()
    assert is_empty(empty_database_url)
    upgrade(empty_database_url)
    assert is_current(empty_database_url)
    engine = create_engine(empty_database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == []


def test_upgrading_twice_changes_nothing(empty_database_url):
    upgrade(empty_database_url)
    upgrade(empty_database_url)
    assert is_current(empty_database_url)
