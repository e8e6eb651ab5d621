"""consent ledger and state in channels; investors.consent dropped

Revision ID: 0003_consent
Revises: 0002_auth
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

import growth.db

revision = '0003_consent'
down_revision = '0002_auth'
branch_labels = None
depends_on = None

PLATFORM_EVENT = "platform_event"


def upgrade() -> None:
    op.create_table('consent_statements',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('investor_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('occurred_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('event_id', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['investor_id'], ['investors.id'], name=op.f('fk_consent_statements_investor_id_investors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_statements')),
    sa.UniqueConstraint('event_id', name=op.f('uq_consent_statements_event_id'))
    )
    with op.batch_alter_table('consent_statements', schema=None) as batch_op:
        batch_op.create_index('ix_consent_statements_investor_channel', ['investor_id', 'channel'], unique=False)

    op.create_table('consent_states',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('investor_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('occurred_at', growth.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['investor_id'], ['investors.id'], name=op.f('fk_consent_states_investor_id_investors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_states')),
    sa.UniqueConstraint('investor_id', 'channel', name=op.f('uq_consent_states_investor_id'))
    )

    # The consent each investor had becomes a platform statement (a replay rebuilds it from the log) and its state.
    conn = op.get_bind()
    investors = sa.table('investors', sa.column('id', sa.Integer()), sa.column('consent', sa.JSON()))
    statements = sa.table('consent_statements', *(sa.column(n) for n in (
        'investor_id', 'channel', 'granted', 'occurred_at', 'source', 'evidence', 'event_id')))
    statements.c.occurred_at.type = growth.db.UTCDateTime()
    statements.c.evidence.type = sa.JSON()
    states = sa.table('consent_states', *(sa.column(n) for n in (
        'investor_id', 'channel', 'granted', 'occurred_at', 'source')))
    states.c.occurred_at.type = growth.db.UTCDateTime()
    rows: list[dict[str, Any]] = []
    for investor_id, consent in conn.execute(sa.select(investors.c.id, investors.c.consent)):
        for channel, stated in (consent or {}).items():
            rows.append({"investor_id": investor_id, "channel": channel, "granted": bool(stated["granted"]),
                         "occurred_at": datetime.fromisoformat(stated["at"]), "source": PLATFORM_EVENT})
    if rows:
        conn.execute(statements.insert(), [{**r, "evidence": {"migrated": "investors.consent"}, "event_id": None}
                                           for r in rows])
        conn.execute(states.insert(), rows)

    with op.batch_alter_table('investors', schema=None) as batch_op:
        batch_op.drop_column('consent')


def downgrade() -> None:
    with op.batch_alter_table('investors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('consent', sa.JSON(), nullable=False, server_default='{}'))
    with op.batch_alter_table('investors', schema=None) as batch_op:
        batch_op.alter_column('consent', server_default=None)
    conn = op.get_bind()
    states = sa.table('consent_states', sa.column('investor_id'), sa.column('channel'), sa.column('granted'),
                      sa.column('occurred_at', growth.db.UTCDateTime()))
    investors = sa.table('investors', sa.column('id', sa.Integer()), sa.column('consent', sa.JSON()))
    consent: dict[int, dict[str, Any]] = {}
    for investor_id, channel, granted, at in conn.execute(sa.select(states)):
        consent.setdefault(investor_id, {})[channel] = {"granted": bool(granted), "at": at.isoformat()}
    for investor_id, value in consent.items():
        conn.execute(investors.update().where(investors.c.id == investor_id).values(consent=value))
    op.drop_table('consent_states')
    with op.batch_alter_table('consent_statements', schema=None) as batch_op:
        batch_op.drop_index('ix_consent_statements_investor_channel')
    op.drop_table('consent_statements')
