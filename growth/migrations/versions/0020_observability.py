"""Health and metrics: worker heartbeats, job runs, outbox indexes for the scrape

Revision ID: 0020_observability
Revises: 0019_cohort_rollup
Create Date: 2026-12-04 15:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from growth.db import UTCDateTime

revision = '0020_observability'
down_revision = '0019_cohort_rollup'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'worker_heartbeats',
        sa.Column('holder', sa.String(length=128), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('workers', sa.JSON(), nullable=False),
        sa.Column('started_at', UTCDateTime(), nullable=False),
        sa.Column('seen_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('holder', name=op.f('pk_worker_heartbeats')),
    )
    op.create_index(op.f('ix_worker_heartbeats_seen_at'), 'worker_heartbeats', ['seen_at'], unique=False)
    op.create_table(
        'job_runs',
        sa.Column('job_id', sa.String(length=128), nullable=False),
        sa.Column('runs', sa.Integer(), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('last_started_at', UTCDateTime(), nullable=True),
        sa.Column('last_finished_at', UTCDateTime(), nullable=True),
        sa.Column('last_success_at', UTCDateTime(), nullable=True),
        sa.Column('last_failure_at', UTCDateTime(), nullable=True),
        sa.Column('last_duration_seconds', sa.Float(), nullable=True),
        sa.Column('last_error', sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint('job_id', name=op.f('pk_job_runs')),
    )
    # On a large PostgreSQL outbox these take a while (plain CREATE INDEX: writes to the table wait meanwhile).
    op.create_index('ix_outbox_messages_status_channel', 'outbox_messages', ['status', 'channel'], unique=False)
    op.create_index('ix_outbox_messages_sent_at', 'outbox_messages', ['sent_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_messages_sent_at', table_name='outbox_messages')
    op.drop_index('ix_outbox_messages_status_channel', table_name='outbox_messages')
    op.drop_table('job_runs')
    op.drop_index(op.f('ix_worker_heartbeats_seen_at'), table_name='worker_heartbeats')
    op.drop_table('worker_heartbeats')
