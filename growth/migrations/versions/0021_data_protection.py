"""Data protection: investors.erased_at (an erasure survives a replay), and the audit log refused UPDATE and DELETE
by the database itself

Revision ID: 0021_data_protection
Revises: 0020_observability
Create Date: 2026-12-04 15:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from growth.db import UTCDateTime

revision = '0021_data_protection'
down_revision = '0020_observability'
branch_labels = None
depends_on = None

# The same statements as growth/audit/models.py attaches to the table (copied: a migration must not change
# when the models do).
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger AS $$
BEGIN
    -- Deleting a staff member sets actor_id to NULL (ON DELETE SET NULL): that, and only that, may change.
    IF TG_OP = 'UPDATE' AND NEW.actor_id IS NULL
       AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit entries are append-only' USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql
"""
_PG_TRIGGER = """
CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()
"""
_SQLITE_UPDATE = """
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
WHEN NOT (NEW.actor_id IS NULL AND NEW.id IS OLD.id AND NEW."at" IS OLD."at" AND NEW.actor IS OLD.actor
          AND NEW.action IS OLD.action AND NEW.target_type IS OLD.target_type AND NEW.target_id IS OLD.target_id
          AND NEW.ip IS OLD.ip AND NEW.user_agent IS OLD.user_agent AND NEW.details IS OLD.details)
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only (UPDATE refused)'); END
"""
_SQLITE_DELETE = """
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only (DELETE refused)'); END
"""


def upgrade() -> None:
    op.add_column('investors', sa.Column('erased_at', UTCDateTime(), nullable=True))
    op.create_index('ix_investors_erased', 'investors', ['erased_at'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        op.execute(_SQLITE_UPDATE)
        op.execute(_SQLITE_DELETE)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS audit_entries_append_only ON audit_entries')
        op.execute('DROP FUNCTION IF EXISTS audit_entries_append_only()')
    else:
        op.execute('DROP TRIGGER IF EXISTS audit_entries_no_update')
        op.execute('DROP TRIGGER IF EXISTS audit_entries_no_delete')
    op.drop_index('ix_investors_erased', table_name='investors')
    op.drop_column('investors', 'erased_at')
