"""WeChat parametric QR codes by scene (an acquisition channel's code)

Revision ID: 0005_wechat_qr
Revises: 0004_outbox
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import growth.db


revision = '0005_wechat_qr'
down_revision = '0004_outbox'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('wechat_scene_qrcodes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scene', sa.String(length=64), nullable=False),
    sa.Column('ticket', sa.String(length=255), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('created_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wechat_scene_qrcodes')),
    sa.UniqueConstraint('scene', name=op.f('uq_wechat_scene_qrcodes_scene'))
    )


def downgrade() -> None:
    op.drop_table('wechat_scene_qrcodes')
