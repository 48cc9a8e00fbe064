"""Webhooks on terminal states reach a real local receiver, signed, and are retried after a failure."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from ferryman.jobs import verify
from tests.e2e.processes import FerrymanServer, wait_until

Make = Callable[..., FerrymanServer]


class Receiver:
    def __init__(self, fail_first: int) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    state = Receiver(fail_first=1)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["content-length"]))
            state.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(500 if len(state.calls) <= state.fail_first else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", state
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_webhook_is_signed_and_retried_until_delivered(
    make_server: Make, receiver: tuple[str, Receiver]
) -> None:
    url, state = receiver
    server = make_server(
        {"FERRYMAN_ALLOW_PRIVATE_WEBHOOKS": "true", "FERRYMAN_WEBHOOK_BACKOFF_SECONDS": "0.2"}
    )
    server.start_worker()
    with server.client() as api:
        job = api.post(
            "/v1/jobs",
            json={
                "task": "chat",
                "model": "echo-1",
                "webhook_url": url,
                "wait": 5,
                "input": {"messages": [{"role": "user", "content": "ping"}]},
            },
        ).json()
        secret = api.get("/v1/org").json()["webhook_secret"]
    wait_until(lambda: len(state.calls) >= 2, timeout_s=10, what="the retried webhook")
    (first_headers, first_body), (headers, body) = state.calls[:2]
    assert json.loads(body) == {
        "type": "job.succeeded",
        "data": {"id": job["id"], "status": "succeeded", "task": "chat", "model": "echo-1"},
    }
    assert verify(secret, headers, body)
    assert not verify(secret, headers, body.replace(b"succeeded", b"failed"))
    assert first_headers["webhook-id"] == headers["webhook-id"], "a retry keeps the message id"
