"""The outbox's sent_at and provider_id indexes hold only the rows that have them (partial indexes)

A queued message has neither a send time nor a provider id, and a campaign run queues hundreds of thousands;
every lookup by either column compares it with a value, which the database takes to mean NOT NULL, so the
partial indexes serve the same queries (bench/README.md, the fan-out).

Revision ID: 0023_partial_outbox_indexes
Revises: 0022_encrypted_profile
Create Date: 2026-12-04 21:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0023_partial_outbox_indexes'
down_revision = '0022_encrypted_profile'
branch_labels = None
depends_on = None

_COLUMNS = ('sent_at', 'provider_id')


def upgrade() -> None:
    for column in _COLUMNS:
        name = f'ix_outbox_messages_{column}'
        op.drop_index(name, table_name='outbox_messages')
        where = sa.text(f'{column} IS NOT NULL')
        op.create_index(name, 'outbox_messages', [column], unique=False, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for column in _COLUMNS:
        name = f'ix_outbox_messages_{column}'
        op.drop_index(name, table_name='outbox_messages')
        op.create_index(name, 'outbox_messages', [column], unique=False)
