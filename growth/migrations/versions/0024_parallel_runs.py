"""A run's audience in claimed chunks (campaign_run_chunks); no foreign keys on the rows a run writes by the thousand

Several runner threads fulfil one run's chunks at once, each chunk in its own transaction. The members,
rewards, budget counts and messages a chunk writes point at one campaign, one run and one budget, which the
chunk's code reads (the budget: updates) itself, and at investors it has just read; campaigns, budgets and
investors are never deleted (erasure anonymises an investor in place). Each per-row check was a lookup and
a row lock on the parent, about a third of a run's time, and two threads share-locked the one campaign, run
and budget from both (bench/README.md, the fan-out). Ledger entries keep theirs to their reward.

Revision ID: 0024_parallel_runs
Revises: 0023_partial_outbox_indexes
Create Date: 2026-12-05 00:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0024_parallel_runs'
down_revision = '0023_partial_outbox_indexes'
branch_labels = None
depends_on = None

# (table, column, parent table, ondelete) of the foreign keys dropped
_DROPPED = (
    ('campaign_members', 'campaign_id', 'campaigns', 'CASCADE'),
    ('campaign_members', 'run_id', 'campaign_runs', None),
    ('rewards', 'budget_id', 'reward_budgets', None),
    ('reward_budget_uses', 'budget_id', 'reward_budgets', None),
    ('campaign_members', 'investor_id', 'investors', None),
    ('rewards', 'investor_id', 'investors', None),
    ('reward_budget_uses', 'investor_id', 'investors', None),
    ('outbox_messages', 'investor_id', 'investors', None),
)


def upgrade() -> None:
    op.create_table(
        'campaign_run_chunks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('after_investor_id', sa.BigInteger(), nullable=False),
        sa.Column('through_investor_id', sa.BigInteger(), nullable=False),
        sa.Column('selected', sa.Integer(), nullable=False),
        sa.Column('done', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['campaign_runs.id'], name=op.f('fk_campaign_run_chunks_run_id_campaign_runs'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_run_chunks')),
    )
    op.create_index('ix_campaign_run_chunks_waiting', 'campaign_run_chunks', ['run_id', 'done'], unique=False)
    for table, column, parent, _ondelete in _DROPPED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f'fk_{table}_{column}_{parent}', type_='foreignkey')


def downgrade() -> None:
    for table, column, parent, ondelete in _DROPPED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(f'fk_{table}_{column}_{parent}', parent, [column], ['id'], ondelete=ondelete)
    op.drop_index('ix_campaign_run_chunks_waiting', table_name='campaign_run_chunks')
    op.drop_table('campaign_run_chunks')
