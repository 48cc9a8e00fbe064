"""Webhooks on terminal states: Standard-Webhooks signatures, a durable outbox with retries, and no SSRF.

A URL is refused at submission unless every address it resolves to is globally routable (`ferryman.netguard`),
and each delivery goes through `netguard.PinnedTransport`: resolved once, checked, and connected to that address,
so DNS answering differently between the check and the connection (rebinding) reaches nothing internal.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import structlog

from ferryman import netguard
from ferryman.errors import InvalidRequest
from ferryman.jobs.models import Job
from ferryman.jobs.webhook_outbox import Delivery, WebhookOutbox

log = structlog.get_logger(__name__)

MAX_URL_LENGTH = netguard.MAX_URL_LENGTH


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


async def check_url(url: str, *, allow_private: bool) -> None:
    """Raise InvalidRequest unless `url` is an http(s) URL whose every address is public (netguard's rule)."""
    await netguard.resolve_target(url, what="webhook URL", allow_private=allow_private)


# a delivered row is kept longer than recovery looks back, so recovery never sends a delivered webhook again
RECOVER_SECONDS = 3600.0
KEEP_DELIVERED_SECONDS = 2 * RECOVER_SECONDS
PURGE_INTERVAL_SECONDS = 60.0


def _event_data(job_id: str, state: str, task: str, model: str) -> dict[str, Any]:
    return {"id": job_id, "status": state, "task": task, "model": model}


def delivery_id(job_id: str, event: str) -> str:
    """The `webhook-id` of a job's event: derived from the job, so it is the same on every attempt, after any
    restart, and even if the job's end were announced twice; receivers deduplicate by it."""
    return "msg_" + hashlib.sha256(f"{job_id}:{event}".encode()).hexdigest()[:32]


class WebhookSender:
    """Delivers webhooks from each region's outbox, at least once, until a 2xx or the attempts run out.

    `notify` stores the delivery in its job's region store (the row outlives restarts; a store outage is retried
    until it takes the row); one loop per region posts what is due, at most `concurrency` at a time, and records
    each outcome: a 2xx marks the row delivered (kept `KEEP_DELIVERED_SECONDS`, then purged), a failure sets the
    next attempt after `backoff_seconds * 2**(attempts - 1)` (at most `max_backoff_seconds`), and the last
    failure leaves the row `abandoned`. A URL that is no longer public is abandoned at once. At start, jobs that
    ended in the last `RECOVER_SECONDS` without a row (a crash between the two commits) get theirs.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        secret_for: Callable[[str], Awaitable[str]],
        max_attempts: int,
        backoff_seconds: float,
        max_backoff_seconds: float = 1800.0,
        concurrency: int = 16,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._secret_for = secret_for
        self._max_attempts = max_attempts
        self._backoff_seconds = backoff_seconds
        self._max_backoff_seconds = max_backoff_seconds
        self._concurrency = concurrency
        self._clock = clock
        self._outboxes: dict[str, WebhookOutbox] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._in_flight: dict[str, set[str]] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._attempts: set[asyncio.Task[None]] = set()
        self._enqueues: set[asyncio.Task[None]] = set()
        self._stopping = False

    def add_region(self, region: str, outbox: WebhookOutbox) -> None:
        self._outboxes[region] = outbox
        self._wake[region] = asyncio.Event()
        self._in_flight[region] = set()

    def start(self) -> None:
        """Start delivering; rows left by an earlier run are picked up like new ones."""
        self._loops = [asyncio.create_task(self._run(region)) for region in self._outboxes]
        self._loops += [asyncio.create_task(self._recover(region)) for region in self._outboxes]

    def notify(self, job: Job) -> None:
        """Queue the webhook of a job that ended, if it has a webhook URL."""
        if job.webhook_url:
            self.send(
                region=job.region.value,
                org_id=job.org_id,
                job_id=job.id,
                url=job.webhook_url,
                event=f"job.{job.state.value}",
                data=_event_data(job.id, job.state.value, job.task.value, job.model),
            )

    def send(
        self, *, region: str, org_id: str, job_id: str, url: str, event: str, data: dict[str, Any]
    ) -> None:
        """Queue the delivery of `event`; returns at once, the row is written in the background."""
        task = asyncio.create_task(self._enqueue(region, org_id, job_id, url, event, data))
        self._enqueues.add(task)
        task.add_done_callback(self._enqueues.discard)

    async def _enqueue(
        self, region: str, org_id: str, job_id: str, url: str, event: str, data: dict[str, Any]
    ) -> None:
        msg_id = delivery_id(job_id, event)
        body = json.dumps({"type": event, "data": data}, separators=(",", ":")).encode()
        delivery = Delivery(msg_id, org_id, job_id, url, body, attempts=0)
        delay = 0.1
        while True:
            try:
                await self._outboxes[region].add(delivery, now=self._clock())
                break
            except Exception as exc:  # the store is out: keep the delivery in memory and try again
                if self._stopping:  # the next start's recovery finds the job without a row
                    log.error("webhook.not_queued", msg_id=msg_id, error=type(exc).__name__)
                    return
                log.warning("webhook.not_queued_yet", msg_id=msg_id, error=type(exc).__name__, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self._wake[region].set()

    async def _recover(self, region: str) -> None:
        try:
            found = await self._outboxes[region].finished_without_delivery(
                since=self._clock() - RECOVER_SECONDS, limit=10_000
            )
        except Exception as exc:
            log.error("webhook.recovery_failed", region=region, error=type(exc).__name__)
            return
        for job in found:
            log.warning("webhook.recovered", job_id=job.id, region=region)
            self.send(
                region=region,
                org_id=job.org_id,
                job_id=job.id,
                url=job.webhook_url,
                event=f"job.{job.state}",
                data=_event_data(job.id, job.state, job.task, job.model),
            )

    async def _run(self, region: str) -> None:
        outbox, wake, in_flight = self._outboxes[region], self._wake[region], self._in_flight[region]
        purged_at = 0.0
        while not self._stopping:
            wake.clear()
            timeout = 5.0
            try:
                if self._clock() - purged_at > PURGE_INTERVAL_SECONDS:
                    purged_at = self._clock()
                    await outbox.purge(now=purged_at)
                free = self._concurrency - len(in_flight)
                if free > 0 and not self._stopping:
                    for delivery in await outbox.due(now=self._clock(), limit=free, exclude=set(in_flight)):
                        in_flight.add(delivery.id)
                        task = asyncio.create_task(self._attempt(region, delivery))
                        self._attempts.add(task)
                        task.add_done_callback(self._attempts.discard)
                next_at = await outbox.next_due_at(exclude=set(in_flight))
                if next_at is not None and len(in_flight) < self._concurrency:
                    # already due (it became due after the read above): go round at once; with every slot
                    # taken, a finishing attempt wakes the loop instead
                    timeout = min(max(next_at - self._clock(), 0.0), 5.0)
            except Exception as exc:  # a store outage: try again in a while, the rows are still there
                log.warning("webhook.outbox_unreadable", region=region, error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)

    async def _attempt(self, region: str, delivery: Delivery) -> None:
        outbox = self._outboxes[region]
        attempt = delivery.attempts + 1
        try:
            error = await self._post(delivery)
            if error is None:
                log.info("webhook.delivered", msg_id=delivery.id, attempt=attempt)
                await outbox.delivered(delivery.id, keep_until=self._clock() + KEEP_DELIVERED_SECONDS)
                return
            retry_at = None
            if error != "refused" and attempt < self._max_attempts:
                delay = min(self._backoff_seconds * 2 ** (attempt - 1), self._max_backoff_seconds)
                retry_at = self._clock() + delay
            log.warning(
                "webhook.failed", msg_id=delivery.id, attempt=attempt, error=error, retry=bool(retry_at)
            )
            if retry_at is None:
                log.error("webhook.abandoned", msg_id=delivery.id, attempts=attempt)
            await outbox.failed(delivery.id, attempts=attempt, error=error, retry_at=retry_at)
        except Exception as exc:  # the outcome was not recorded: the row stays due and is tried again
            log.warning("webhook.outcome_unrecorded", msg_id=delivery.id, error=type(exc).__name__)
        finally:
            self._in_flight[region].discard(delivery.id)
            self._wake[region].set()

    async def _post(self, delivery: Delivery) -> str | None:
        """One attempt; None when the receiver took it, else why not (a status, an error class, `refused`)."""
        secret = await self._secret_for(delivery.org_id)
        timestamp = int(time.time())
        headers = {
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, delivery.id, timestamp, delivery.body),
            "content-type": "application/json",
            "user-agent": "ferryman-webhooks/1",
        }
        try:
            response = await self._client.post(delivery.url, content=delivery.body, headers=headers)
        except InvalidRequest:  # netguard.PinnedTransport: the host no longer resolves to a public address
            return "refused"
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return None if response.status_code < 300 else f"status {response.status_code}"

    async def aclose(self, grace_seconds: float = 2.0) -> None:
        """Let queued rows be written and the loops finish their store reads, give attempts in flight a moment,
        then stop; an attempt cut short leaves its row due, and it is made again at the next start."""
        if self._enqueues:
            await asyncio.wait(self._enqueues, timeout=grace_seconds)
        self._stopping = True
        for wake in self._wake.values():
            wake.set()
        if self._loops:
            await asyncio.wait(self._loops, timeout=grace_seconds)
        if self._attempts:
            await asyncio.wait(self._attempts, timeout=grace_seconds)
        tasks = [*self._loops, *self._attempts, *self._enqueues]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loops = []


def webhook_client(*, timeout_seconds: float, allow_private: bool) -> httpx.AsyncClient:
    """The HTTP client deliveries go through: every connection pinned to the address netguard checked."""
    return httpx.AsyncClient(
        timeout=timeout_seconds,
        follow_redirects=False,
        transport=netguard.PinnedTransport(allow_private=allow_private, what="webhook URL"),
    )
