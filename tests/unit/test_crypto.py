"""growth.crypto: data keys, sealed values bound to their column, keyed hashes across a rotation."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from growth.crypto import DataKeyError, Keyring, new_key, parse_keys
from growth.events.rules import dump_payload, load_payload, open_payload, seal_payload
from growth.investors.rules import name_form, search_index

# Fixed keys (test ids are the same in every pytest-xdist worker): 32 bytes each, base64url.
OLD = "k2025:" + "b2xkLWtleS1vbGQta2V5LW9sZC1rZXktb2xkLWtleS0"
NEW = "k2026:" + "bmV3LWtleS1uZXcta2V5LW5ldy1rZXktbmV3LWtleS0"


def test_a_sealed_value_opens_to_itself_and_holds_nothing_of_it():
    ring = parse_keys(OLD)
    token = ring.seal("+8613800138000", "investors.phone")
    assert token.startswith("k2025$") and "13800138000" not in token
    assert ring.open(token, "investors.phone") == "+8613800138000"
    assert ring.seal("+8613800138000", "investors.phone") != token  # a fresh nonce each time: equal values differ


@given(st.text(max_size=300))
def test_any_text_survives_the_round_trip(text):
    ring = parse_keys(OLD)
    assert ring.open(ring.seal(text, "investors.name"), "investors.name") == text


def test_a_token_moved_to_another_column_or_altered_does_not_open():
    ring = parse_keys(OLD)
    token = ring.seal("张三", "investors.name")
    with pytest.raises(DataKeyError, match="does not open"):
        ring.open(token, "investors.email")
    key_id, body = token.split("$")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[14] ^= 1  # one bit of the ciphertext
    flipped = f"{key_id}${base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"
    with pytest.raises(DataKeyError, match="does not open"):
        ring.open(flipped, "investors.name")
    with pytest.raises(DataKeyError, match="not an encrypted value"):
        ring.open("+8613800138000", "investors.phone")  # a value stored in the clear is refused, not returned


def test_a_token_of_a_key_no_longer_configured_says_which_key_it_needs():
    token = parse_keys(OLD).seal("x", "investors.name")
    with pytest.raises(DataKeyError, match="k2025.*not configured"):
        parse_keys(NEW).open(token, "investors.name")


def test_while_rotating_the_new_key_writes_and_every_key_reads_and_finds():
    old, both = parse_keys(OLD), parse_keys(f"{NEW}, {OLD}")
    token = old.seal("李四", "investors.name")
    assert both.open(token, "investors.name") == "李四"
    assert both.seal("李四", "investors.name").startswith("k2026$")
    stored = old.blind("李四", "name")
    assert stored in both.blinds("李四", "name")  # a row not yet rotated is still found
    assert both.blind("李四", "name") != stored and both.blind("李四", "name").startswith("k2026$")


def test_keyed_hashes_are_stable_and_differ_by_key_and_purpose():
    ring = parse_keys(OLD)
    assert ring.blind("+8613800138000", "phone") == parse_keys(OLD).blind("+8613800138000", "phone")
    assert ring.blind("+8613800138000", "phone") != ring.blind("+8613800138000", "name")
    assert ring.blind("+8613800138000", "phone") != parse_keys(new_key("k2025")).blind("+8613800138000", "phone")


@pytest.mark.parametrize(("text", "problem"), [
    ("", "no data key"),
    ("k1", "write it as <id>:<base64url>"),
    ("K1:" + OLD.split(":")[1], "write it as"),
    ("k1:AAAA", "3 bytes, a data key has 32"),
    ("k1:!!!!", "not base64url"),
    (f"{OLD},{OLD}", "ids must differ"),
])
def test_a_malformed_key_list_is_refused_with_the_reason(text, problem):
    with pytest.raises(DataKeyError, match=problem):
        parse_keys(text)


def test_new_keys_are_random_and_parse():
    assert new_key("a") != new_key("a")
    assert parse_keys(new_key("a")).ids == ("a",)
    with pytest.raises(DataKeyError):
        new_key("Bad Id")
    with pytest.raises(DataKeyError):
        Keyring([])


def test_the_search_index_of_a_phone_hashes_it_whole_and_its_tail_with_whether_the_mask_shows_it():
    ring = parse_keys(OLD)
    mainland = search_index(ring, "phone", "+8613800138000")
    short = search_index(ring, "phone", "+14155558000")  # masked +*******000: the last 4 are not all shown
    assert mainland["phone_index"] == ring.blind("+8613800138000", "phone")
    assert mainland["phone_tail_index"] == ring.blind("8000|shown", "phone_tail")
    assert short["phone_tail_index"] == ring.blind("8000|hidden", "phone_tail")
    assert search_index(ring, "phone", None) == {"phone_index": None, "phone_tail_index": None}
    assert search_index(ring, "name", "Zhang San") == {"name_index": ring.blind(name_form("zhangsan"), "name")}
    assert search_index(ring, "wechat_openid", "o123") == {}


def test_an_events_contact_fields_are_sealed_together_and_open_to_the_event_as_received():
    ring = parse_keys(OLD)
    sent = {"id": "e1", "type": "user.registered", "occurred_at": "2026-11-01T10:00:00+08:00",
            "user": {"id": "u1", "phone": "+8613800138000", "name": "张三", "email": "z@example.com",
                     "wechat_openid": "o-1"}, "data": {"channel_code": "wx"}}
    stored = seal_payload(sent, ring)
    assert set(stored["user"]) == {"id", "wechat_openid", "$sealed"} and stored["data"] == sent["data"]
    assert "13800138000" not in str(stored) and "张三" not in str(stored)
    assert stored["user"]["$sealed"].startswith("k2025$")
    assert open_payload(stored, ring) == sent
    assert load_payload(dump_payload(sent, ring), ring) == sent
    plain = {"id": "e2", "type": "funds.deposited", "user": {"id": "u1"}, "data": {"amount": "1.00"}}
    assert seal_payload(plain, ring) is plain and open_payload(plain, ring) is plain  # nothing to seal
    with pytest.raises(DataKeyError):  # a token sealed for the log does not open as a column value
        ring.open(stored["user"]["$sealed"], "investors.phone")
