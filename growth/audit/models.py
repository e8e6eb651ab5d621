"""The append-only audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DDL, ForeignKey, String, event
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column

from growth.db import Base
from growth.timeutil import utcnow


class AuditEntry(Base):
    """Who did what, when, from where. Rows are never updated or deleted."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), index=True)
    actor: Mapped[str] = mapped_column(String(254), default="")  # email or "system", kept if the user goes
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(128))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AuditLogIsAppendOnly(RuntimeError):
    """Raised when code tries to change or delete an audit entry."""


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, _ctx: Any, _instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEntry):
            raise AuditLogIsAppendOnly("audit entries cannot be changed or deleted")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_audit_changes(state: ORMExecuteState) -> None:
    # Bulk UPDATE/DELETE statements skip the flush, so they are refused here.
    if (state.is_update or state.is_delete) and any(m.class_ is AuditEntry for m in state.all_mappers):
        raise AuditLogIsAppendOnly("audit entries cannot be changed or deleted")


# The database refuses changes too, so no code path (a raw statement, another tool using the app's role) can
# rewrite history. Migration 0021 creates the same triggers on an existing database; these make them with the
# table (new installs, the tests). Only one change passes: a deleted staff member's actor_id set to NULL by the
# foreign key (`ON DELETE SET NULL`); the entry keeps their email in `actor`.
_PG_FUNCTION = DDL("""
CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.actor_id IS NULL
       AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit entries are append-only' USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql
""")
_PG_TRIGGER = DDL("""
CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()
""")
_SQLITE_UPDATE = DDL("""
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
WHEN NOT (NEW.actor_id IS NULL AND NEW.id IS OLD.id AND NEW."at" IS OLD."at" AND NEW.actor IS OLD.actor
          AND NEW.action IS OLD.action AND NEW.target_type IS OLD.target_type AND NEW.target_id IS OLD.target_id
          AND NEW.ip IS OLD.ip AND NEW.user_agent IS OLD.user_agent AND NEW.details IS OLD.details)
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only (UPDATE refused)'); END
""")
_SQLITE_DELETE = DDL("""
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only (DELETE refused)'); END
""")
for _ddl, _dialect in ((_PG_FUNCTION, "postgresql"), (_PG_TRIGGER, "postgresql"), (_SQLITE_UPDATE, "sqlite"),
                       (_SQLITE_DELETE, "sqlite")):
    event.listen(AuditEntry.__table__, "after_create", _ddl.execute_if(dialect=_dialect))
