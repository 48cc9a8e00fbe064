from __future__ import annotations

from pathlib import Path

import pytest

from ferryman import jobs, privacy
from ferryman.store import BlobStore, LocalBlobStore, StoreWriter, create_engine, migrate
from ferryman.types import JobId, OrgId, Region

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


def test_local_blob_store_is_a_blob_store(tmp_path: Path) -> None:
    assert isinstance(LocalBlobStore(tmp_path / "blobs"), BlobStore)


class MemoryBlobStore:
    """Test double: a `BlobStore` in a dict, standing for an S3-compatible store."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    async def put(self, org_id: str, key: str, data: bytes) -> None:
        self.objects[org_id, key] = data

    async def get(self, org_id: str, key: str) -> bytes | None:
        return self.objects.get((org_id, key))

    async def delete(self, org_id: str, key: str) -> None:
        self.objects.pop((org_id, key), None)


async def test_the_job_repository_keeps_media_in_any_blob_store_sealed(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'region.db'}")
    await migrate(engine, "region")
    writer = StoreWriter(engine, name="test")
    writer.start()
    try:
        blobs = MemoryBlobStore()
        cipher = privacy.PayloadCipher(region="us", master_key=bytes(32), engine=engine, writer=writer)
        repo = jobs.JobRepository(region=Region.US, engine=engine, writer=writer, cipher=cipher, blobs=blobs)
        job_id = JobId("job_us_1")

        await repo.store_blob(OrgId("org_a"), job_id, "image", "image/png", b"\x89PNG picture")

        assert await repo.read_blob(OrgId("org_a"), job_id, "image") == ("image/png", b"\x89PNG picture")
        assert await repo.read_blob(OrgId("org_b"), job_id, "image") is None
        [(key, sealed)] = blobs.objects.items()
        assert key == ("org_a", "job_us_1.image") and b"picture" not in sealed
    finally:
        await writer.stop()
        await engine.dispose()
