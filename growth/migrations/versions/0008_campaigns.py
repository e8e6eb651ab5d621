"""Campaigns, their life-cycle transitions, runs and members; the tags staff put on investors (for segments)

Revision ID: 0008_campaigns
Revises: 0007_referrals
Create Date: 2026-12-03 17:45:10.725820
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import growth.db


revision = '0008_campaigns'
down_revision = '0007_referrals'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('message_class', sa.String(length=16), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('paused_from', sa.String(length=20), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('submitted_by', sa.Integer(), nullable=True),
    sa.Column('approved_by', sa.Integer(), nullable=True),
    sa.Column('submitted_at', growth.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('approved_at', growth.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('rejection_reason', sa.Text(), nullable=True),
    sa.Column('created_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['approved_by'], ['staff_users.id'], name=op.f('fk_campaigns_approved_by_staff_users')),
    sa.ForeignKeyConstraint(['created_by'], ['staff_users.id'], name=op.f('fk_campaigns_created_by_staff_users')),
    sa.ForeignKeyConstraint(['submitted_by'], ['staff_users.id'], name=op.f('fk_campaigns_submitted_by_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index('ix_campaigns_status', ['status'], unique=False)

    op.create_table('campaign_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('scheduled_for', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('after_investor_id', sa.BigInteger(), nullable=False),
    sa.Column('selected', sa.Integer(), nullable=False),
    sa.Column('started_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', growth.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_runs_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_runs')),
    sa.UniqueConstraint('campaign_id', 'scheduled_for', name=op.f('uq_campaign_runs_campaign_id'))
    )
    op.create_table('campaign_transitions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=True),
    sa.Column('to_status', sa.String(length=20), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['staff_users.id'], name=op.f('fk_campaign_transitions_actor_id_staff_users')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_transitions_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_transitions'))
    )
    with op.batch_alter_table('campaign_transitions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_transitions_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('investor_tags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('investor_id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=50), nullable=False),
    sa.Column('created_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['staff_users.id'], name=op.f('fk_investor_tags_created_by_staff_users')),
    sa.ForeignKeyConstraint(['investor_id'], ['investors.id'], name=op.f('fk_investor_tags_investor_id_investors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_investor_tags')),
    sa.UniqueConstraint('investor_id', 'tag', name=op.f('uq_investor_tags_investor_id'))
    )
    with op.batch_alter_table('investor_tags', schema=None) as batch_op:
        batch_op.create_index('ix_investor_tags_tag', ['tag'], unique=False)

    op.create_table('campaign_members',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('investor_id', sa.Integer(), nullable=False),
    sa.Column('entry_key', sa.String(length=255), nullable=False),
    sa.Column('cause', sa.String(length=255), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('event_seq', sa.BigInteger(), nullable=True),
    sa.Column('investment_id', sa.String(length=200), nullable=True),
    sa.Column('holdout', sa.Boolean(), nullable=False),
    sa.Column('entered_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('rewards_granted', sa.Integer(), nullable=False),
    sa.Column('due_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('fulfilled_at', growth.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_members_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['investor_id'], ['investors.id'], name=op.f('fk_campaign_members_investor_id_investors')),
    sa.ForeignKeyConstraint(['run_id'], ['campaign_runs.id'], name=op.f('fk_campaign_members_run_id_campaign_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_members')),
    sa.UniqueConstraint('campaign_id', 'investor_id', 'entry_key', name=op.f('uq_campaign_members_campaign_id'))
    )
    with op.batch_alter_table('campaign_members', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_members_campaign_status', ['campaign_id', 'status'], unique=False)
        batch_op.create_index('ix_campaign_members_due', ['status', 'due_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('campaign_members', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_members_due')
        batch_op.drop_index('ix_campaign_members_campaign_status')

    op.drop_table('campaign_members')
    with op.batch_alter_table('investor_tags', schema=None) as batch_op:
        batch_op.drop_index('ix_investor_tags_tag')

    op.drop_table('investor_tags')
    with op.batch_alter_table('campaign_transitions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_transitions_campaign_id'))

    op.drop_table('campaign_transitions')
    op.drop_table('campaign_runs')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index('ix_campaigns_status')

    op.drop_table('campaigns')
