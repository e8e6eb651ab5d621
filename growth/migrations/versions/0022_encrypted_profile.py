"""Investors' phone, name and email encrypted at rest, found through keyed hashes (issue 13, PIPL)

The generated search keys of 0011 (the phone's last 4 digits, the lower-cased name and email, all in the clear)
go; four keyed-hash columns take their place (growth/crypto.py `blind`, growth/investors/rules.py
`search_index`), and every existing phone, name and email is encrypted with the current data key, in chunks of
2,000 rows. The data keys must be configured before this runs (`growth db upgrade` reads GROWTH_DATA_KEYS or the
instance folder's key, as the app does). Downgrading decrypts them again.

Revision ID: 0022_encrypted_profile
Revises: 0021_data_protection
Create Date: 2026-12-04 18:00:00.000000
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

from growth.crypto import BLIND_LENGTH, keyring
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


def _sealed(row: dict[str, Any]) -> dict[str, Any]:
    ring = keyring()
    out: dict[str, Any] = {}
    for field in FIELDS:
        value = row[field]
        out[field] = None if value is None else ring.seal(value, f"investors.{field}")
        out.update(search_index(ring, field, value))
    return out


def _opened(row: dict[str, Any]) -> dict[str, Any]:
    ring = keyring()
    return {f: None if row[f] is None else ring.open(row[f], f"investors.{f}") for f in FIELDS}


def upgrade() -> None:
    keyring()  # no keys configured: stop before changing anything, with the reason
    postgresql = op.get_bind().dialect.name == "postgresql"
    for index in ("ix_investors_phone_last4", "ix_investors_name_key", "ix_investors_email_key", "ix_investors_phone"):
        op.drop_index(index, table_name="investors")
    for column in ("phone_last4", "name_key", "email_key"):  # plain DROP COLUMN (SQLite 3.35+), no table copy
        op.drop_column("investors", column)
    if postgresql:  # a token is longer than the value it holds
        for field, length in (("phone", 20), ("name", 100), ("email", 254)):
            op.alter_column("investors", field, type_=sa.Text(), existing_type=sa.String(length))
    for column in INDEXES:
        op.add_column("investors", sa.Column(column, sa.String(BLIND_LENGTH), nullable=True))
    _rewrite(FIELDS + INDEXES, _sealed)
    for column in INDEXES:
        op.create_index(f"ix_investors_{column}", "investors", [column], unique=False)


def downgrade() -> None:
    keyring()
    postgresql = op.get_bind().dialect.name == "postgresql"
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
