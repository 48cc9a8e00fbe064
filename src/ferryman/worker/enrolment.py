"""A worker on an autoscaled machine starts with a one-time enrolment secret, not a worker token: it trades the
secret for a token once, at start-up, and keeps the token in memory only (docs/autoscaler.md, "Enrolment").

A spent secret cannot be traded again, so a worker process that restarts on the same machine cannot rejoin: the
autoscaler sees the machine as lost and replaces it, which is what it should do with a machine whose worker died.
"""

from __future__ import annotations

import asyncio
import ssl

import httpx

from ferryman.worker.agent import Unrecoverable

ENROL_TIMEOUT_SECONDS = 30.0
ATTEMPTS = 5


def enrol_url(base: str) -> str:
    return base.rstrip("/") + "/v1/workers/enrol"


async def enrol(
    *, url: str, secret: str, worker_id: str, region: str, ssl_context: ssl.SSLContext | None = None
) -> str:
    """The worker token the API gives for `secret`. Raises Unrecoverable when the API refuses it (a refusal is
    final: the secret is expired, spent, or not this worker's); a network failure is retried a few times."""
    verify: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
    last = ""
    async with httpx.AsyncClient(timeout=ENROL_TIMEOUT_SECONDS, verify=verify) as client:
        for attempt in range(ATTEMPTS):
            try:
                response = await client.post(
                    enrol_url(url),
                    json={"worker_id": worker_id, "region": region},
                    headers={"Authorization": f"Bearer {secret}"},
                )
            except httpx.HTTPError as exc:
                last = type(exc).__name__
                await _pause(attempt)
                continue
            if response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                await _pause(attempt)
                continue
            if response.status_code != 200:
                raise Unrecoverable(f"enrolment refused: HTTP {response.status_code}: {_message(response)}")
            token = response.json().get("token")
            if not isinstance(token, str) or not token:
                raise Unrecoverable("enrolment answered without a worker token")
            return token
    raise Unrecoverable(f"enrolment failed after {ATTEMPTS} attempts: {last}")


async def _pause(attempt: int) -> None:
    await asyncio.sleep(min(5.0, 0.5 * 2**attempt))


def _message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        return str(error.get("message") or error.get("code") or "no message")
    except (ValueError, AttributeError):
        return "no message"
