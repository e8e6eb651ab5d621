"""Personal data encrypted at rest, and keyed hashes to find it (PIPL; docs/operations.md "Data keys").

A *data key* is 32 random bytes with a short id, written `<id>:<base64url>` (`growth keys new` makes one).
GROWTH_DATA_KEYS holds one or more, comma-separated, the current one first: the current key encrypts and
hashes what is written; the others only decrypt and find what was written before a rotation, until
`growth keys rotate` has rewritten every row under the current key. Each key yields two sub-keys (HKDF):
one for AES-256-GCM, one for HMAC-SHA256, so the search hashes never reuse the encryption key.

- `seal`/`open`: a value becomes `<key id>$<base64url(nonce ‖ ciphertext ‖ tag)>`. The *purpose* (the
  column, e.g. `investors.phone`) is the associated data: a token copied into another column does not open.
- `blind`: a keyed hash `<key id>$<base64url(16 bytes)>` of a normalised value, stored beside the token and
  indexed; a search compares hashes (`blinds`: one per key, so rows not yet rotated are found too). Without
  the key nobody can compute one, so a copy of the database does not give up the phones by brute force.

The key ring is process-wide (`configure` at app start), because column types have no app to ask; every
app of a process (the tests' included) uses one ring.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

KEY_BYTES = 32
NONCE_BYTES = 12
HASH_BYTES = 16  # 128 bits: no two values collide in practice, and the index stays small
KEY_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,15}")
BLIND_LENGTH = 16 + 1 + 22  # a hash as stored: the longest key id, the separator, 16 bytes in base64url
_SEP = "$"


class DataKeyError(ValueError):
    """A data key that is malformed, missing, or that no configured key can open."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(master)


@dataclass(frozen=True, slots=True)
class _Key:
    id: str
    aead: AESGCM
    index: bytes


class Keyring:
    """The data keys, the current one first."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise DataKeyError("no data key configured (GROWTH_DATA_KEYS)")
        ids = [key_id for key_id, _ in keys]
        if len(set(ids)) != len(ids):
            raise DataKeyError(f"data key ids must differ (got {', '.join(ids)})")
        self._keys = {key_id: _Key(key_id, AESGCM(_derive(raw, b"growth/encrypt/v1")),
                                   _derive(raw, b"growth/search/v1")) for key_id, raw in keys}
        self.current = self._keys[ids[0]]
        self.ids = tuple(ids)

    def seal(self, text: str, purpose: str) -> str:
        """Encrypt `text` under the current key, bound to `purpose`."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.current.aead.encrypt(nonce, text.encode("utf-8"), purpose.encode("ascii"))
        return f"{self.current.id}{_SEP}{_b64(nonce + sealed)}"

    def open(self, token: str, purpose: str) -> str:
        """Decrypt a token `seal` made for `purpose`; raise DataKeyError if no key opens it."""
        key_id, _, body = token.partition(_SEP)
        key = self._keys.get(key_id)
        if key is None or not body:
            raise DataKeyError(f"{purpose}: sealed with data key {key_id!r}, which is not configured"
                            if body else f"{purpose}: not an encrypted value")
        try:
            raw = _unb64(body)
            return key.aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode("ascii")).decode("utf-8")
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise DataKeyError(f"{purpose}: the value does not open with data key {key_id!r}") from exc

    def blind(self, value: str, purpose: str) -> str:
        """Return the keyed hash of a normalised value under the current key (what is stored)."""
        return self._blind(self.current, value, purpose)

    def blinds(self, value: str, purpose: str) -> list[str]:
        """Return the keyed hashes of a value under every key (what a search looks for)."""
        return [self._blind(key, value, purpose) for key in self._keys.values()]

    @staticmethod
    def _blind(key: _Key, value: str, purpose: str) -> str:
        digest = hmac.new(key.index, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()
        return f"{key.id}{_SEP}{_b64(digest[:HASH_BYTES])}"


def parse_keys(text: str) -> Keyring:
    """Read GROWTH_DATA_KEYS: `<id>:<base64url of 32 bytes>`, comma-separated, the current key first."""
    keys: list[tuple[str, bytes]] = []
    for n, item in enumerate(p.strip() for p in text.split(",") if p.strip()):
        key_id, sep, encoded = item.partition(":")
        if not sep or not KEY_ID.fullmatch(key_id):
            raise DataKeyError(f"data key {n + 1}: write it as <id>:<base64url>, the id 1-16 of a-z 0-9 _ - "
                            "(`growth keys new` prints one)")
        try:
            raw = _unb64(encoded.strip())
        except (binascii.Error, ValueError) as exc:
            raise DataKeyError(f"data key {key_id!r}: not base64url") from exc
        if len(raw) != KEY_BYTES:
            raise DataKeyError(f"data key {key_id!r}: {len(raw)} bytes, a data key has {KEY_BYTES}")
        keys.append((key_id, raw))
    return Keyring(keys)


def new_key(key_id: str) -> str:
    """Return a fresh data key written as GROWTH_DATA_KEYS takes it."""
    if not KEY_ID.fullmatch(key_id):
        raise DataKeyError("a key id is 1-16 of a-z 0-9 _ - and starts with a letter or digit")
    return f"{key_id}:{_b64(os.urandom(KEY_BYTES))}"


_ring: Keyring | None = None


def configure(ring: Keyring) -> None:
    """Make `ring` the process's key ring (the app does this at start, before anything reads a column)."""
    global _ring
    _ring = ring


def keyring() -> Keyring:
    """Return the process's key ring; raise if no app configured one."""
    if _ring is None:
        raise DataKeyError("no data keys configured in this process: create the app first (growth.app.create_app)")
    return _ring


class Sealed(TypeDecorator[str]):
    """A text column stored encrypted (`seal`/`open` with the column's purpose); None stays NULL.

    Comparing the column in SQL compares ciphertexts, which never match: search its `blind` column instead.
    """

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring().seal(value, self.purpose)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring().open(value, self.purpose)
