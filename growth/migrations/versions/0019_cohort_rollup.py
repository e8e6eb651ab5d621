"""Dashboards: the daily cohort rollup, its marked days and its state

Revision ID: 0019_cohort_rollup
Revises: 0018_funnel_indexes
Create Date: 2026-12-04 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from growth.db import UTCDateTime

revision = '0019_cohort_rollup'
down_revision = '0018_funnel_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No state row: the worker's first run builds every registration day, a step at a time.
    op.create_table(
        'dashboard_cohort_days',
        sa.Column('window_days', sa.SmallInteger(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('channel_id', sa.Integer(), nullable=False),
        sa.Column('referred', sa.Boolean(), nullable=False),
        sa.Column('campaign', sa.Integer(), nullable=False),
        sa.Column('registrations', sa.Integer(), nullable=False),
        *(sa.Column(f'step{k}', sa.Integer(), nullable=False) for k in range(1, 6)),
        sa.Column('funnel_first_fen', sa.BigInteger(), nullable=False),
        sa.Column('funnel_first_fen_days', sa.BigInteger(), nullable=False),
        sa.Column('first_investors', sa.Integer(), nullable=False),
        sa.Column('first_investment_fen', sa.BigInteger(), nullable=False),
        sa.Column('amount_term_fen_days', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('window_days', 'day', 'channel_id', 'referred', 'campaign',
                                name=op.f('pk_dashboard_cohort_days')),
    )
    op.create_table(
        'dashboard_cohort_dirty_days',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('token', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('day', name=op.f('pk_dashboard_cohort_dirty_days')),
    )
    op.create_table(
        'dashboard_rollup_state',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('built', sa.Boolean(), nullable=False),
        sa.Column('next_day', sa.Date(), nullable=True),
        sa.Column('members_after', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_dashboard_rollup_state')),
    )


def downgrade() -> None:
    op.drop_table('dashboard_rollup_state')
    op.drop_table('dashboard_cohort_dirty_days')
    op.drop_table('dashboard_cohort_days')
