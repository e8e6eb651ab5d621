"""The dashboards' scheduled work: keeping the daily cohort rollup fresh (dashboards.rollup)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from dashboards import rollup

log = logging.getLogger(__name__)


def task_refresh(session: Session, now: datetime) -> None:
    """Scheduled task: rebuild the registration days the processor marked, or take a full build's next step."""
    days = rollup.refresh(session=session)
    if days:
        log.info("dashboards: %d registration days of the cohort rollup rebuilt", days)
