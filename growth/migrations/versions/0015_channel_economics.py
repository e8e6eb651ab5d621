"""Channel economics: covering indexes for a registration cohort's channels, investments, rewards and clicks

Revision ID: 0015_channel_economics
Revises: 0014_crm_messages
Create Date: 2026-12-06 10:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0015_channel_economics'
down_revision = '0014_crm_messages'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('investors', schema=None) as batch_op:
        batch_op.create_index('ix_investors_registered_channel', ['registered_at', 'channel_id', 'first_investment_at'],
                              unique=False)
        batch_op.drop_index('ix_investors_registered_at')

    with op.batch_alter_table('investments', schema=None) as batch_op:
        batch_op.create_index('ix_investments_investor_started',
                              ['investor_id', 'started_at', 'amount_fen', 'term_days', 'investment_id'], unique=False)
        batch_op.drop_index(batch_op.f('ix_investments_investor_id'))

    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.create_index('ix_rewards_investor_granted', ['investor_id', 'granted_at', 'cost_fen'], unique=False)

    with op.batch_alter_table('clicks', schema=None) as batch_op:
        batch_op.create_index('ix_clicks_at_channel', ['at', 'channel_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('clicks', schema=None) as batch_op:
        batch_op.drop_index('ix_clicks_at_channel')

    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.drop_index('ix_rewards_investor_granted')

    with op.batch_alter_table('investments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_investments_investor_id'), ['investor_id'], unique=False)
        batch_op.drop_index('ix_investments_investor_started')

    with op.batch_alter_table('investors', schema=None) as batch_op:
        batch_op.create_index('ix_investors_registered_at', ['registered_at'], unique=False)
        batch_op.drop_index('ix_investors_registered_channel')
