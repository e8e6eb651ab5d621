"""Investor search keys: the phone's last 4 digits, lower-cased name and email (generated columns, indexed)

The search box matches these on their indexes instead of scanning every investor (issue 11: search on a
million investors in ≤ 50 ms). They are generated columns, so adding them fills them for every existing
row (the backfill) and every later write, a projection replay included, keeps them right. On PostgreSQL
the platform user id and the keys compare byte by byte (collation "C"), so a prefix is one index range.

Revision ID: 0011_investor_search_keys
Revises: 0010_crm
Create Date: 2026-12-04 02:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0011_investor_search_keys'
down_revision = '0010_crm'
branch_labels = None
depends_on = None

# The same expressions as growth/investors/models.py (a migration never imports the models it migrates).
PHONE_LAST4_SQL = "substr(phone, length(phone) - 3, 4)"
NAME_KEY_SQL = "lower(name)"
EMAIL_KEY_SQL = "lower(email)"


def _bytewise(length: int) -> sa.String:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    # SQLite adds a generated column to a table only as VIRTUAL; PostgreSQL (before 18) only as STORED.
    stored = True if postgresql else None
    if postgresql:
        op.alter_column('investors', 'platform_user_id', type_=sa.String(200, collation="C"),
                        existing_type=sa.String(200), existing_nullable=False)
    # Plain ADD COLUMN, not a batch copy of the table: filling them is the database's work.
    op.add_column('investors', sa.Column('phone_last4', sa.String(length=4), sa.Computed(PHONE_LAST4_SQL, persisted=stored),
                                         nullable=True))
    op.add_column('investors', sa.Column('name_key', _bytewise(100), sa.Computed(NAME_KEY_SQL, persisted=stored), nullable=True))
    op.add_column('investors', sa.Column('email_key', _bytewise(254), sa.Computed(EMAIL_KEY_SQL, persisted=stored), nullable=True))
    op.create_index('ix_investors_phone_last4', 'investors', ['phone_last4'], unique=False)
    op.create_index('ix_investors_name_key', 'investors', ['name_key'], unique=False)
    op.create_index('ix_investors_email_key', 'investors', ['email_key'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_investors_email_key', table_name='investors')
    op.drop_index('ix_investors_name_key', table_name='investors')
    op.drop_index('ix_investors_phone_last4', table_name='investors')
    with op.batch_alter_table('investors', schema=None) as batch_op:
        batch_op.drop_column('email_key')
        batch_op.drop_column('name_key')
        batch_op.drop_column('phone_last4')
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column('investors', 'platform_user_id', type_=sa.String(200), existing_type=sa.String(200),
                        existing_nullable=False)
