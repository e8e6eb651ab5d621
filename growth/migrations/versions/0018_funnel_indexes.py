"""Funnel: one covering index for a registration cohort's milestones, channel and referrer; clicks' registrations

Revision ID: 0018_funnel_indexes
Revises: 0017_kpi_indexes
Create Date: 2026-12-04 12:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0018_funnel_indexes'
down_revision = '0017_kpi_indexes'
branch_labels = None
depends_on = None

FUNNEL_COLUMNS = ['registered_at', 'channel_id', 'first_investment_at', 'kyc_verified_at', 'card_bound_at',
                  'first_deposit_at', 'repeat_investment_at', 'referrer_id']


def upgrade() -> None:
    with op.batch_alter_table('investors', schema=None) as batch_op:
        # Starts with the economics index's columns, so it serves both; the narrower one goes.
        batch_op.create_index('ix_investors_funnel', FUNNEL_COLUMNS, unique=False)
        batch_op.drop_index('ix_investors_registered_channel')
        batch_op.create_index('ix_investors_click_id', ['click_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('investors', schema=None) as batch_op:
        batch_op.drop_index('ix_investors_click_id')
        batch_op.create_index('ix_investors_registered_channel', ['registered_at', 'channel_id', 'first_investment_at'],
                              unique=False)
        batch_op.drop_index('ix_investors_funnel')
