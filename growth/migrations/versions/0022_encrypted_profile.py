"""Investors' phone, name and email encrypted at rest, found through keyed hashes (issue 13, PIPL)

The generated search keys of 0011 (the phone's last 4 digits, the lower-cased name and email, all in the clear)
go; four keyed-hash columns take their place (growth/crypto.py `blind`, growth/investors/rules.py
`search_index`), and every existing phone, name and email is encrypted with the current data key, in chunks of
2,000 rows; so are the contact fields of every event in the log (growth/events/rules.py `seal_payload`). The data keys must be configured before this runs (`growth db upgrade` reads GROWTH_DATA_KEYS or the
instance folder's key, as the app does). Downgrading decrypts them again.

Revision ID: 0022_encrypted_profile
Revises: 0021_data_protection
Create Date: 2026-12-04 18:00:00.000000
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

from growth.crypto import BLIND_LENGTH, Keyring, keyring
from growth.events.rules import open_payload, seal_payload
from growth.investors.rules import search_index

revision = '0022_encrypted_profile'
down_revision = '0021_data_protection'
branch_labels = None
depends_on = None

CHUNK = 2000
FIELDS = ("phone", "name", "email")
INDEXES = ("phone_index", "phone_tail_index", "name_index", "email_index")
# The same expressions as 0011 (for the downgrade).
PHONE_LAST4_SQL = "substr(phone, length(phone) - 3, 4)"
NAME_KEY_SQL = "lower(name)"
EMAIL_KEY_SQL = "lower(email)"


def _rewrite(columns: tuple[str, ...], change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Rewrite every investor that has a phone, name or email, chunk by chunk in id order."""
    bind = op.get_bind()
    investors = sa.table("investors", sa.column("id", sa.Integer), *(sa.column(c, sa.Text) for c in columns))
    has_any = sa.or_(*(investors.c[f].is_not(None) for f in FIELDS))
    after = 0
    while True:
        rows = bind.execute(sa.select(investors.c.id, *(investors.c[f] for f in FIELDS))
                            .where(has_any, investors.c.id > after).order_by(investors.c.id).limit(CHUNK)).mappings().all()
        if not rows:
            return
        values = [{"_id": row["id"], **change(dict(row))} for row in rows]
        names = [c for c in values[0] if c != "_id"]
        bind.execute(sa.update(investors).where(investors.c.id == sa.bindparam("_id"))
                     .values({c: sa.bindparam(c) for c in names}), values)
        after = rows[-1]["id"]


def _rewrite_events(change: Callable[[dict[str, Any], Keyring], dict[str, Any]]) -> None:
    """Rewrite the event log's payloads whose user holds contact fields (sealed or not), chunk by chunk in seq order."""
    bind = op.get_bind()
    events = sa.table("platform_events", sa.column("seq", sa.BigInteger), sa.column("payload", sa.Text))
    has_user = events.c.payload.contains('"user"')
    after = 0
    while True:
        rows = bind.execute(sa.select(events.c.seq, events.c.payload).where(has_user, events.c.seq > after)
                            .order_by(events.c.seq).limit(CHUNK)).all()
        if not rows:
            return
        ring = keyring()
        changed = []
        for seq, payload in rows:
            body = orjson.loads(payload)
            new = change(body, ring)
            if new is not body:
                changed.append({"_seq": seq, "payload": orjson.dumps(new).decode()})
        if changed:
            bind.execute(sa.update(events).where(events.c.seq == sa.bindparam("_seq"))
                         .values(payload=sa.bindparam("payload")), changed)
        after = rows[-1][0]


