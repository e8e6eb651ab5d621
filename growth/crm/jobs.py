"""The CRM's scheduled job: make the follow-up tasks the rules call for, release and assign the pool.

The elected scheduler runs `task_follow_up` (system job "crm-follow-up") every `CRM_JOB_SECONDS` with the
current time. Safe to run twice and on two workers at once: the tasks' unique keys (cause, and one open
task per investor and reason) let each task in once, and assignment reads the pool inside the same
transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Flask, current_app
from sqlalchemy.orm import Session

from growth.crm import services
from growth.crm.rules import CrmSettings

log = logging.getLogger("growth.crm.jobs")
DEFAULTS = "growth.crm.defaults"  # app.extensions: the configured CRM settings


def defaults_of(app: Flask) -> CrmSettings:
    """Return the CRM's configured settings (built by the composition root)."""
    settings: CrmSettings = app.extensions[DEFAULTS]
    return settings


def follow_up(*, session: Session, now: datetime, defaults: CrmSettings) -> tuple[int, int, int]:
    """Run the rules, put inactive agents' tasks back in the pool and assign it; return (made, released, assigned)."""
    settings = services.current_settings(session=session, defaults=defaults)
    made = services.create_rule_tasks(session=session, now=now, settings=settings)
    released = services.release_inactive(session=session)
    assigned = services.assign_pool(session=session, now=now, settings=settings)
    return made, released, assigned


def task_follow_up(session: Session, now: datetime) -> None:
    """Scheduled task: the follow-up rules and assignment at `now`, with the running app's CRM settings."""
    made, released, assigned = follow_up(session=session, now=now, defaults=defaults_of(current_app))
    if made or released or assigned:
        log.info("crm: %d tasks made, %d released to the pool, %d assigned", made, released, assigned)
