"""CRM: messages agents send to investors from the CRM (one per send form)

Revision ID: 0014_crm_messages
Revises: 0013_investor_360
Create Date: 2026-12-04 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import growth.db


revision = '0014_crm_messages'
down_revision = '0013_investor_360'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('crm_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('investor_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('template_id', sa.Integer(), nullable=True),
    sa.Column('template_name', sa.String(length=100), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('message_class', sa.String(length=16), nullable=False),
    sa.Column('outbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('form_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['staff_users.id'], name=op.f('fk_crm_messages_agent_id_staff_users')),
    sa.ForeignKeyConstraint(['investor_id'], ['investors.id'], name=op.f('fk_crm_messages_investor_id_investors')),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox_messages.id'],
                            name=op.f('fk_crm_messages_outbox_id_outbox_messages')),
    sa.ForeignKeyConstraint(['task_id'], ['crm_tasks.id'], name=op.f('fk_crm_messages_task_id_crm_tasks')),
    sa.ForeignKeyConstraint(['template_id'], ['message_templates.id'],
                            name=op.f('fk_crm_messages_template_id_message_templates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_messages')),
    # A double submit of one send form finds the first send: one message per form token.
    sa.UniqueConstraint('form_token', name=op.f('uq_crm_messages_form_token'))
    )
    with op.batch_alter_table('crm_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crm_messages_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index('ix_crm_messages_investor_created', ['investor_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('crm_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_crm_messages_investor_created')
        batch_op.drop_index(batch_op.f('ix_crm_messages_agent_id'))

    op.drop_table('crm_messages')
