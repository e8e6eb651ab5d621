"""Investors' phone, name and email are stored encrypted, found through keyed hashes, and survive a key rotation
(both databases). What is stored is read with plain SQL, as a copy of the database would be."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from flask import Flask
from sqlalchemy import select, text

from growth import crypto
from growth.audit.models import AuditEntry
from growth.cli import cli
from growth.config import TestConfig
from growth.db import get_db
from growth.events.processor import drain
from growth.investors.models import Investor
from tests.events import event, post_events
from tests.factories import make_investor

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NEW_KEY = "k2:" + "bmV3LWtleS1uZXcta2V5LW5ldy1rZXktbmV3LWtleS0"
PEOPLE = [("u_enc_1", "13812345678", "王小明", "Wang.XM@Example.com"),
          ("u_enc_2", "+8613987654321", "李 雷", "li.lei@example.org"),
          ("u_enc_3", "13500001111", "Han Meimei", None)]
STORED = "SELECT platform_user_id, phone, name, email, phone_index, phone_tail_index, name_index, email_index " \
         "FROM investors WHERE platform_user_id LIKE 'u_enc_%' ORDER BY platform_user_id"


@pytest.fixture
def people(app: Flask, client: Any) -> None:
    """Three investors registered through the events API (the processor writes their profiles)."""
    events = [event("user.registered", uid, T0, {"channel_code": "organic"}, phone=phone, name=name,
                    **({"email": email} if email else {})) for uid, phone, name, email in PEOPLE]
    assert post_events(client, events).status_code in (200, 202)
    assert drain(app) == len(PEOPLE)


@pytest.fixture
def restore_keys() -> Any:
    yield
    crypto.configure(crypto.parse_keys(TestConfig.DATA_KEYS))


def _stored(app: Flask) -> list[Any]:
    with get_db(app).session_scope() as s:
        return s.execute(text(STORED)).all()


def _found(client: Any, q: str) -> bool:
    return "u_enc_1" in client.get("/investors", query_string={"q": q}).get_data(as_text=True)


def test_what_is_stored_holds_no_phone_name_or_email_and_every_value_names_its_key(app, people):
    rows = _stored(app)
    assert len(rows) == 3
    dump = " ".join(str(v) for row in rows for v in row[1:])
    # Needles a base64url token cannot hold by chance (a space, a dot, an @, CJK) or too long to (8 digits).
    for needle in ("12345678", "87654321", "00001111", "王小明", "李", "Han Meimei", "Wang.XM", "li.lei",
                   "@Example.com", "@example.org"):
        assert needle not in dump, needle
    assert all(v.startswith("test$") for row in rows for v in row[1:] if v is not None)
    assert rows[2].email is None and rows[2].email_index is None  # nothing given, nothing stored
    with get_db(app).session_scope() as s:  # the event log: the contact fields sealed together, the rest as sent
        logged = [orjson.loads(p) for p in s.scalars(text("SELECT payload FROM platform_events"))]
    assert len(logged) == 3
    for body in logged:
        assert set(body["user"]) == {"id", "$sealed"} and body["user"]["$sealed"].startswith("test$")
        assert body["data"] == {"channel_code": "organic"}
        for needle in ("12345678", "87654321", "00001111", "王小明", "Wang.XM", "@Example.com", "@example.org"):
            assert needle not in orjson.dumps(body).decode(), needle
    with get_db(app).session_scope() as s:  # the model reads them back in the clear
        people = s.execute(select(Investor.phone, Investor.name, Investor.email)
                           .where(Investor.platform_user_id.like("u_enc_%")).order_by(Investor.platform_user_id)).all()
    assert [tuple(p) for p in people] == [("+8613812345678", "王小明", "Wang.XM@Example.com"),
                                          ("+8613987654321", "李 雷", "li.lei@example.org"),
                                          ("+8613500001111", "Han Meimei", None)]


def test_an_agent_finds_an_encrypted_investor_by_whole_phone_last_four_name_and_email(app, client, login, people):
    login("agent")
    for q in ("13812345678", "+86 138-1234-5678", "5678", "王小明", "王 小明", "wang.xm@example.com"):
        assert _found(client, q), q
    for q in ("王小", "wang.xm", "1234567"):  # no fragments of an encrypted value, beyond a phone's tail
        assert not _found(client, q), q


def test_the_last_four_digits_find_for_everyone_but_a_longer_tail_only_for_a_role_that_may_see_it(
        app, client, login, people):
    login("analyst")
    assert _found(client, "5678")
    assert not _found(client, "45678")  # withheld: a phone is not rebuilt digit by digit
    client.post("/logout")
    login("agent")
    assert _found(client, "45678")
    assert not _found(client, "55678")


def test_an_sms_report_finds_the_investor_by_the_hash_of_their_phone(app, people):
    directory = app.extensions["channels.recipients"]
    with get_db(app).session_scope() as s:
        by_phone = directory.by_address("sms", "13812345678", session=s)
        by_email = directory.by_address("email", "WANG.XM@example.com", session=s)
        uid = s.scalar(select(Investor.id).where(Investor.platform_user_id == "u_enc_1"))
    assert by_phone == [uid] and by_email == [uid]


def test_a_rotation_rewrites_every_value_under_the_new_key_and_the_old_key_can_then_go(
        app, client, login, people, restore_keys):
    with get_db(app).session_scope(write=True) as s:  # one written by the ORM too
        make_investor(s, platform_user_id="u_enc_orm", phone="+8613700002222", name="赵六")
    crypto.configure(crypto.parse_keys(f"{NEW_KEY},{TestConfig.DATA_KEYS}"))  # the new key first, the old kept
    runner = app.test_cli_runner()
    before = runner.invoke(cli, ["keys", "status"])
    assert before.exit_code == 0, before.output
    assert "current key: k2" in before.output and "values under older keys" in before.output
    assert "platform_events.payload      test 3" in before.output
    login("agent")
    assert _found(client, "13812345678")  # not rotated yet: found under the old key

    rotated = runner.invoke(cli, ["keys", "rotate", "--yes"])
    assert rotated.exit_code == 0, rotated.output
    assert "7 rows rewritten under data key k2" in rotated.output  # 4 investors, 3 events
    rows = _stored(app)
    assert all(v.startswith("k2$") for row in rows for v in row[1:] if v is not None)
    with get_db(app).session_scope() as s:
        logged = [orjson.loads(p) for p in s.scalars(text("SELECT payload FROM platform_events"))]
    assert all(body["user"]["$sealed"].startswith("k2$") for body in logged)
    again = runner.invoke(cli, ["keys", "rotate", "--yes"])
    assert "nothing to rotate" in again.output  # resumable and idempotent

    crypto.configure(crypto.parse_keys(NEW_KEY))  # the old key leaves the configuration
    assert _found(client, "13812345678") and _found(client, "王小明") and _found(client, "5678")
    with get_db(app).session_scope() as s:
        assert s.scalar(select(Investor.name).where(Investor.platform_user_id == "u_enc_orm")) == "赵六"
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "data_keys.rotated")).one()
        assert entry.details == {"key": "k2", "rows": 7}
    # New events are written under the new key.
    assert post_events(client, [event("user.registered", "u_enc_4", T0, phone="13600003333")]).status_code in (
        200, 202)
    assert drain(app) == 1
    with get_db(app).session_scope() as s:
        stored = s.execute(text("SELECT phone FROM investors WHERE platform_user_id = 'u_enc_4'")).scalar_one()
    assert stored.startswith("k2$")


def test_without_the_key_a_stored_value_is_refused_with_the_key_it_needs(app, people, restore_keys):
    crypto.configure(crypto.parse_keys(NEW_KEY))
    with get_db(app).session_scope() as s, pytest.raises(crypto.DataKeyError, match="'test'.*not configured"):
        s.scalar(select(Investor.phone).where(Investor.platform_user_id == "u_enc_1"))
