"""The referral program's background job: confirm the referrals whose hold has ended.

Confirmation is driven by time, not by an event, so a worker loop (registered by the composition
root as "referral-confirmations") runs `confirm_due` with the current time every
`REFERRAL_JOB_SECONDS`. Safe to run twice and on several workers at once: the feed's unique
constraint on the referee lets one confirmation in, and each run holds the processor's cursor lock.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from flask import Flask
from sqlalchemy.orm import Session

from growth.db import get_db
from growth.referrals import services
from growth.referrals.records import lock_records
from growth.referrals.rules import ProgramSettings
from growth.timeutil import utcnow

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


def run_confirmations(app: Flask, stop: threading.Event) -> None:
    """Background worker: confirm due referrals every REFERRAL_JOB_SECONDS until stopped."""
    db = get_db(app)
    every = float(app.config.get("REFERRAL_JOB_SECONDS", 60))
    defaults = defaults_of(app)
    while not stop.is_set():
        try:
            with db.session_scope(write=True) as session:
                confirmed = confirm_due_referrals(session=session, now=utcnow(), defaults=defaults)
            if confirmed:
                log.info("confirmed %d referrals", len(confirmed))
        except Exception:  # a database hiccup must not end the loop; the next run retries
            log.exception("confirming referrals failed")
        stop.wait(every)
