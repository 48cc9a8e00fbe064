from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.privacy import PayloadCipher, load_or_create_master_key
from ferryman.store import StoreWriter, tables

pytestmark = pytest.mark.anyio

MASTER = bytes(range(32))
PLAIN = b'{"prompt": "my secret prompt"}'


def cipher(
    engine: AsyncEngine, writer: StoreWriter, *, master: bytes = MASTER, region: str = "us"
) -> PayloadCipher:
    return PayloadCipher(region=region, master_key=master, engine=engine, writer=writer)


async def test_payload_cipher_decrypt_returns_what_encrypt_was_given(
    region_engine: AsyncEngine,
    writer: StoreWriter,
) -> None:
    c = cipher(region_engine, writer)

    sealed = await c.encrypt("org_a", PLAIN, aad="job_1:payload")

    assert await c.decrypt("org_a", sealed, aad="job_1:payload") == PLAIN


async def test_payload_cipher_ciphertext_does_not_contain_plaintext(
    region_engine: AsyncEngine,
    writer: StoreWriter,
) -> None:
    sealed = await cipher(region_engine, writer).encrypt("org_a", PLAIN, aad="job_1:payload")

    assert (b"secret" in sealed, PLAIN in sealed) == (False, False)


async def test_payload_cipher_gives_same_plaintext_different_ciphertexts(
    region_engine: AsyncEngine,
    writer: StoreWriter,
) -> None:
    c = cipher(region_engine, writer)

    first = await c.encrypt("org_a", PLAIN, aad="job_1:payload")
    second = await c.encrypt("org_a", PLAIN, aad="job_1:payload")

    assert first != second


async def test_payload_cipher_refuses_ciphertext_under_other_aad(
    region_engine: AsyncEngine,
    writer: StoreWriter,
) -> None:
    c = cipher(region_engine, writer)
    sealed = await c.encrypt("org_a", PLAIN, aad="job_1:payload")

    with pytest.raises(InvalidTag):
        await c.decrypt("org_a", sealed, aad="job_2:payload")


async def test_payload_cipher_refuses_ciphertext_under_other_orgs_key(
    region_engine: AsyncEngine,
    writer: StoreWriter,
) -> None:
    c = cipher(region_engine, writer)
    sealed = await c.encrypt("org_a", PLAIN, aad="job_1:payload")

    with pytest.raises(InvalidTag):
        await c.decrypt("org_b", sealed, aad="job_1:payload")


async def test_payload_cipher_refuses_tampered_ciphertext(
    region_engine: AsyncEngine, writer: StoreWriter
) -> None:
    c = cipher(region_engine, writer)
    sealed = bytearray(await c.encrypt("org_a", PLAIN, aad="job_1:payload"))
    sealed[-1] ^= 0x01

    with pytest.raises(InvalidTag):
        await c.decrypt("org_a", bytes(sealed), aad="job_1:payload")


async def test_payload_cipher_keeps_one_stored_key_per_org(
    region_engine: AsyncEngine, writer: StoreWriter
) -> None:
    c = cipher(region_engine, writer)
    for org in ("org_a", "org_a", "org_b"):
        await c.encrypt(org, PLAIN, aad="x")

    async with region_engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(tables.org_keys))).scalar_one()

    assert count == 2


async def test_payload_cipher_reads_stored_key_after_restart(
    region_engine: AsyncEngine, writer: StoreWriter
) -> None:
    sealed = await cipher(region_engine, writer).encrypt("org_a", PLAIN, aad="job_1:payload")

    restarted = cipher(region_engine, writer)

    assert await restarted.decrypt("org_a", sealed, aad="job_1:payload") == PLAIN


async def test_payload_cipher_cannot_unwrap_stored_key_with_other_master_key(
    region_engine: AsyncEngine,
    writer: StoreWriter,
) -> None:
    sealed = await cipher(region_engine, writer).encrypt("org_a", PLAIN, aad="job_1:payload")

    with pytest.raises(InvalidTag):
        await cipher(region_engine, writer, master=bytes(32)).decrypt("org_a", sealed, aad="job_1:payload")


