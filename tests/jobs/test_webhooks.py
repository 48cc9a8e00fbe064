from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import asyncpg
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from ferryman import privacy, store
from ferryman.errors import InvalidRequest
from ferryman.jobs import (
    WebhookOutbox,
    WebhookSender,
    check_url,
    delivery_id,
    new_webhook_secret,
    sign,
    verify,
    webhook_client,
)
from ferryman.store import tables
from tests.capabilities import POSTGRES, require

SECRET = new_webhook_secret()


def signed_headers(body: bytes, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, "msg_1", timestamp, body),
    }


# -- signatures


def test_verify_accepts_what_sign_signed() -> None:
    body = b'{"type":"job.succeeded"}'

    assert verify(SECRET, signed_headers(body), body) is True


def test_verify_refuses_tampered_body() -> None:
    headers = signed_headers(b'{"type":"job.succeeded"}')

    assert verify(SECRET, headers, b'{"type":"job.failed"}') is False


def test_verify_refuses_signature_made_with_other_secret() -> None:
    body = b"{}"

    assert verify(SECRET, signed_headers(body, secret=new_webhook_secret()), body) is False


def test_verify_refuses_timestamp_older_than_tolerance() -> None:
    body = b"{}"

    assert verify(SECRET, signed_headers(body, timestamp=int(time.time()) - 301), body) is False


def test_verify_accepts_any_matching_signature_of_several() -> None:
    body = b"{}"
    headers = signed_headers(body)
    headers["webhook-signature"] = "v1,bm90LXRoaXMtb25l " + headers["webhook-signature"]

    assert verify(SECRET, headers, body) is True


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"webhook-id": "msg_1", "webhook-timestamp": "yesterday", "webhook-signature": "v1,abc"},
        {"webhook-id": "msg_1", "webhook-timestamp": "9" * 400, "webhook-signature": "v1,abc"},
        {"webhook-id": "msg_1", "webhook-timestamp": "{now}", "webhook-signature": "v1,é"},
        {"webhook-id": "msg_1", "webhook-timestamp": "{now}"},
    ],
)
def test_verify_returns_false_when_headers_are_malformed(headers: dict[str, str]) -> None:
    headers = {k: v.replace("{now}", str(int(time.time()))) for k, v in headers.items()}

    assert verify(SECRET, headers, b"{}") is False


@given(
    headers=st.fixed_dictionaries(
        {},
        optional={
            "webhook-id": st.text(),
            "webhook-timestamp": st.just(str(int(time.time()))) | st.integers().map(str) | st.text(),
            "webhook-signature": st.text() | st.text().map(lambda s: "v1," + s),
        },
    ),
    body=st.binary(max_size=64),
)
def test_verify_returns_a_bool_and_never_raises_when_headers_are_arbitrary(
    headers: dict[str, str], body: bytes
) -> None:
    assert verify(SECRET, headers, body) in (True, False)


# -- URLs


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://127.1.2.3:8080/hook",
        "http://10.0.0.5/hook",
        "http://192.168.1.1/hook",
        "http://172.16.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://localhost/hook",
        "http://2130706433/hook",
        "http://[fe80::1]/hook",
        "http://224.0.0.1/hook",
    ],
)
async def test_check_url_refuses_private_address(url: str) -> None:
    with pytest.raises(InvalidRequest, match="private, loopback or link-local address"):
        await check_url(url, allow_private=False)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.216.34/hook",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "93.184.216.34/hook",
        "http:///hook",
        "gopher://93.184.216.34/",
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_check_url_refuses_non_http_url(url: str, allow_private: bool) -> None:
    with pytest.raises(InvalidRequest, match="must be an absolute http:// or https:// URL"):
        await check_url(url, allow_private=allow_private)


@pytest.mark.anyio
@pytest.mark.parametrize("url", ["http://user:pass@93.184.216.34/hook", "https://token@93.184.216.34/hook"])
@pytest.mark.parametrize("allow_private", [False, True])
async def test_check_url_refuses_credentials_in_url(url: str, allow_private: bool) -> None:
    with pytest.raises(InvalidRequest, match="must not carry credentials"):
        await check_url(url, allow_private=allow_private)


