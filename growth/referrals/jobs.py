"""The referral program's scheduled job: confirm the referrals whose hold has ended.

Confirmation is driven by time, not by an event, so the elected scheduler runs `task_confirm` (a system
job the composition root registers as "referral-confirmations") with the current time every
`REFERRAL_JOB_SECONDS`. Safe to run twice and on several workers at once: the feed's unique
constraint on the referee lets one confirmation in, and each run holds the processor's cursor lock.
"""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Flask, current_app
from sqlalchemy.orm import Session

from growth.referrals import services
from growth.referrals.records import lock_records
from growth.referrals.rules import ProgramSettings

log = logging.getLogger("growth.referrals.jobs")
DEFAULTS = "growth.referrals.defaults"  # app.extensions: the configured program settings


def defaults_of(app: Flask) -> ProgramSettings:
    """Return the program's configured settings (built by the composition root)."""
    settings: ProgramSettings = app.extensions[DEFAULTS]
    return settings


def confirm_due_referrals(*, session: Session, now: datetime, defaults: ProgramSettings) -> list[int]:
    """Confirm every referral due at `now`, in the caller's transaction; return the new feed ids."""
    lock_records(session)
    settings = services.current_settings(session=session, defaults=defaults)
    return services.confirm_due(session=session, now=now, settings=settings)


def task_confirm(session: Session, now: datetime) -> None:
    """Scheduled task: confirm the referrals due at `now` with the running app's program settings."""
    confirmed = confirm_due_referrals(session=session, now=now, defaults=defaults_of(current_app))
    if confirmed:
        log.info("confirmed %d referrals", len(confirmed))