async def test_payload_cipher_cannot_unwrap_stored_key_in_other_region(
    region_engine: AsyncEngine,
    writer: StoreWriter,
) -> None:
    sealed = await cipher(region_engine, writer, region="us").encrypt("org_a", PLAIN, aad="job_1:payload")

    with pytest.raises(InvalidTag):
        await cipher(region_engine, writer, region="eu").decrypt("org_a", sealed, aad="job_1:payload")


async def test_payload_cipher_refuses_unknown_ciphertext_version(
    region_engine: AsyncEngine,
    writer: StoreWriter,
) -> None:
    c = cipher(region_engine, writer)
    sealed = await c.encrypt("org_a", PLAIN, aad="job_1:payload")

    with pytest.raises(ValueError, match="unknown ciphertext version"):
        await c.decrypt("org_a", b"\x02" + sealed[1:], aad="job_1:payload")


def test_load_or_create_master_key_creates_32_byte_file_with_mode_600(tmp_path: Path) -> None:
    path = tmp_path / "regions" / "us" / "master.key"

    key = load_or_create_master_key(path)

    assert (len(key), path.read_bytes() == key, stat.S_IMODE(os.stat(path).st_mode)) == (32, True, 0o600)


def test_load_or_create_master_key_reuses_existing_key(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    first = load_or_create_master_key(path)

    assert load_or_create_master_key(path) == first


def test_load_or_create_master_key_refuses_key_of_wrong_length(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(b"short")

    with pytest.raises(ValueError, match="must be 32 bytes, found 5"):
        load_or_create_master_key(path)


async def test_payload_cipher_uses_one_key_when_first_encrypts_of_an_org_race(
    region_engine: AsyncEngine,
    writer: StoreWriter,
) -> None:
    c = cipher(region_engine, writer)
    sealed = await asyncio.gather(*(c.encrypt("org_new", PLAIN, aad=f"job_{i}:payload") for i in range(10)))

    restarted = cipher(region_engine, writer)

    assert [await restarted.decrypt("org_new", s, aad=f"job_{i}:payload") for i, s in enumerate(sealed)] == [
        PLAIN
    ] * 10


async def _destroy_key(engine: AsyncEngine, org_id: str) -> None:
    """What an erasure does to the store: the org's wrapped data key is gone."""
    async with engine.begin() as conn:
        await conn.execute(tables.org_keys.delete().where(tables.org_keys.c.org_id == org_id))


async def test_a_forgotten_destroyed_key_no_longer_decrypts(
    region_engine: AsyncEngine, writer: StoreWriter
) -> None:
    c = cipher(region_engine, writer)
    sealed = await c.encrypt("org_a", PLAIN, aad="job_1:payload")
    other = await c.encrypt("org_b", PLAIN, aad="job_2:payload")
    await _destroy_key(region_engine, "org_a")
    assert await c.decrypt("org_a", sealed, aad="job_1:payload") == PLAIN  # the cached key still works

    c.forget("org_a")

    with pytest.raises(InvalidTag):
        await c.decrypt("org_a", sealed, aad="job_1:payload")
    assert await c.decrypt("org_b", other, aad="job_2:payload") == PLAIN  # other orgs keep their keys


async def test_forget_during_a_key_load_does_not_cache_the_old_key(
    region_engine: AsyncEngine, writer: StoreWriter
) -> None:
    c = cipher(region_engine, writer)
    sealed = await c.encrypt("org_a", PLAIN, aad="job_1:payload")
    c.forget("org_a")

    loading = asyncio.ensure_future(c.decrypt("org_a", sealed, aad="job_1:payload"))
    await asyncio.sleep(0)  # the load is reading the store now
    c.forget("org_a")
    assert await loading == PLAIN

    assert not c.cached("org_a")