@pytest.mark.anyio
async def test_check_url_refuses_url_over_the_length_limit() -> None:
    with pytest.raises(InvalidRequest, match="longer than 2048 characters"):
        await check_url("https://93.184.216.34/" + "a" * 2048, allow_private=False)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url", ["http://93.184.216.34/hook", "https://[2606:2800:220:1:248:1893:25c8:1946]/x"]
)
async def test_check_url_allows_public_address(url: str) -> None:
    await check_url(url, allow_private=False)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/",
        "http://[::1]/hook",
        "http://localhost:8000/hook",
    ],
)
async def test_check_url_allows_private_address_when_allow_private(url: str) -> None:
    await check_url(url, allow_private=True)


# -- delivery to a real HTTP receiver


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A raw HTTP/1.1 server on a free local port; answers each request with the next of `statuses`."""

    statuses: list[int]
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")[1:]
        headers = {
            k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines if ":" in line)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append(Received(headers, body))
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Receiver]:
    receiver = Receiver(statuses=[200])
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    receiver.url = f"http://127.0.0.1:{port}/hooks/ferryman"
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture(params=["sqlite", "postgresql"])
async def outbox(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[WebhookOutbox]:
    """A real region store (SQLite, or a fresh PostgreSQL database) with its writer and cipher."""
    admin, name = None, f"ferryman_outbox_{secrets.token_hex(4)}"
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'region.db'}"
    else:
        try:
            admin = await asyncpg.connect(host="127.0.0.1", database="test", timeout=3)
        except (OSError, asyncpg.PostgresError) as exc:
            require(POSTGRES, f"not reachable at 127.0.0.1:5432 ({exc}); .ci/run starts it")
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql+asyncpg://127.0.0.1/{name}"
    engine = store.create_engine(url)
    await store.migrate(engine, "region")
    writer = store.StoreWriter(engine, name="us")
    writer.start()
    cipher = privacy.PayloadCipher(
        region="us",
        master_key=privacy.load_or_create_master_key(tmp_path / "master.key"),
        engine=engine,
        writer=writer,
    )
    try:
        yield WebhookOutbox(engine=engine, writer=writer, cipher=cipher)
    finally:
        await writer.stop()
        await engine.dispose()
        if admin is not None:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


async def secret_for(org_id: str) -> str:
    assert org_id == "org_a"
    return SECRET


def sender_for(client: httpx.AsyncClient, outbox: WebhookOutbox, *, max_attempts: int = 3) -> WebhookSender:
    sender = WebhookSender(
        client=client, secret_for=secret_for, max_attempts=max_attempts, backoff_seconds=0.001
    )
    sender.add_region("us", outbox)
    sender.start()
    return sender


async def pending(outbox: WebhookOutbox) -> list[tuple[str, str, int]]:
    """The rows still to deliver (pending) or given up (abandoned); delivered rows are kept for a while."""
    async with outbox._engine.connect() as conn:  # noqa: SLF001 - the test reads the real table
        rows = await conn.execute(
            select(
                tables.webhook_deliveries.c.id,
                tables.webhook_deliveries.c.state,
                tables.webhook_deliveries.c.attempts,
            ).where(tables.webhook_deliveries.c.state != "delivered")
        )
        return [tuple(r) for r in rows]


async def deliver(
    receiver: Receiver, outbox: WebhookOutbox, *, max_attempts: int = 3, allow_private: bool = True
) -> None:
    async with webhook_client(timeout_seconds=5, allow_private=allow_private) as client:
        sender = sender_for(client, outbox, max_attempts=max_attempts)
        sender.send(
            region="us",
            org_id="org_a",
            job_id="job_us_1",
            url=receiver.url,
            event="job.succeeded",
            data={"id": "job_us_1"},
        )
        with anyio.fail_after(5):
            while not any(state == "abandoned" for _, state, _ in await pending(outbox)) and (
                not receiver.requests or await pending(outbox)
            ):
                await asyncio.sleep(0.01)
        await sender.aclose()


@pytest.mark.anyio
async def test_webhook_sender_delivers_signed_event(serve: Receiver, outbox: WebhookOutbox) -> None:
    await deliver(serve, outbox)

    [received] = serve.requests
    assert (
        json.loads(received.body),
        verify(SECRET, received.headers, received.body),
        received.headers["content-type"],
    ) == ({"type": "job.succeeded", "data": {"id": "job_us_1"}}, True, "application/json")


@pytest.mark.anyio
async def test_webhook_sender_retries_with_same_message_id_after_server_error(
    serve: Receiver, outbox: WebhookOutbox
) -> None:
    serve.statuses = [500, 200]

    await deliver(serve, outbox)

    assert ([r.body for r in serve.requests], len({r.headers["webhook-id"] for r in serve.requests})) == (
        [serve.requests[0].body] * 2,
        1,
    )


@pytest.mark.anyio
async def test_webhook_sender_gives_up_after_max_attempts(serve: Receiver, outbox: WebhookOutbox) -> None:
    serve.statuses = [503]

    await deliver(serve, outbox, max_attempts=3)

    assert len(serve.requests) == 3


@pytest.mark.anyio
async def test_webhook_sender_sends_nothing_to_private_address_unless_allowed(
    serve: Receiver, outbox: WebhookOutbox
) -> None:
    await deliver(serve, outbox, allow_private=False)

    assert serve.requests == []


# -- the outbox: deliveries outlive the sender


@pytest.mark.anyio
async def test_a_delivery_left_by_a_stopped_sender_is_sent_by_the_next_one_with_the_same_id(
    serve: Receiver, outbox: WebhookOutbox
) -> None:
    serve.statuses = [503]  # down until the restart
    async with webhook_client(timeout_seconds=5, allow_private=True) as client:
        first = sender_for(client, outbox, max_attempts=10)
        first.send(
            region="us", org_id="org_a", job_id="job_us_1", url=serve.url, event="job.succeeded", data={}
        )
        with anyio.fail_after(5):
            while len(serve.requests) < 2:
                await asyncio.sleep(0.01)
        await first.aclose()
        [(msg_id, state, attempts)] = await pending(outbox)
        assert (state, attempts >= 1) == ("pending", True)

        serve.statuses = [204]
        second = sender_for(client, outbox, max_attempts=10)  # a restart: nothing in memory, the row remains
        with anyio.fail_after(5):
            while await pending(outbox):
                await asyncio.sleep(0.01)
        await second.aclose()
    assert {r.headers["webhook-id"] for r in serve.requests} == {msg_id}
    assert serve.requests[-1].body == b'{"type":"job.succeeded","data":{}}'


@pytest.mark.anyio
async def test_the_same_event_of_a_job_is_queued_once_and_sealed_at_rest(outbox: WebhookOutbox) -> None:
    sender = WebhookSender(
        client=httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(204))),
        secret_for=secret_for,
        max_attempts=3,
        backoff_seconds=1,
    )
    sender.add_region("us", outbox)  # not started: rows stay queued
    for _ in range(2):
        sender.send(
            region="us",
            org_id="org_a",
            job_id="job_us_7",
            url="https://93.184.216.34/hook",
            event="job.succeeded",
            data={"id": "job_us_7", "canary": "sealed-canary"},
        )
    await sender.aclose()
    async with outbox._engine.connect() as conn:  # noqa: SLF001 - the test reads the real table
        rows = (await conn.execute(select(tables.webhook_deliveries))).all()
    assert len(rows) == 1
    assert b"sealed-canary" not in rows[0].body and b"job_us_7" not in rows[0].body
    assert rows[0].id == delivery_id("job_us_7", "job.succeeded")


@pytest.mark.anyio
async def test_a_job_that_ended_without_its_delivery_row_gets_one_at_start(
    serve: Receiver, outbox: WebhookOutbox
) -> None:
    """A crash between the commit of a job's outcome and the commit of its delivery: the next start finds it."""
    now = time.time()
    row = dict(
        task="chat",
        model="echo-1",
        priority="interactive",
        attempts=1,
        fence=1,
        crashed_workers="[]",
        created_at=now - 5,
        deadline_at=now + 600,
        finished_at=now - 1,
        org_id="org_a",
    )
    await outbox._writer.write(  # noqa: SLF001 - the test writes the real jobs table
        lambda conn: conn.execute(
            tables.jobs.insert(),
            [
                {**row, "id": "job_us_crashed", "state": "succeeded", "webhook_url": serve.url},
                {**row, "id": "job_us_nohook", "state": "succeeded", "webhook_url": None},
                {**row, "id": "job_us_running", "state": "running", "webhook_url": serve.url},
                {
                    **row,
                    "id": "job_us_old",
                    "state": "failed",
                    "webhook_url": serve.url,
                    "finished_at": now - 9000,
                },
            ],
        )
    )
    async with webhook_client(timeout_seconds=5, allow_private=True) as client:
        sender = sender_for(client, outbox)
        with anyio.fail_after(5):
            while not serve.requests:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        await sender.aclose()
    [received] = serve.requests
    assert json.loads(received.body)["data"] == {
        "id": "job_us_crashed",
        "status": "succeeded",
        "task": "chat",
        "model": "echo-1",
    }
    assert received.headers["webhook-id"] == delivery_id("job_us_crashed", "job.succeeded")
