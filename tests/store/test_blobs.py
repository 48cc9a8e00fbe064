from __future__ import annotations

from pathlib import Path

import pytest

from ferryman.store import LocalBlobStore

pytestmark = pytest.mark.anyio


async def test_local_blob_store_returns_bytes_it_was_given(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")

    await blobs.put("org_a", "job_1.image", b"\x89PNG")

    assert await blobs.get("org_a", "job_1.image") == b"\x89PNG"


async def test_local_blob_store_returns_none_after_delete(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    await blobs.put("org_a", "job_1.image", b"data")

    await blobs.delete("org_a", "job_1.image")

    assert await blobs.get("org_a", "job_1.image") is None


async def test_local_blob_store_keeps_orgs_apart(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    await blobs.put("org_a", "job_1.image", b"data")

    assert await blobs.get("org_b", "job_1.image") is None


@pytest.mark.parametrize(
    ("org_id", "key"),
    [
        ("org_a", "../escape"),
        ("..", "key"),
        ("org_a", ".hidden"),
        ("org_a", "a/b"),
        ("org/a", "key"),
        ("org_a", ""),
    ],
)
async def test_local_blob_store_refuses_unsafe_key(tmp_path: Path, org_id: str, key: str) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")

    with pytest.raises(ValueError, match="unsafe blob key"):
        await blobs.put(org_id, key, b"data")
