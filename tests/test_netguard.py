"""The URL rule (ferryman.netguard): internal targets refused, public ones accepted, connections pinned.

Issue 19 defect 4: 5 of 39 internal webhook targets were accepted (100.64.0.0/10 with 100.100.100.200, 2002::/16
embedding 127.0.0.1, fec0::/10), and the address checked was not the address connected to.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ferryman import netguard
from ferryman.errors import InvalidRequest
from tests.e2e.tls import make_local_ca

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


INTERNAL = [
    # IPv4: this network, private, shared (CGNAT, cloud metadata), loopback, link-local, special, test, multicast
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "10.255.255.254",
    "100.64.0.1",
    "100.100.100.200",
    "100.127.255.254",
    "127.0.0.1",
    "127.1.2.3",
    "169.254.169.254",
    "169.254.0.1",
    "172.16.0.1",
    "172.31.255.254",
    "192.0.0.1",
    "192.0.0.170",
    "192.0.2.1",
    "192.168.0.1",
    "192.168.255.254",
    "198.18.0.1",
    "198.19.255.254",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    # IPv6: unspecified, loopback, IPv4-mapped and -compatible, NAT64, discard, documentation, Teredo, 6to4,
    # unique local, link-local, site-local, multicast
    "::",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::1",
    "100::1",
    "2001:db8::1",
    "2001::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2002:7f00:1::1",
    "2002:a9fe:a9fe::1",
    "2002:c0a8:101::1",
    "2002:6440:1::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fec0::1",
    "feff::1",
    "ff02::1",
    "ff05::2",
]

PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001:81b::200e"]


def _url(address: str) -> str:
    return f"http://[{address}]/hook" if ":" in address else f"http://{address}/hook"


def test_the_table_holds_every_kind_the_attack_found_and_more() -> None:
    assert len(INTERNAL) >= 39 and len(set(INTERNAL)) == len(INTERNAL)


@pytest.mark.parametrize("address", INTERNAL)
async def test_an_internal_address_is_refused(address: str) -> None:
    with pytest.raises(InvalidRequest, match="not publicly routable"):
        await netguard.resolve_target(_url(address), what="webhook URL", allow_private=False)


@pytest.mark.parametrize("address", PUBLIC)
async def test_a_public_address_is_accepted(address: str) -> None:
    target = await netguard.resolve_target(_url(address), what="webhook URL", allow_private=False)
    assert target.address == address


@pytest.mark.parametrize(
    "host", ["localhost", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "[::ffff:7f00:1]"]
)
async def test_names_and_spellings_of_loopback_are_refused(host: str) -> None:
    with pytest.raises(InvalidRequest):
        await netguard.resolve_target(f"http://{host}:8000/x", what="webhook URL", allow_private=False)


async def test_a_name_with_one_internal_answer_among_public_ones_is_refused() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]

    with pytest.raises(InvalidRequest, match="not publicly routable"):
        await netguard.resolve_target(
            "https://hooks.example/x", what="webhook URL", allow_private=False, resolve=resolve
        )


# -- pinning: the connection goes to the address that was checked


class Rebinding:
    """A resolver test double that answers a public address first and loopback on every later question."""

    def __init__(self, first: str = "93.184.216.34") -> None:
        self.first, self.questions = first, 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.questions += 1
        return [self.first] if self.questions == 1 else ["127.0.0.1"]


async def test_a_rebinding_name_is_connected_to_at_the_address_that_was_checked() -> None:
    seen: list[httpx.Request] = []
    resolver = Rebinding()
    inner = httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(204))
    transport = netguard.PinnedTransport(allow_private=False, resolve=resolver, inner=inner)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.post("https://hooks.example/x?a=1", content=b"{}")
        assert response.status_code == 204
        with pytest.raises(InvalidRequest):  # the next request asks again: now loopback, refused
            await client.post("https://hooks.example/x?a=1", content=b"{}")
    [request] = seen
    assert (request.url.host, request.url.path, request.url.query) == ("93.184.216.34", "/x", b"a=1")
    assert request.headers["host"] == "hooks.example"
    assert request.extensions["sni_hostname"] == "hooks.example"
    assert resolver.questions == 2, "each request resolves exactly once"


async def test_check_at_submission_then_rebinding_at_delivery_reaches_nothing_internal() -> None:
    """The attack: the name is public when the job is submitted and loopback when the webhook is sent."""
    resolver = Rebinding()
    await netguard.resolve_target(
        "https://hooks.example/x", what="webhook URL", allow_private=False, resolve=resolver
    )
    seen: list[httpx.Request] = []
    inner = httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(204))
    transport = netguard.PinnedTransport(allow_private=False, resolve=resolver, inner=inner)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(InvalidRequest):
            await client.post("https://hooks.example/x", content=b"{}")
    assert seen == []


@pytest.fixture
async def local_http() -> AsyncIterator[tuple[int, list[bytes]]]:
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], heads
    finally:
        server.close()
        await server.wait_closed()


async def test_a_pinned_request_reaches_a_real_server_with_the_names_host_header(
    local_http: tuple[int, list[bytes]],
) -> None:
    port, heads = local_http

    async def resolve(host: str, port: int) -> list[str]:
        assert host == "hooks.example"
        return ["127.0.0.1"]

    transport = netguard.PinnedTransport(allow_private=True, resolve=resolve)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get(f"http://hooks.example:{port}/h")
    assert response.status_code == 204
    assert f"host: hooks.example:{port}".encode() in heads[0].lower()


# -- URLs inside job inputs


@pytest.mark.parametrize(
    "payload",
    [
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "http://169.254.169.254/"}}],
                }
            ]
        },
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": "http://[fec0::1]/a.png"}]}
            ]
        },
        {"audio_url": "http://100.100.100.200/latest/meta-data"},
        {"input": {"nested": [{"image_url": {"url": "file:///etc/passwd"}}]}},
    ],
)
async def test_an_input_naming_an_internal_image_or_audio_url_is_refused(payload: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        await netguard.check_input_urls(payload, allow_private=False)


async def test_inline_data_and_public_urls_in_inputs_pass() -> None:
    payload = {
        "messages": [
            {"role": "user", "content": "see http://127.0.0.1/ in text: not a URL we fetch"},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://93.184.216.34/cat.png"}},
                ],
            },
        ]
    }
    await netguard.check_input_urls(payload, allow_private=False)


async def test_a_host_that_does_not_resolve_at_delivery_is_a_retryable_connect_error() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        raise OSError("temporary failure in name resolution")

    transport = netguard.PinnedTransport(allow_private=False, resolve=resolve)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError, match="does not resolve"):
            await client.post("https://hooks.example/x", content=b"{}")


async def test_a_pinned_https_request_checks_the_certificate_against_the_name(tmp_path: Path) -> None:
    """The connection goes to the pinned IP, but TLS (SNI and the certificate check) uses the URL's host."""
    ca = make_local_ca(tmp_path)  # a certificate for the name `localhost`
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(ca.cert_file, ca.key_file)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    trust = ssl.create_default_context(cafile=str(ca.ca_file))
    inner = httpx.AsyncHTTPTransport(verify=trust, limits=httpx.Limits(max_keepalive_connections=0))
    transport = netguard.PinnedTransport(allow_private=True, resolve=resolve, inner=inner)
    try:
        async with httpx.AsyncClient(transport=transport) as client:
            assert (await client.get(f"https://localhost:{port}/h")).status_code == 204
            with pytest.raises(httpx.ConnectError, match="certificate|hostname"):
                await client.get(f"https://impostor.example:{port}/h")
    finally:
        server.close()
        await server.wait_closed()
