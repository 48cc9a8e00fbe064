"""Local blob directories, one per region: media bytes live in files, never in another region's directory.

The store writes whatever bytes it is given; callers hand it ciphertext (see privacy.PayloadCipher). In
production an S3-compatible store per region implements the same four methods.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import anyio

_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


class LocalBlobStore:
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
