"""Blob stores, one per region and key space: media bytes never land in another region's store.

`BlobStore` is what callers depend on; `LocalBlobStore` (a directory) is the one implementation today, and an
S3-compatible store per region implements the same three methods. A store writes whatever bytes it is given;
callers hand it ciphertext (see privacy.PayloadCipher). Each key space is its own store (job outputs in
`<region>/blobs`; library items will get a directory or bucket prefix of their own), so two kinds of objects
never share keys.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol, runtime_checkable

import anyio

_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


@runtime_checkable
class BlobStore(Protocol):
    """Bytes by (org, key) in one region and key space. Keys are plain names (`[A-Za-z0-9_.-]`, up to 200)."""

    async def put(self, org_id: str, key: str, data: bytes) -> None:
        """Store `data` under the key, replacing what was there; durable when this returns."""
        ...

    async def get(self, org_id: str, key: str) -> bytes | None:
        """The bytes under the key, or None."""
        ...

    async def delete(self, org_id: str, key: str) -> None:
        """Remove the key; nothing happens if it is absent."""
        ...


class LocalBlobStore:
    """A `BlobStore` in a local directory: `<root>/<org_id>/<key>`, written through a temporary file."""

    def __init__(self, root: Path) -> None:
        self._root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    @property
    def root(self) -> Path:
        return self._root

    def _path(self, org_id: str, key: str) -> Path:
        if not _SAFE.match(org_id) or not _SAFE.match(key) or key.startswith(".") or org_id.startswith("."):
            raise ValueError(f"unsafe blob key {key!r}")
        return self._root / org_id / key

    async def put(self, org_id: str, key: str, data: bytes) -> None:
        path = self._path(org_id, key)
        await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(path.suffix + ".tmp")
        await anyio.Path(tmp).write_bytes(data)
        os.replace(tmp, path)

    async def get(self, org_id: str, key: str) -> bytes | None:
        path = anyio.Path(self._path(org_id, key))
        if not await path.exists():
            return None
        return await path.read_bytes()

    async def delete(self, org_id: str, key: str) -> None:
        path = anyio.Path(self._path(org_id, key))
        if await path.exists():
            await path.unlink()
