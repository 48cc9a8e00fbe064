"""Expiring, unguessable media URLs: an HMAC over (org, job, blob, expiry), verified without a token.

The signing key is 32 random bytes in the data dir (`url-signing.key`, mode 600), made on first use, so URLs stay
valid across restarts and rotating the file revokes every URL handed out.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ferryman.container import Container
from ferryman.types import JobId, OrgId

DEFAULT_TTL_SECONDS = 3600


class UrlSigner:
    """Signs and verifies media URLs; the key is read (or created) on first use."""

    def __init__(self, key_path: Path) -> None:
        self._key_path = key_path
        self._key: bytes | None = None

    def _load_key(self) -> bytes:
        if self._key is None:
            if not self._key_path.exists():
                self._key_path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self._key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(32))
            self._key = bytes.fromhex(self._key_path.read_text().strip())
        return self._key

    def signature(self, org_id: str, job_id: str, name: str, expires: int) -> str:
        message = f"{org_id}\n{job_id}\n{name}\n{expires}".encode()
        return hmac.new(self._load_key(), message, hashlib.sha256).hexdigest()

    def path(
        self,
        org_id: str,
        job_id: str,
        name: str,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        now: float | None = None,
    ) -> str:
        """A path (no origin) under /media that serves the blob until `ttl_seconds` from now."""
        expires = int((now if now is not None else time.time()) + ttl_seconds)
        sig = self.signature(org_id, job_id, name, expires)
        return f"/media/{org_id}/{job_id}/{name}?expires={expires}&signature={sig}"

    def is_valid(
        self, org_id: str, job_id: str, name: str, expires: str, signature: str, *, now: float | None = None
    ) -> bool:
        if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
            return False
        return hmac.compare_digest(self.signature(org_id, job_id, name, int(expires)), signature)


def with_media_urls(value: Any, *, signer: UrlSigner, origin: str, org_id: str, job_id: str) -> Any:
    """Copy of a canonical output in which every `{"blob": name}` also carries an absolute signed `url`."""
    if isinstance(value, dict):
        out = {
            k: with_media_urls(v, signer=signer, origin=origin, org_id=org_id, job_id=job_id)
            for k, v in value.items()
        }
        if isinstance(value.get("blob"), str):
            out["url"] = origin + signer.path(org_id, job_id, value["blob"])
        return out
    if isinstance(value, list):
        return [with_media_urls(v, signer=signer, origin=origin, org_id=org_id, job_id=job_id) for v in value]
    return value


def origin_of(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def media_route(signer: UrlSigner) -> Route:
    """GET /media/{org}/{job}/{name}?expires=…&signature=…: the blob, or 404 for anything not signed right."""

    async def media(request: Request) -> Response:
        org_id, job_id, name = (request.path_params[k] for k in ("org_id", "job_id", "name"))
        expires = request.query_params.get("expires", "")
        signature = request.query_params.get("signature", "")
        found = None
        if signer.is_valid(org_id, job_id, name, expires, signature):
            container: Container = request.state.container
            found = await container.jobs.read_blob(OrgId(org_id), JobId(job_id), name)
        if found is None:
            # the same answer for a bad signature, an expired URL and a missing blob: nothing to probe
            return JSONResponse(
                {"error": {"code": "not_found", "message": "media not found or link expired"}},
                status_code=404,
            )
        content_type, data = found
        return Response(data, media_type=content_type, headers={"Cache-Control": "private, max-age=300"})

    return Route("/media/{org_id}/{job_id}/{name}", media, methods=["GET"])
