"""Incentive ledger: rewards, entries, budgets, uses, manual grant requests

Revision ID: 0006_rewards
Revises: 0005_wechat_qr
Create Date: 2026-12-03 16:53:29.117300
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import growth.db


revision = '0006_rewards'
down_revision = '0005_wechat_qr'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reward_budgets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_type', sa.String(length=16), nullable=False),
    sa.Column('owner_key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('max_grants', sa.Integer(), nullable=True),
    sa.Column('max_amount_fen', sa.BigInteger(), nullable=True),
    sa.Column('per_investor', sa.Integer(), nullable=True),
    sa.Column('used_grants', sa.Integer(), nullable=False),
    sa.Column('used_amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('created_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reward_budgets')),
    sa.UniqueConstraint('owner_type', 'owner_key', name=op.f('uq_reward_budgets_owner_type'))
    )
    op.create_table('reward_budget_uses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('budget_id', sa.Integer(), nullable=False),
    sa.Column('investor_id', sa.Integer(), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['budget_id'], ['reward_budgets.id'], name=op.f('fk_reward_budget_uses_budget_id_reward_budgets')),
    sa.ForeignKeyConstraint(['investor_id'], ['investors.id'], name=op.f('fk_reward_budget_uses_investor_id_investors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reward_budget_uses')),
    sa.UniqueConstraint('budget_id', 'investor_id', name=op.f('uq_reward_budget_uses_budget_id'))
    )
    with op.batch_alter_table('reward_budget_uses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reward_budget_uses_investor_id'), ['investor_id'], unique=False)

    op.create_table('rewards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('investor_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('budget_id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('amount_fen', sa.BigInteger(), nullable=True),
    sa.Column('annual_rate_bp', sa.Integer(), nullable=True),
    sa.Column('rate_bp', sa.Integer(), nullable=True),
    sa.Column('max_days', sa.Integer(), nullable=True),
    sa.Column('days', sa.Integer(), nullable=True),
    sa.Column('hold_days', sa.Integer(), nullable=True),
    sa.Column('principal_fen', sa.BigInteger(), nullable=True),
    sa.Column('min_investment_fen', sa.BigInteger(), nullable=True),
    sa.Column('max_investment_fen', sa.BigInteger(), nullable=True),
    sa.Column('min_term_days', sa.Integer(), nullable=True),
    sa.Column('valid_days', sa.Integer(), nullable=True),
    sa.Column('budget_fen', sa.BigInteger(), nullable=False),
    sa.Column('investment_id', sa.String(length=200), nullable=True),
    sa.Column('cost_fen', sa.BigInteger(), nullable=False),
    sa.Column('settled_at', growth.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('granted_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', growth.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('granted_by', sa.String(length=254), nullable=False),
    sa.Column('cause', sa.String(length=255), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['budget_id'], ['reward_budgets.id'], name=op.f('fk_rewards_budget_id_reward_budgets')),
    sa.ForeignKeyConstraint(['investor_id'], ['investors.id'], name=op.f('fk_rewards_investor_id_investors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rewards')),
    sa.UniqueConstraint('key', name=op.f('uq_rewards_key'))
    )
    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rewards_budget_id'), ['budget_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rewards_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rewards_investment_id'), ['investment_id'], unique=False)
        batch_op.create_index('ix_rewards_investor_status', ['investor_id', 'status'], unique=False)
        batch_op.create_index('ix_rewards_status_expires_at', ['status', 'expires_at'], unique=False)

    op.create_table('reward_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('reward_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=254), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('investment_id', sa.String(length=200), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['reward_id'], ['rewards.id'], name=op.f('fk_reward_entries_reward_id_rewards')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reward_entries')),
    sa.UniqueConstraint('key', name=op.f('uq_reward_entries_key'))
    )
    with op.batch_alter_table('reward_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reward_entries_reward_id'), ['reward_id'], unique=False)

    op.create_table('reward_grant_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('investor_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('terms', sa.JSON(), nullable=False),
    sa.Column('value_fen', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requested_by', sa.String(length=254), nullable=False),
    sa.Column('requested_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=254), nullable=True),
    sa.Column('decided_at', growth.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decision_note', sa.Text(), nullable=True),
    sa.Column('reward_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['investor_id'], ['investors.id'], name=op.f('fk_reward_grant_requests_investor_id_investors')),
    sa.ForeignKeyConstraint(['reward_id'], ['rewards.id'], name=op.f('fk_reward_grant_requests_reward_id_rewards')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reward_grant_requests')),
    sa.UniqueConstraint('nonce', name=op.f('uq_reward_grant_requests_nonce'))
    )
    with op.batch_alter_table('reward_grant_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reward_grant_requests_investor_id'), ['investor_id'], unique=False)

    op.create_table('reward_uses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('investment_id', sa.String(length=200), nullable=False),
    sa.Column('reward_ref', sa.String(length=200), nullable=False),
    sa.Column('reward_id', sa.Integer(), nullable=True),
    sa.Column('investor_id', sa.Integer(), nullable=False),
    sa.Column('occurred_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('valid', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=24), nullable=True),
    sa.ForeignKeyConstraint(['investor_id'], ['investors.id'], name=op.f('fk_reward_uses_investor_id_investors')),
    sa.ForeignKeyConstraint(['reward_id'], ['rewards.id'], name=op.f('fk_reward_uses_reward_id_rewards')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reward_uses')),
    sa.UniqueConstraint('investment_id', 'reward_ref', name=op.f('uq_reward_uses_investment_id'))
    )
    with op.batch_alter_table('reward_uses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reward_uses_investor_id'), ['investor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reward_uses_reward_id'), ['reward_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reward_uses_reward_ref'), ['reward_ref'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('reward_uses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reward_uses_reward_ref'))
        batch_op.drop_index(batch_op.f('ix_reward_uses_reward_id'))
        batch_op.drop_index(batch_op.f('ix_reward_uses_investor_id'))

    op.drop_table('reward_uses')
    with op.batch_alter_table('reward_grant_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reward_grant_requests_investor_id'))

    op.drop_table('reward_grant_requests')
    with op.batch_alter_table('reward_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reward_entries_reward_id'))

    op.drop_table('reward_entries')
    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.drop_index('ix_rewards_status_expires_at')
        batch_op.drop_index('ix_rewards_investor_status')
        batch_op.drop_index(batch_op.f('ix_rewards_investment_id'))
        batch_op.drop_index(batch_op.f('ix_rewards_campaign_id'))
        batch_op.drop_index(batch_op.f('ix_rewards_budget_id'))

    op.drop_table('rewards')
    with op.batch_alter_table('reward_budget_uses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reward_budget_uses_investor_id'))

    op.drop_table('reward_budget_uses')
    op.drop_table('reward_budgets')
