"""Home KPIs and referral growth: indexes for per-day registrations' first investments, volume, incentive spend,
and the referrals qualified and confirmed in a range

Revision ID: 0017_kpi_indexes
Revises: 0016_cohort_indexes
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0017_kpi_indexes'
down_revision = '0016_cohort_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('investors', schema=None) as batch_op:
        batch_op.create_index('ix_investors_first_investment', ['first_investment_at'], unique=False)

    with op.batch_alter_table('investments', schema=None) as batch_op:
        batch_op.create_index('ix_investments_started_amount', ['started_at', 'amount_fen'], unique=False)

    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.create_index('ix_rewards_granted_cost', ['granted_at', 'cost_fen'], unique=False)

    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.create_index('ix_referrals_qualified_referrer', ['qualified_at', 'referrer_id'], unique=False)

    with op.batch_alter_table('referral_confirmations', schema=None) as batch_op:
        batch_op.create_index('ix_referral_confirmations_at_referrer', ['confirmed_at', 'referrer_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('referral_confirmations', schema=None) as batch_op:
        batch_op.drop_index('ix_referral_confirmations_at_referrer')

    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_index('ix_referrals_qualified_referrer')

    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.drop_index('ix_rewards_granted_cost')

    with op.batch_alter_table('investments', schema=None) as batch_op:
        batch_op.drop_index('ix_investments_started_amount')

    with op.batch_alter_table('investors', schema=None) as batch_op:
        batch_op.drop_index('ix_investors_first_investment')
