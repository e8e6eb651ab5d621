"""Test harness: every database test runs on SQLite and on PostgreSQL.

`GROWTH_TEST_DATABASES=sqlite` (or `postgresql`) narrows the run; the default is both.
PostgreSQL tests use one database per xdist worker, created once and truncated after each test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher, profiles
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.orm import Session

from growth import crypto
from growth.app import create_app
from growth.auth import services as auth_services
from growth.config import TestConfig
from growth.db import Base, get_db
from growth.models import import_all_models
from tests.factories import PASSWORD, make_user

PG_ADMIN_URL = os.environ.get("GROWTH_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
KINDS = [k for k in os.environ.get("GROWTH_TEST_DATABASES", "sqlite,postgresql").split(",") if k]

import_all_models()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_kind" in metafunc.fixturenames:
        kinds = list(KINDS)
        if metafunc.definition.get_closest_marker("postgres_only"):
            kinds = [k for k in kinds if k == "postgresql"]
        if metafunc.definition.get_closest_marker("sqlite_only"):
            kinds = [k for k in kinds if k == "sqlite"]
        metafunc.parametrize("db_kind", kinds, indirect=True)


@pytest.fixture(autouse=True)
def data_keys() -> None:
    """Every test starts with the tests' data key (growth.crypto's ring is process-wide; a test that builds an app
    with other keys, or runs a command that does, must not leave them to the next test)."""
    crypto.configure(crypto.parse_keys(TestConfig.DATA_KEYS))


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> Iterator[None]:
    """Hash staff passwords with Argon2id at its cheapest in this process: the product's parameters cost
    ~0.2 s per hash and per check, and most tests sign someone in. Passwords are still checked for real;
    processes the tests start (`growth serve`, the CLI) keep the product's parameters."""
    cheap = PasswordHasher.from_parameters(profiles.CHEAPEST)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth_services, "_hasher", cheap)
        patch.setattr(auth_services, "_DUMMY_HASH", cheap.hash("not-a-real-password"))
        yield


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: runs on SQLite only")


@pytest.fixture
def db_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def pg_url(worker_id: str, testrun_uid: str) -> Iterator[str]:
    """A PostgreSQL database of this test run and xdist worker, with the schema created once."""
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/growth_test_{testrun_uid[:10]}_{worker_id}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = url.rsplit("/", 1)[1]
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        # A test database need not survive a power cut: commits skip the WAL flush (minutes of CI).
        conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the schema, made once per worker: each test copies it (creating costs ~0.3 s)."""
    path = tmp_path_factory.mktemp("schema") / "schema.db"
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    return path


@pytest.fixture
def database_url(db_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if db_kind == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(request.getfixturevalue("sqlite_schema"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("pg_url")
    yield url
    engine = create_engine(url)
    with engine.begin() as conn:
        _empty(conn)
    engine.dispose()


def _empty(conn: Connection) -> None:
    """Empty every table a test wrote to and restart every sequence it used (ids start at 1 again).

    Only the tables that hold rows are truncated: a TRUNCATE of all 48 tables cost ~0.25 s per test,
    minutes over the suite; finding the written ones costs ~0.01 s.
    """
    names = [t.name for t in Base.metadata.sorted_tables]
    written = " UNION ALL ".join(f"SELECT '{n}' WHERE EXISTS (SELECT 1 FROM \"{n}\")" for n in names)
    dirty = [row[0] for row in conn.execute(text(written))]
    if dirty:
        quoted = ", ".join(f'"{n}"' for n in dirty)
        conn.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
    used = [row[0] for row in conn.execute(text(
        "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) FROM pg_sequences "
        "WHERE last_value IS NOT NULL"))]
    if used:  # a rolled-back insert advances a sequence and leaves its table empty
        conn.execute(text("SELECT " + ", ".join(f"setval('{name}', 1, false)" for name in used)))


@pytest.fixture
def app_config() -> dict:
    """Per-test overrides of the test configuration."""
    return {}


@pytest.fixture
def app(database_url: str, tmp_path: Path, app_config: dict) -> Iterator[Flask]:
    os.environ["GROWTH_INSTANCE_PATH"] = str(tmp_path / "instance")
    config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    config.update(DATABASE_URL=database_url, **app_config)
    application = create_app(config)
    yield application
    get_db(application).dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    """A session for arranging and inspecting data; commit explicitly when the app must see it."""
    s = get_db(app).sessionmaker()
    yield s
    s.rollback()
    s.close()


@pytest.fixture
def login(app: Flask, client: FlaskClient):
    """Sign the test client in as a new staff member of a role; return the user."""

    def _login(role: str = "admin", email: str | None = None):
        with get_db(app).session_scope(write=True) as s:
            user = make_user(s, role=role, email=email)
        response = client.post("/login", data={"email": user.email, "password": PASSWORD})
        assert response.status_code == 302, response.get_data(as_text=True)
        return user

    return _login
