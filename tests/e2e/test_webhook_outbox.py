"""Webhooks survive a restart: 20 deliveries waiting for a receiver that is down outlive a SIGKILL of the server.

Issue 19 defect 6: a restart dropped every delivery being retried (0 of 20 delivered). Now they live in the
region store's outbox and each reaches a deduplicating receiver under a `webhook-id` that never changes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ferryman.jobs import delivery_id, verify
from tests.e2e.processes import FerrymanServer, free_port, wait_until

Make = Callable[..., FerrymanServer]
JOBS = 20


class DeduplicatingReceiver:
    """What a receiver should do: verify, take each `webhook-id` once, acknowledge repeats without acting."""

    def __init__(self, port: int, secrets: list[str]) -> None:
        self.port, self.secrets = port, secrets
        self.seen: Counter[str] = Counter()
        self.processed: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    if not any(verify(s, headers, body) for s in receiver.secrets):
                        receiver.bad_signatures += 1
                    msg_id = headers["webhook-id"]
                    receiver.seen[msg_id] += 1
                    if receiver.seen[msg_id] == 1:
                        receiver.processed.append({"id": msg_id, **json.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


def outbox_rows(data_dir: Path, region: str) -> list[tuple[str, str, int, bytes]]:
    db = sqlite3.connect(f"file:{data_dir / 'regions' / region / 'region.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT id, state, attempts, body FROM webhook_deliveries").fetchall()
    except sqlite3.OperationalError as exc:  # not there yet, or the server is writing: ask again
        if "no such table" not in str(exc) and "locked" not in str(exc):
            raise
        return []
    finally:
        db.close()


def test_webhooks_pending_across_a_restart_are_each_delivered_once(make_server: Make) -> None:
    server = make_server(
        {
            "FERRYMAN_ALLOW_PRIVATE_WEBHOOKS": "true",
            "FERRYMAN_WEBHOOK_BACKOFF_SECONDS": "0.2",
            "FERRYMAN_WEBHOOK_MAX_BACKOFF_SECONDS": "1",
            "FERRYMAN_WEBHOOK_MAX_ATTEMPTS": "1000",
        }
    )
    server.start_worker(region="us", slots=4)
    server.start_worker(region="eu", slots=1)
    eu_token = server.create_org("eu-hooks", region="eu")
    port = free_port()  # nothing listens here yet: the receiver is down
    url = f"http://127.0.0.1:{port}/hook"
    job_ids = []
    with server.client() as api:
        secret = api.get("/v1/org").json()["webhook_secret"]
        for n in range(JOBS):
            job = api.post(
                "/v1/jobs",
                json={
                    "task": "chat",
                    "model": "echo-1",
                    "webhook_url": url,
                    "wait": 10,
                    "input": {"messages": [{"role": "user", "content": f"outbox-canary-{n}"}]},
                },
            ).json()
            assert job["status"] == "succeeded", job
            job_ids.append(job["id"])
    with server.client(eu_token) as api:
        eu_secret = api.get("/v1/org").json()["webhook_secret"]
        eu_job = api.post(
            "/v1/jobs",
            json={
                "task": "chat",
                "model": "echo-1",
                "webhook_url": url,
                "wait": 10,
                "input": {"messages": [{"role": "user", "content": "eu"}]},
            },
        ).json()
        assert eu_job["status"] == "succeeded", eu_job
    expected = {delivery_id(job_id, "job.succeeded") for job_id in job_ids}

    def retried_while_down() -> bool:
        rows = outbox_rows(server.data_dir, "us")
        return len(rows) == JOBS and all(
            state == "pending" and attempts >= 1 for _, state, attempts, _ in rows
        )

    wait_until(retried_while_down, timeout_s=30, what="20 deliveries retried while the receiver is down")
    us_rows = outbox_rows(server.data_dir, "us")
    assert {row[0] for row in us_rows} == expected
    assert not any(b"outbox-canary" in body or job_ids[0].encode() in body for *_, body in us_rows), "sealed"
    wait_until(
        lambda: len(outbox_rows(server.data_dir, "eu")) == 1,
        timeout_s=10,
        what="the EU delivery",
        log=server.log,
    )
    [eu_row] = outbox_rows(server.data_dir, "eu")  # the EU delivery stays in the EU store
    assert eu_row[0] == delivery_id(eu_job["id"], "job.succeeded")
    assert eu_row[0] not in {row[0] for row in us_rows}

    server.kill()  # SIGKILL: nothing in memory survives
    receiver = DeduplicatingReceiver(port, [secret, eu_secret])
    receiver.start()
    try:
        server.start()
        wait_until(lambda: len(receiver.processed) >= JOBS, timeout_s=60, what="all 20 webhooks delivered")
        wait_until(
            lambda: {state for _, state, *_ in outbox_rows(server.data_dir, "us")} == {"delivered"},
            timeout_s=20,
            what="every us delivery recorded as delivered",
        )
    finally:
        receiver.stop()

    us_processed = [p for p in receiver.processed if p["id"] in expected]
    assert len(us_processed) == JOBS
    assert {p["id"] for p in us_processed} == expected, "the webhook-id of each is the one it had before"
    assert sorted(p["data"]["id"] for p in us_processed) == sorted(job_ids)
    assert all(p["type"] == "job.succeeded" for p in us_processed)
    assert receiver.bad_signatures == 0
    assert eu_row[0] in {p["id"] for p in receiver.processed}
