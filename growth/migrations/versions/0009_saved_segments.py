"""Saved audience segments for the campaign editor

Revision ID: 0009_saved_segments
Revises: 0008_campaigns
Create Date: 2026-12-03 17:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import growth.db


revision = '0009_saved_segments'
down_revision = '0008_campaigns'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('campaign_saved_segments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('audience', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['staff_users.id'], name=op.f('fk_campaign_saved_segments_created_by_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_saved_segments')),
    sa.UniqueConstraint('name', name=op.f('uq_campaign_saved_segments_name'))
    )


def downgrade() -> None:
    op.drop_table('campaign_saved_segments')
