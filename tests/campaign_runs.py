"""Driving a campaign run by hand in a test: scheduled, started, selected and fulfilled chunk by chunk to the end."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import update

from campaigns import services
from campaigns.fulfilment import fulfil_due
from campaigns.models import Campaign
from campaigns.runner import select_chunk, task_campaign_run
from growth.db import get_db


def scheduled_campaign(app: Flask, document: dict[str, Any], now: datetime) -> int:
    """Create a campaign from `document` (three days before `now`) and put it straight into `scheduled`."""
    with get_db(app).session_scope(write=True) as s:
        campaign = services.create(document, session=s, actor_id=None, now=now - timedelta(days=3))
        s.execute(update(Campaign).where(Campaign.id == campaign.id).values(status="scheduled"))
        return campaign.id


def run_to_end(app: Flask, campaign_id: int, now: datetime, *, chunk: int, limit: int) -> None:
    """Start a run, select it `chunk` members a transaction, then fulfil `limit` at a time until nothing is left."""
    with get_db(app).session_scope(write=True) as s:
        task_campaign_run(s, now, campaign_id)
    for step in (lambda s: select_chunk(session=s, now=now, chunk=chunk),
                 lambda s: fulfil_due(session=s, app=app, now=now, limit=limit)):
        while True:
            with get_db(app).session_scope(write=True) as s:
                if not step(s):
                    break
