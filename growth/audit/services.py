"""Writing and reading the audit log."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from growth.audit.models import AuditEntry


def record(
    action: str,
    *,
    session: Session,
    target_type: str | None = None,
    target_id: object = None,
    details: dict[str, Any] | None = None,
    actor_id: int | None = None,
    actor: str | None = None,
) -> AuditEntry:
    """Append an audit entry; actor and origin default to the current request's."""
    ip = ua = None
    if has_request_context():
        ip = request.remote_addr
        ua = (request.user_agent.string or "")[:255]
        if actor_id is None and actor is None and current_user and current_user.is_authenticated:
            actor_id, actor = current_user.id, current_user.email
    entry = AuditEntry(
        action=action,
        actor_id=actor_id,
        actor=actor or "system",
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        ip=ip,
        user_agent=ua,
        details=details or {},
    )
    session.add(entry)
    session.flush()
    return entry


def list_entries(
    *, session: Session, action: str | None = None, actor: str | None = None, page: int = 1, per_page: int = 50
) -> tuple[list[AuditEntry], int]:
    """Return one page of audit entries, newest first, and the total count."""
    query = select(AuditEntry)
    if action:
        query = query.where(AuditEntry.action.startswith(action))
    if actor:
        query = query.where(AuditEntry.actor.contains(actor.strip().lower()))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(AuditEntry.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ).all()
    return list(rows), total
