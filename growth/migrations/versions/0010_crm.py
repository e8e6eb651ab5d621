"""CRM: follow-up tasks, call logs, notes, investor owners and the CRM settings page

Revision ID: 0010_crm
Revises: 0009_saved_segments
Create Date: 2026-12-03 23:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import growth.db


revision = '0010_crm'
down_revision = '0009_saved_segments'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('crm_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=500), nullable=False),
    sa.Column('updated_by', sa.String(length=254), nullable=False),
    sa.Column('updated_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_crm_settings'))
    )
    op.create_table('crm_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('investor_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['staff_users.id'], name=op.f('fk_crm_notes_author_id_staff_users')),
    sa.ForeignKeyConstraint(['investor_id'], ['investors.id'], name=op.f('fk_crm_notes_investor_id_investors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_notes'))
    )
    with op.batch_alter_table('crm_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crm_notes_investor_id'), ['investor_id'], unique=False)

    op.create_table('crm_owners',
    sa.Column('investor_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('since', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['staff_users.id'], name=op.f('fk_crm_owners_agent_id_staff_users')),
    sa.ForeignKeyConstraint(['investor_id'], ['investors.id'], name=op.f('fk_crm_owners_investor_id_investors')),
    sa.PrimaryKeyConstraint('investor_id', name=op.f('pk_crm_owners'))
    )
    with op.batch_alter_table('crm_owners', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crm_owners_agent_id'), ['agent_id'], unique=False)

    op.create_table('crm_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('investor_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('assigned_at', growth.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('due_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', growth.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.Integer(), nullable=True),
    sa.Column('source_key', sa.String(length=64), nullable=True),
    sa.Column('cause_key', sa.String(length=200), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['assignee_id'], ['staff_users.id'], name=op.f('fk_crm_tasks_assignee_id_staff_users')),
    sa.ForeignKeyConstraint(['closed_by'], ['staff_users.id'], name=op.f('fk_crm_tasks_closed_by_staff_users')),
    sa.ForeignKeyConstraint(['investor_id'], ['investors.id'], name=op.f('fk_crm_tasks_investor_id_investors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_tasks')),
    # Never two tasks for one cause; one open task per investor and reason (source_key is NULL once closed).
    sa.UniqueConstraint('cause_key', name=op.f('uq_crm_tasks_cause_key')),
    sa.UniqueConstraint('source_key', name=op.f('uq_crm_tasks_source_key'))
    )
    with op.batch_alter_table('crm_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_crm_tasks_assignee_status_due', ['assignee_id', 'status', 'due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_crm_tasks_investor_id'), ['investor_id'], unique=False)
        batch_op.create_index('ix_crm_tasks_status_due', ['status', 'due_at'], unique=False)

    op.create_table('crm_calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('investor_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('next_follow_up_at', growth.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['staff_users.id'], name=op.f('fk_crm_calls_agent_id_staff_users')),
    sa.ForeignKeyConstraint(['investor_id'], ['investors.id'], name=op.f('fk_crm_calls_investor_id_investors')),
    sa.ForeignKeyConstraint(['task_id'], ['crm_tasks.id'], name=op.f('fk_crm_calls_task_id_crm_tasks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_calls'))
    )
    with op.batch_alter_table('crm_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crm_calls_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index('ix_crm_calls_investor_outcome', ['investor_id', 'outcome'], unique=False)
        batch_op.create_index(batch_op.f('ix_crm_calls_task_id'), ['task_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('crm_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_crm_calls_task_id'))
        batch_op.drop_index('ix_crm_calls_investor_outcome')
        batch_op.drop_index(batch_op.f('ix_crm_calls_agent_id'))

    op.drop_table('crm_calls')
    with op.batch_alter_table('crm_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_crm_tasks_status_due')
        batch_op.drop_index(batch_op.f('ix_crm_tasks_investor_id'))
        batch_op.drop_index('ix_crm_tasks_assignee_status_due')

    op.drop_table('crm_tasks')
    with op.batch_alter_table('crm_owners', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_crm_owners_agent_id'))

    op.drop_table('crm_owners')
    with op.batch_alter_table('crm_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_crm_notes_investor_id'))

    op.drop_table('crm_notes')
    op.drop_table('crm_settings')
