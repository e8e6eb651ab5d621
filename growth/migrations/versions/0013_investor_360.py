"""Investor 360: indexes for the timeline (campaign entries and fund movements of one investor, newest first)

Revision ID: 0013_investor_360
Revises: 0012_saved_searches
Create Date: 2026-12-05 10:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0013_investor_360'
down_revision = '0012_saved_searches'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaign_members', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_members_investor_entered', ['investor_id', 'entered_at'], unique=False)

    with op.batch_alter_table('funds_movements', schema=None) as batch_op:
        batch_op.create_index('ix_funds_movements_investor_occurred', ['investor_id', 'occurred_at'], unique=False)
        batch_op.drop_index(batch_op.f('ix_funds_movements_investor_id'))


def downgrade() -> None:
    with op.batch_alter_table('funds_movements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_funds_movements_investor_id'), ['investor_id'], unique=False)
        batch_op.drop_index('ix_funds_movements_investor_occurred')

    with op.batch_alter_table('campaign_members', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_members_investor_entered')
