"""Connection limits of `ferryman serve` over raw sockets: no client can hold memory or connections without bound.

Issue 19 defect 3: 20 connections sending unfinished 32 MB headers took the API from 162 MB to over 850 MB, and a
connection that sent nothing, or a byte a second, stayed open for good (docs/adr/0004-connection-limits.md).
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import FerrymanServer

HEADER_TIMEOUT_S = 3.0
KEEPALIVE_S = 2
PER_ADDRESS = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FerrymanServer]:
    server = FerrymanServer(
        tmp_path_factory.mktemp("limits"),
        env={
            "FERRYMAN_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_S),
            "FERRYMAN_KEEPALIVE_TIMEOUT_SECONDS": str(KEEPALIVE_S),
            "FERRYMAN_MAX_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS),
        },
    )
    try:
        yield server.start()
    finally:
        server.stop()


def _connect(server: FerrymanServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.settimeout(10)
    return sock


def _read_until_closed(sock: socket.socket, limit_s: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (b'' if it closes without a word)."""
    data, deadline = b"", time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except TimeoutError:
            raise AssertionError(f"the server kept the connection open; got {data[:200]!r}") from None
        if not chunk:
            return data
        data += chunk
    raise AssertionError("the server kept the connection open")


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _settle(server: FerrymanServer) -> None:
    """Let the server close what the last test left open (header timeouts), so connection counts start at 0."""
    time.sleep(0.2)


def test_20_unfinished_32mb_headers_are_refused_and_memory_stays_bounded(server: FerrymanServer) -> None:
    assert server.proc is not None
    before = _rss_bytes(server.proc.pid)
    socks, refused = [], 0
    piece = b"a" * 65536
    for _ in range(20):
        sock = _connect(server)
        socks.append(sock)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(32 * 1024 * 1024 // len(piece)):
                sock.sendall(piece)
        except OSError:
            refused += 1  # the server closed the connection under us: what we want
    peak = _rss_bytes(server.proc.pid)
    answers = [_read_until_closed(s) for s in socks]
    for sock in socks:
        sock.close()
    assert refused == 20, "every connection must be cut off long before 32 MB of header"
    assert all(a == b"" or a.startswith(b"HTTP/1.1 431 ") for a in answers), answers[0][:200]
    assert peak - before < 64 * 1024 * 1024, f"the server grew by {(peak - before) >> 20} MB"
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_a_complete_header_block_over_the_limit_gets_431(server: FerrymanServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: " + b"c" * 40_000 + b"\r\n\r\n")
        assert _read_until_closed(sock).startswith(b"HTTP/1.1 431 ")


def test_too_many_header_lines_get_431(server: FerrymanServer) -> None:
    lines = b"".join(b"X-H%d: v\r\n" % i for i in range(101))
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"header lines" in answer


def test_headers_sent_a_byte_at_a_time_are_cut_off_after_the_header_timeout(server: FerrymanServer) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"s" * 200
    started = time.monotonic()
    closed_after = None
    with _connect(server) as sock:
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - started
                break
            sock.settimeout(0.25)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            closed_after = time.monotonic() - started
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer
            break
    assert closed_after is not None, "a client trickling headers kept its connection for good"
    assert HEADER_TIMEOUT_S - 0.5 <= closed_after <= HEADER_TIMEOUT_S + 4


def test_a_connection_that_sends_nothing_is_closed(server: FerrymanServer) -> None:
    started = time.monotonic()
    with _connect(server) as sock:
        answer = _read_until_closed(sock, limit_s=HEADER_TIMEOUT_S + 5)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started >= HEADER_TIMEOUT_S - 0.5


def test_an_idle_keep_alive_connection_is_closed(server: FerrymanServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first or not first.endswith(b"}"):
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert _read_until_closed(sock, limit_s=KEEPALIVE_S + 5) == b""
    assert time.monotonic() - started >= KEEPALIVE_S - 0.5


def test_one_address_cannot_hold_more_than_its_connections(server: FerrymanServer) -> None:
    _settle(server)
    socks = [_connect(server) for _ in range(PER_ADDRESS + 4)]  # well within the header timeout
    try:
        ready, _, _ = select.select(socks, [], [], 1.0)
        time.sleep(0.3)
        ready, _, _ = select.select(socks, [], [], 0)
        refused = [i for i, sock in enumerate(socks) if sock in ready]
        assert refused == [PER_ADDRESS, PER_ADDRESS + 1, PER_ADDRESS + 2, PER_ADDRESS + 3]
        assert all(socks[i].recv(65536).startswith(b"HTTP/1.1 503 ") for i in refused)
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.3)
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200, "the cap lifts once they close"


def test_ordinary_clients_are_unaffected(server: FerrymanServer) -> None:
    headers = {"Cookie": "session=" + "x" * 8000, "Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, timeout=10, headers=headers) as api:
        for _ in range(20):  # one keep-alive connection, well within every limit
            assert api.get("/healthz").status_code == 200
        # a large body arrives in the same reads as the headers: it must not count as header bytes
        answer = api.post("/v1/jobs", content=b'{"task": "chat", "pad": "' + b"p" * 1_000_000 + b'"}')
        assert answer.status_code not in (408, 431, 503), answer.text[:200]
        assert answer.status_code < 500
    server.start_worker(region="us", worker_id="limits-us")  # a WebSocket upgrade still goes through
    assert server.connected_workers("us") == 1
