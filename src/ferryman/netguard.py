"""The one rule for URLs users give us (webhooks, image and audio URLs): globally routable addresses only, pinned.

An address passes only when Python calls it global *and* it is none of the kinds the standard library still
calls global (multicast, IPv6 site-local `fec0::/10`, IPv4-compatible `::a.b.c.d`), *and* any IPv4 address it
embeds passes too: IPv4-mapped `::ffff:0:0/96`, NAT64 `64:ff9b::/96` (and the local-use `64:ff9b:1::/48`), 6to4
`2002::/16` and Teredo `2001::/32`. A host must resolve to passing addresses only; one bad answer refuses it.

Checking a name and then letting the HTTP client resolve it again would let DNS answer differently the second time
(rebinding). So the name is resolved once, checked, and the connection goes to that address: `PinnedTransport`
rewrites each request to the checked IP while keeping `Host` and the TLS server name (SNI and certificate
check) as the URL's hostname.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from ferryman.errors import InvalidRequest

MAX_URL_LENGTH = 2048

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_TEREDO = ipaddress.ip_network("2001::/32")


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (IP literals come back as themselves)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip in _TEREDO and ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def is_public(ip: IPAddress) -> bool:
    """True only for a globally routable unicast address that embeds no address that is not."""
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local or ip in _NAT64_LOCAL or ip in _IPV4_COMPATIBLE or ip in _TEREDO:
            return False
        return all(is_public(v4) for v4 in _embedded_ipv4(ip))
    return True


class HostUnresolvable(InvalidRequest):
    """The host did not resolve: at submission a bad URL, at delivery possibly a passing DNS failure."""


@dataclass(frozen=True, slots=True)
class Target:
    """A URL with the one address it was checked at; connect there and nowhere else."""

    url: str
    host: str
    port: int
    address: str


def _split(url: str, what: str) -> tuple[str, str, int]:
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRequest(f"{what} is longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"{what} must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise InvalidRequest(f"{what} must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidRequest(f"{what} has an invalid port") from None
    return parts.scheme, parts.hostname, port


async def resolve_target(
    url: str, *, what: str, allow_private: bool, resolve: Resolver = system_resolve
) -> Target:
    """Check `url` and resolve its host once; raise InvalidRequest unless every address is public.

    With `allow_private` (local development) any address passes, but the connection is still pinned.
    """
    _, host, port = _split(url, what)
    try:
        answers = await resolve(host, port)
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in answers]
    except (OSError, ValueError, UnicodeError):
        raise HostUnresolvable(f"{what}: host {host!r} does not resolve") from None
    if not addresses:
        raise HostUnresolvable(f"{what}: host {host!r} does not resolve")
    if not allow_private and not all(is_public(a) for a in addresses):
        raise InvalidRequest(
            f"{what} points at a private, loopback or link-local address, or another that is not publicly "
            "routable (shared, reserved, multicast, or one embedding such an address); use a public URL",
            details={"host": host},
        )
    return Target(url=url, host=host, port=port, address=str(addresses[0]))


def _user_urls(value: Any, depth: int = 0) -> Iterator[tuple[str, str]]:
    """(field, URL) for each image or audio URL in a job's input; data: URIs carry their content and pass."""
    if depth > 64:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("image_url", "audio_url"):
                url = item.get("url") if isinstance(item, dict) else item
                if isinstance(url, str) and not url.startswith("data:"):
                    yield key, url
            if isinstance(item, dict | list):
                yield from _user_urls(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _user_urls(item, depth + 1)


async def check_input_urls(
    payload: dict[str, Any], *, allow_private: bool, resolve: Resolver = system_resolve
) -> None:
    """Refuse a job whose input names an image or audio URL a backend would fetch from an internal address."""
    for field, url in _user_urls(payload):
        await resolve_target(url, what=f"{field} URL", allow_private=allow_private, resolve=resolve)


class PinnedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that checks each request's URL, resolves it once and connects to that address only.

    `Host` stays the URL's host (httpx set it from the URL) and so does the TLS server name, through httpcore's
    `sni_hostname` extension, so certificates are still checked against the name. Connections are not kept alive:
    two names on one address must not share a TLS connection made for one of them.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        what: str = "URL",
        resolve: Resolver = system_resolve,
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._allow_private, self._what, self._resolve = allow_private, what, resolve
        self._inner = inner or httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Raises InvalidRequest for a URL that does not pass, httpx.ConnectError when its host does not resolve."""
        try:
            target = await resolve_target(
                str(request.url), what=self._what, allow_private=self._allow_private, resolve=self._resolve
            )
        except HostUnresolvable as exc:
            raise httpx.ConnectError(exc.message, request=request) from None
        request.url = request.url.copy_with(host=target.address)
        if request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": target.host}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
