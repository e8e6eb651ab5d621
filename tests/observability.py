"""Helpers for the health, metrics and log tests: stamping the schema's revision, scraping /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from growth.db import get_db
from growth.migrate import alembic_config


@contextmanager
def stamped(app: Flask, revision: str = "head") -> Iterator[None]:
    """Mark the test database (made by create_all) as migrated to `revision`; forget it afterwards.

    The PostgreSQL test database outlives the test and its truncation knows only the models' tables.
    """
    command.stamp(alembic_config(app.config["DATABASE_URL"]), revision, purge=True)
    try:
        yield
    finally:
        with get_db(app).engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


def scrape(client: Any, **kw: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics, parse it with prometheus_client's parser; return {(sample name, sorted labels): value}."""
    response = client.get("/metrics", **kw)
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float | None:
    """Return one sample's value (None when the scrape has no such sample)."""
    return samples.get((name, tuple(sorted(labels.items()))))
