"""Cohorts: a covering index for re-investment at maturity (maturities by month, their investor and principal)

Revision ID: 0016_cohort_indexes
Revises: 0015_channel_economics
Create Date: 2026-12-04 11:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0016_cohort_indexes'
down_revision = '0015_channel_economics'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('investments', schema=None) as batch_op:
        batch_op.create_index('ix_investments_matured', ['matured_at', 'investor_id', 'matured_principal_fen'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('investments', schema=None) as batch_op:
        batch_op.drop_index('ix_investments_matured')
