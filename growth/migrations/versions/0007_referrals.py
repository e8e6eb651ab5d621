"""referral program: settings, records, reviews, confirmation feed, share-link visits

Revision ID: 0007_referrals
Revises: 0006_rewards
Create Date: 2026-12-03 16:53:44.122596
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import growth.db


revision = '0007_referrals'
down_revision = '0006_rewards'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('referral_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=500), nullable=False),
    sa.Column('updated_by', sa.String(length=254), nullable=False),
    sa.Column('updated_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_referral_settings'))
    )
    op.create_table('referral_confirmations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('referee_id', sa.Integer(), nullable=False),
    sa.Column('referrer_id', sa.Integer(), nullable=False),
    sa.Column('confirmed_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('how', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['referee_id'], ['investors.id'], name=op.f('fk_referral_confirmations_referee_id_investors')),
    sa.ForeignKeyConstraint(['referrer_id'], ['investors.id'], name=op.f('fk_referral_confirmations_referrer_id_investors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referral_confirmations')),
    sa.UniqueConstraint('referee_id', name=op.f('uq_referral_confirmations_referee_id'))
    )
    with op.batch_alter_table('referral_confirmations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_referral_confirmations_referrer_id'), ['referrer_id'], unique=False)

    op.create_table('referral_reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('referee_id', sa.Integer(), nullable=False),
    sa.Column('referrer_id', sa.Integer(), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('decided_by', sa.String(length=254), nullable=False),
    sa.Column('decided_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['referee_id'], ['investors.id'], name=op.f('fk_referral_reviews_referee_id_investors')),
    sa.ForeignKeyConstraint(['referrer_id'], ['investors.id'], name=op.f('fk_referral_reviews_referrer_id_investors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referral_reviews')),
    sa.UniqueConstraint('referee_id', 'referrer_id', name=op.f('uq_referral_reviews_referee_id'))
    )
    op.create_table('referral_visits',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('referrer_id', sa.Integer(), nullable=False),
    sa.Column('at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('visitor', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['referrer_id'], ['investors.id'], name=op.f('fk_referral_visits_referrer_id_investors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referral_visits'))
    )
    with op.batch_alter_table('referral_visits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_referral_visits_at'), ['at'], unique=False)
        batch_op.create_index('ix_referral_visits_referrer_at', ['referrer_id', 'at'], unique=False)

    op.create_table('referrals',
    sa.Column('referee_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('referrer_id', sa.Integer(), nullable=False),
    sa.Column('registered_at', growth.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('window_ends_at', growth.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('first_investment_id', sa.String(length=200), nullable=True),
    sa.Column('first_investment_fen', sa.BigInteger(), nullable=True),
    sa.Column('first_investment_term_days', sa.Integer(), nullable=True),
    sa.Column('qualified_at', growth.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('hold_ends_at', growth.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('confirmed_at', growth.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('confirmed_how', sa.String(length=16), nullable=True),
    sa.Column('rejected_reason', sa.String(length=32), nullable=True),
    sa.Column('flags', sa.JSON(), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=True),
    sa.Column('decision_note', sa.Text(), nullable=True),
    sa.Column('decided_by', sa.String(length=254), nullable=True),
    sa.Column('decided_at', growth.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['referee_id'], ['investors.id'], name=op.f('fk_referrals_referee_id_investors')),
    sa.ForeignKeyConstraint(['referrer_id'], ['investors.id'], name=op.f('fk_referrals_referrer_id_investors')),
    sa.PrimaryKeyConstraint('referee_id', name=op.f('pk_referrals'))
    )
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_referrals_referrer_id'), ['referrer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_referrals_registered_at'), ['registered_at'], unique=False)
        batch_op.create_index('ix_referrals_status_hold', ['status', 'hold_ends_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_index('ix_referrals_status_hold')
        batch_op.drop_index(batch_op.f('ix_referrals_registered_at'))
        batch_op.drop_index(batch_op.f('ix_referrals_referrer_id'))

    op.drop_table('referrals')
    with op.batch_alter_table('referral_visits', schema=None) as batch_op:
        batch_op.drop_index('ix_referral_visits_referrer_at')
        batch_op.drop_index(batch_op.f('ix_referral_visits_at'))

    op.drop_table('referral_visits')
    op.drop_table('referral_reviews')
    with op.batch_alter_table('referral_confirmations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_referral_confirmations_referrer_id'))

    op.drop_table('referral_confirmations')
    op.drop_table('referral_settings')
