"""Webhooks on terminal states: Standard-Webhooks signatures, retries with backoff, and no SSRF.

A URL is refused at submission when any address it resolves to is private, loopback, link-local, reserved or
multicast, and checked again before each delivery, since DNS can change between the two (rebinding).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from ferryman.errors import InvalidRequest

log = structlog.get_logger(__name__)

MAX_URL_LENGTH = 2048


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, *, tolerance_seconds: int = 300) -> bool:
    """What a receiver runs: constant-time compare, and a timestamp within the tolerance (replay guard)."""
    try:
        msg_id, timestamp = headers["webhook-id"], int(headers["webhook-timestamp"])
        too_old = abs(time.time() - timestamp) > tolerance_seconds
    except (KeyError, ValueError, OverflowError):
        return False
    if too_old:
        return False
    expected = sign(secret, msg_id, timestamp, body).split(",", 1)[1]
    offered = [s.split(",", 1)[1] for s in headers.get("webhook-signature", "").split() if "," in s]
    return any(hmac.compare_digest(expected.encode(), o.encode()) for o in offered)  # str must be ASCII


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


async def check_url(url: str, *, allow_private: bool) -> None:
    """Raise InvalidRequest unless `url` is an http(s) URL whose every address is public (or private allowed)."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRequest(f"webhook URL is longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("webhook URL must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise InvalidRequest("webhook URL must not carry credentials")
    if allow_private:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError):
        raise InvalidRequest(f"webhook host {parts.hostname!r} does not resolve") from None
    addresses = {info[4][0] for info in infos}
    if not addresses or not all(_is_public(str(a)) for a in addresses):
        raise InvalidRequest(
            "webhook URL points at a private, loopback or link-local address; use a public URL",
            details={"host": parts.hostname},
        )


class WebhookSender:
    """Delivers webhooks in background tasks it owns; `aclose` waits a moment for them, then cancels."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        secret_for: Callable[[str], Awaitable[str]],
        allow_private: bool,
        max_attempts: int,
        backoff_seconds: float,
    ) -> None:
        self._client = client
        self._secret_for = secret_for
        self._allow_private = allow_private
        self._max_attempts = max_attempts
        self._backoff_seconds = backoff_seconds
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, *, org_id: str, url: str, event: str, data: dict[str, Any]) -> None:
        task = asyncio.create_task(self._deliver(org_id, url, event, data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, org_id: str, url: str, event: str, data: dict[str, Any]) -> None:
        msg_id = "msg_" + secrets.token_hex(12)
        body = json.dumps({"type": event, "data": data}, separators=(",", ":")).encode()
        secret = await self._secret_for(org_id)
        for attempt in range(1, self._max_attempts + 1):
            try:
                await check_url(url, allow_private=self._allow_private)
                timestamp = int(time.time())
                headers = {
                    "webhook-id": msg_id,
                    "webhook-timestamp": str(timestamp),
                    "webhook-signature": sign(secret, msg_id, timestamp, body),
                    "content-type": "application/json",
                    "user-agent": "ferryman-webhooks/1",
                }
                response = await self._client.post(url, content=body, headers=headers)
                if response.status_code < 300:
                    log.info("webhook.delivered", msg_id=msg_id, attempt=attempt)
                    return
                log.warning("webhook.rejected", msg_id=msg_id, attempt=attempt, status=response.status_code)
            except InvalidRequest:
                log.warning("webhook.refused", msg_id=msg_id, attempt=attempt)
                return
            except httpx.HTTPError as exc:
                log.warning("webhook.failed", msg_id=msg_id, attempt=attempt, error=type(exc).__name__)
            if attempt < self._max_attempts:
                await asyncio.sleep(self._backoff_seconds * 2 ** (attempt - 1))
        log.error("webhook.abandoned", msg_id=msg_id, attempts=self._max_attempts)

    async def aclose(self, grace_seconds: float = 2.0) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