def _sealer(into: dict[str, str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Return a row change that seals each field into the column `into` names, its hashes beside it."""

    def _sealed(row: dict[str, Any]) -> dict[str, Any]:
        ring = keyring()
        out: dict[str, Any] = {}
        for field in FIELDS:
            value = row[field]
            out[into[field]] = None if value is None else ring.seal(value, f"investors.{field}")
            out.update(search_index(ring, field, value))
        return out

    return _sealed


def _opened(row: dict[str, Any]) -> dict[str, Any]:
    ring = keyring()
    return {f: None if row[f] is None else ring.open(row[f], f"investors.{f}") for f in FIELDS}


def _needs_keys() -> None:
    """Stop before changing anything, with the reason, when there is personal data and no data key to seal it."""
    bind = op.get_bind()
    investors = sa.table("investors", *(sa.column(f, sa.Text) for f in FIELDS))
    events = sa.table("platform_events", sa.column("payload", sa.Text))
    if (bind.scalar(sa.select(sa.exists().where(sa.or_(*(investors.c[f].is_not(None) for f in FIELDS)))))
            or bind.scalar(sa.select(sa.exists().where(events.c.payload.contains('"user"'))))):
        keyring()


def upgrade() -> None:
    _needs_keys()
    postgresql = op.get_bind().dialect.name == "postgresql"
    for index in ("ix_investors_phone_last4", "ix_investors_name_key", "ix_investors_email_key", "ix_investors_phone"):
        op.drop_index(index, table_name="investors")
    for column in ("phone_last4", "name_key", "email_key"):  # plain DROP COLUMN (SQLite 3.35+), no table copy
        op.drop_column("investors", column)
    # A token is longer than the value it holds: the columns become TEXT. PostgreSQL changes the type in place;
    # SQLite cannot, so the tokens go into new TEXT columns that then take the old ones' names (no table copy).
    into = {f: f if postgresql else f"{f}_sealed" for f in FIELDS}
    for field, length in (("phone", 20), ("name", 100), ("email", 254)):
        if postgresql:
            op.alter_column("investors", field, type_=sa.Text(), existing_type=sa.String(length))
        else:
            op.add_column("investors", sa.Column(into[field], sa.Text(), nullable=True))
    for column in INDEXES:
        op.add_column("investors", sa.Column(column, sa.String(BLIND_LENGTH), nullable=True))
    _rewrite(tuple(dict.fromkeys([*FIELDS, *into.values(), *INDEXES])), _sealer(into))
    if not postgresql:
        for field in FIELDS:
            op.drop_column("investors", field)
            op.execute(f"ALTER TABLE investors RENAME COLUMN {into[field]} TO {field}")
    for column in INDEXES:
        op.create_index(f"ix_investors_{column}", "investors", [column], unique=False)
    _rewrite_events(seal_payload)


def downgrade() -> None:
    _needs_keys()
    postgresql = op.get_bind().dialect.name == "postgresql"
    _rewrite_events(open_payload)
    _rewrite(FIELDS, _opened)
    for column in INDEXES:
        op.drop_index(f"ix_investors_{column}", table_name="investors")
        op.drop_column("investors", column)
    if postgresql:
        for field, length in (("phone", 20), ("name", 100), ("email", 254)):
            op.alter_column("investors", field, type_=sa.String(length), existing_type=sa.Text())
    stored = True if postgresql else None
    collation = {"collation": "C"} if postgresql else {}
    op.add_column("investors", sa.Column("phone_last4", sa.String(4), sa.Computed(PHONE_LAST4_SQL, persisted=stored)))
    op.add_column("investors", sa.Column("name_key", sa.String(100, **collation),
                                         sa.Computed(NAME_KEY_SQL, persisted=stored)))
    op.add_column("investors", sa.Column("email_key", sa.String(254, **collation),
                                         sa.Computed(EMAIL_KEY_SQL, persisted=stored)))
    op.create_index("ix_investors_phone_last4", "investors", ["phone_last4"], unique=False)
    op.create_index("ix_investors_name_key", "investors", ["name_key"], unique=False)
    op.create_index("ix_investors_email_key", "investors", ["email_key"], unique=False)
    op.create_index("ix_investors_phone", "investors", ["phone"], unique=False)
