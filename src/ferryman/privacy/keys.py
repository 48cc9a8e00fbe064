"""Payload encryption at rest: one AES-GCM data key per organization and region.

Each region has a master key (a file in the region's directory in embedded mode; a KMS key in production) that
wraps the org data keys kept in the region store. Erasing an org destroys its data key, which makes every
payload, result and blob of that org in the region unreadable (crypto-shredding), even in backups.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.store import StoreWriter, tables

NONCE_BYTES = 12
VERSION = b"\x01"


def load_or_create_master_key(path: Path) -> bytes:
    """Read the region master key, creating it (mode 600) on first start."""
    if path.exists():
        key = path.read_bytes()
        if len(key) != 32:
            raise ValueError(f"master key {path} must be 32 bytes, found {len(key)}")
        return key
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = AESGCM.generate_key(bit_length=256)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if sealed[:1] != VERSION:
        raise ValueError("unknown ciphertext version")
    nonce = sealed[1 : 1 + NONCE_BYTES]
    return AESGCM(key).decrypt(nonce, sealed[1 + NONCE_BYTES :], aad)


class PayloadCipher:
    """Encrypts and decrypts one region's payloads; `aad` binds a ciphertext to its job and field."""

    def __init__(self, *, region: str, master_key: bytes, engine: AsyncEngine, writer: StoreWriter) -> None:
        self._region = region
        self._master = master_key
        self._engine = engine
        self._writer = writer
        self._keys: dict[str, bytes] = {}
        # bumped by `forget`: a key read from the store before it is not cached after it
        self._generation: dict[str, int] = {}

    def forget(self, org_id: str) -> None:
        """Drop the org's data key from memory, so the next use reads the store again. Call it when the key was
        destroyed (erasure): otherwise this process would keep decrypting the org's data until it restarts."""
        self._keys.pop(org_id, None)
        self._generation[org_id] = self._generation.get(org_id, 0) + 1

    def cached(self, org_id: str) -> bool:
        """Whether the org's data key is held in memory now."""
        return org_id in self._keys

    async def _data_key(self, org_id: str) -> bytes:
        if key := self._keys.get(org_id):
            return key
        generation = self._generation.get(org_id, 0)
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(tables.org_keys.c.wrapped_key).where(tables.org_keys.c.org_id == org_id)
                )
            ).first()
        if row is None:
            key = await self._writer.write(lambda conn: self._create_key(conn, org_id))
        else:
            key = _open(self._master, row.wrapped_key, f"{self._region}:{org_id}".encode())
        if self._generation.get(org_id, 0) == generation:
            self._keys[org_id] = key
        return key

    def _create_key(self, conn: Connection, org_id: str) -> bytes:
        row = (
            conn.execute(select(tables.org_keys.c.wrapped_key).where(tables.org_keys.c.org_id == org_id))
        ).first()
        aad = f"{self._region}:{org_id}".encode()
        if row is not None:
            return _open(self._master, row.wrapped_key, aad)
        key = AESGCM.generate_key(bit_length=256)
        conn.execute(
            insert(tables.org_keys).values(
                org_id=org_id, wrapped_key=_seal(self._master, key, aad), created_at=time.time()
            )
        )
        return key

    async def encrypt(self, org_id: str, plaintext: bytes, *, aad: str) -> bytes:
        return _seal(await self._data_key(org_id), plaintext, aad.encode())

    async def decrypt(self, org_id: str, sealed: bytes, *, aad: str) -> bytes:
        return _open(await self._data_key(org_id), sealed, aad.encode())
