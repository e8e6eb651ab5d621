"""Saved segments: audiences kept under a name, so a marketer can load one into another campaign's editor.

A saved segment is a copy: loading it fills the editor's builder, and the campaign keeps its own audience
(editing the saved one later changes no campaign). Saving under a name that exists replaces that audience.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.editor import parse_audience
from campaigns.models import SavedSegment
from growth.audit.services import record
from growth.errors import Invalid, NotFound, Problem

MAX_NAME = 100
MAX_SEGMENTS = 500  # what the editor lists; far more than a team keeps


def listing(*, session: Session) -> Sequence[SavedSegment]:
    """Return the saved segments by name."""
    return session.scalars(select(SavedSegment).order_by(SavedSegment.name).limit(MAX_SEGMENTS)).all()


def as_json(segment: SavedSegment) -> dict[str, Any]:
    """Return a saved segment as the editor reads it."""
    return {"id": segment.id, "name": segment.name, "audience": segment.audience}


def save(name: object, audience: object, *, session: Session, actor_id: int | None, now: datetime) -> SavedSegment:
    """Save an audience under a name (replacing the audience of a segment with that name)."""
    clean = name.strip() if isinstance(name, str) else ""
    if not clean:
        raise Invalid([Problem("name", "missing", _l("请填写分群名称"))])
    if len(clean) > MAX_NAME:
        raise Invalid([Problem("name", "too_long", _l("分群名称太长（最多 %(n)s 字）", n=MAX_NAME))])
    parsed = parse_audience(audience)
    document = parsed.model_dump(mode="json", exclude_none=True)
    segment = session.scalar(select(SavedSegment).where(SavedSegment.name == clean))
    action = "campaign.segment_saved"
    if segment is None:
        segment = SavedSegment(name=clean, audience=document, created_by=actor_id, created_at=now, updated_at=now)
        session.add(segment)
    else:
        segment.audience, segment.updated_at = document, now
        action = "campaign.segment_replaced"
    session.flush()
    record(action, session=session, target_type="saved_segment", target_id=segment.id,
           details={"name": clean, "conditions": len(parsed.all)}, actor_id=actor_id)
    return segment


def delete(segment_id: int, *, session: Session, actor_id: int | None) -> None:
    """Delete a saved segment (campaigns that loaded it keep their own copy); raise NotFound."""
    segment = session.get(SavedSegment, segment_id)
    if segment is None:
        raise NotFound(_l("没有这个分群"))
    record("campaign.segment_deleted", session=session, target_type="saved_segment", target_id=segment.id,
           details={"name": segment.name}, actor_id=actor_id)
    session.delete(segment)
    session.flush()
