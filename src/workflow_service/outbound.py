"""Outbound HTTP to URLs that clients supply (run inputs, state callbacks).

A client-supplied URL must never become a way to reach the service's own network
(loopback, private ranges, cloud metadata). The check that matters runs when a TCP
connection is opened: `GuardedBackend` resolves the host itself, refuses it if any
resolved address is refused, and connects to the checked address, so there is no
window between the check and the connection (DNS rebinding), and every redirect hop
is checked because each hop opens its own connection. `validate_public_url` is only
a cheap syntactic pre-check for the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import unicodedata
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from pathlib import Path
from typing import TypeAlias

import anyio
import httpcore
import httpx

IPAddress: TypeAlias = IPv4Address | IPv6Address
AddressPolicy: TypeAlias = Callable[[IPAddress], str | None]

ALLOWED_SCHEMES = frozenset({"http", "https"})
MAX_URL_LENGTH = 2000

_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


class AddressRefused(httpx.TransportError):
    """The target host resolves to an address outbound requests may not reach.

    Deliberately not an `httpx.ConnectError`: the refusal is permanent, and callers
    that retry connection errors must not retry it.
    """

    def __init__(self, host: str, reason: str, address: IPAddress | None = None) -> None:
        target = repr(host) if address is None or str(address) == host else f"{host!r} ({address})"
        super().__init__(f"refused to connect to {target}: {reason}")
        self.host = host
        self.address = address
        self.reason = reason


class UnsupportedURL(httpx.UnsupportedProtocol):
    """A URL (first request or redirect hop) that is not an absolute http(s) URL."""


class FetchFailed(Exception):
    """The server answered a fetch with a non-2xx status."""

    def __init__(self, status_code: int, url: httpx.URL) -> None:
        super().__init__(f"GET {_redacted(url)} answered HTTP {status_code}")
        self.status_code = status_code


class FetchTooLarge(Exception):
    """A fetched body exceeds the size cap."""

    def __init__(self, url: httpx.URL, max_bytes: int) -> None:
        super().__init__(f"GET {_redacted(url)}: body larger than {max_bytes} bytes")
        self.max_bytes = max_bytes


def _redacted(url: httpx.URL) -> str:
    """The URL without user info, query or fragment: presigned URLs carry secrets there."""
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


# Ranges named for a clear message. Anything else that is not globally reachable
# (per `ipaddress.is_global`, which lags IANA in older Pythons) is refused afterwards.
_IPV4_RANGES: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(network), reason)
    for network, reason in (
        ("0.0.0.0/32", "unspecified"),
        ("0.0.0.0/8", "'this network' (0.0.0.0/8)"),
        ("127.0.0.0/8", "loopback"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("169.254.169.254/32", "link-local (cloud metadata service)"),
        ("169.254.0.0/16", "link-local"),
        ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("198.18.0.0/15", "benchmarking"),
        ("192.0.2.0/24", "documentation"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)
_IPV6_RANGES: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(network), reason)
    for network, reason in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fc00::/7", "private (unique local)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("2001:2::/48", "benchmarking"),
        ("100::/64", "discard-only"),
        ("64:ff9b:1::/48", "local-use NAT64"),
    )
)
_IPV4_TRANSLATED = IPv6Network("::ffff:0:0:0/96")
_IPV4_COMPATIBLE = IPv6Network("::/96")
_NAT64 = IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: IPv6Address) -> tuple[str, tuple[IPv4Address, ...]] | None:
    """The IPv4 addresses an IPv6 address stands for, with the name of the form."""
    low32 = IPv4Address(int(ip) & 0xFFFF_FFFF)
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", (ip.ipv4_mapped,)
    if ip in _IPV4_TRANSLATED:
        return "IPv4-translated", (low32,)
    if ip in _IPV4_COMPATIBLE:
        return "IPv4-compatible", (low32,)
    if ip in _NAT64:
        return "NAT64", (low32,)
    if ip.sixtofour is not None:
        return "6to4", (ip.sixtofour,)
    if ip.teredo is not None:
        return "Teredo", ip.teredo
    return None


def address_refusal(ip: IPAddress) -> str | None:
    """Why outbound requests may not contact `ip`, or None when they may."""
    ranges: Iterable[tuple[IPv4Network | IPv6Network, str]] = (
        _IPV4_RANGES if isinstance(ip, IPv4Address) else _IPV6_RANGES
    )
    for network, label in ranges:
        if ip in network:
            return label
    if isinstance(ip, IPv6Address) and (embedded := _embedded_ipv4(ip)) is not None:
        form, ipv4s = embedded
        for ipv4 in ipv4s:
            if (reason := address_refusal(ipv4)) is not None:
                return f"{form} address embedding {ipv4}, which is {reason}"
        # The other forms reach the embedded IPv4 address, which passed. Teredo
        # (2001::/32) is not globally reachable whatever it embeds: fall through.
        if form != "Teredo":
            return None
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally reachable"
    return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses `policy` accepts.

    `connect_tcp` resolves the host, refuses it if *any* address is refused (a name
    with one private address is not trusted), then connects to a checked address
    instead of the name, so DNS cannot answer differently between check and connect.
    Addresses are tried in resolver order; a refused connection moves on to the next.
    httpcore opens a connection per origin and every redirect hop goes through the
    pool, so each hop is checked here. TLS still uses the original host name: httpcore
    calls `stream.start_tls(server_hostname=<origin host>)` after `connect_tcp`
    (httpcore/_async/connection.py), and httpx builds the Host header from the URL.
    Asyncio only (resolution uses the running asyncio loop).
    """

    def __init__(self, policy: AddressPolicy = address_refusal) -> None:
        self._policy = policy
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._resolve(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from exc
        for address in addresses:
            if (reason := self._policy(address)) is not None:
                raise AddressRefused(host, reason, address)
        *others, last = addresses
        for address in others:
            with contextlib.suppress(httpcore.ConnectError):
                return await self._backend.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
        return await self._backend.connect_tcp(
            str(last), port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused(path, "Unix domain sockets are never contacted")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address `host` resolves to (numeric forms such as 127.1 included)."""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        return list(dict.fromkeys(ip_address(info[4][0]) for info in infos))


class _OutboundTransport(httpx.AsyncHTTPTransport):
    """httpx's transport, refusing non-http(s) URLs and optionally on a custom backend.

    httpx 0.28 has no `network_backend` parameter, so after the normal set-up the
    httpcore pool is replaced by an equivalent one (same limits and TLS defaults) that
    uses `backend`. Only the private `_pool` attribute is touched; request conversion,
    exception mapping and response streaming stay httpx's own code.
    """

    def __init__(self, backend: httpcore.AsyncNetworkBackend | None) -> None:
        super().__init__(limits=_LIMITS)
        if backend is not None:
            self._pool = httpcore.AsyncConnectionPool(
                ssl_context=httpx.create_ssl_context(),
                max_connections=_LIMITS.max_connections,
                max_keepalive_connections=_LIMITS.max_keepalive_connections,
                keepalive_expiry=_LIMITS.keepalive_expiry,
                network_backend=backend,
            )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # Redirect hops come through here too, so `Location: file:///…` is refused.
        _require_http(request.url, request)
        return await super().handle_async_request(request)


def _require_http(url: httpx.URL, request: httpx.Request | None = None) -> None:
    """Refuse anything but an absolute http(s) URL.

    httpx's client turns host-less URLs such as ``file:///etc/passwd`` into bare paths
    before the transport sees them, so those arrive here without a scheme.
    """
    if url.scheme not in ALLOWED_SCHEMES or not url.host:
        raise UnsupportedURL(
            f"refused {_redacted(url)!r}: only absolute http and https URLs are fetched",
            request=request,
        )


def outbound_client(
    *,
    allow_private: bool,
    timeout: float,
    follow_redirects: bool = True,
    max_redirects: int = 5,
    address_policy: AddressPolicy | None = None,
) -> httpx.AsyncClient:
    """A client for client-supplied URLs: http(s) only, every connection address-checked.

    `allow_private` (INPUT_URL_ALLOW_PRIVATE) turns the address check off; otherwise
    `address_policy` (default `address_refusal`) decides. Redirects (up to
    `max_redirects`) are checked like the first request: each hop's URL must be http(s)
    and each hop opens its own connection through the guarded backend. `trust_env=False`
    so proxy variables and .netrc cannot route or authenticate these requests.
    """
    if allow_private and address_policy is not None:
        raise ValueError("address_policy has no effect when allow_private is set")
    backend = None if allow_private else GuardedBackend(address_policy or address_refusal)
    return httpx.AsyncClient(
        transport=_OutboundTransport(backend),
        timeout=timeout,
        follow_redirects=follow_redirects,
        max_redirects=max_redirects,
        trust_env=False,
    )


# A last label that is a number (decimal, octal or 0x-hex) makes resolvers read the
# whole host as an IPv4 address in some legacy form (2130706433, 0x7f.1, 127.1).
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)


def validate_public_url(url: str) -> str:
    """`url` unchanged if it is syntactically acceptable as an outbound URL.

    Runs on the request path, so it never resolves DNS; the address check happens when
    the worker connects. Refused: over MAX_URL_LENGTH characters, whitespace or control
    or format characters, a scheme other than http/https, no host, an invalid port,
    any user info (credentials would be stored with the run and logged; use a
    presigned URL instead), and numeric hosts other than a dotted-quad IPv4 address.
    """
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or unicodedata.category(ch) in {"Cc", "Cf"} for ch in url):
        raise ValueError("URL contains whitespace or control characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"invalid URL: {exc}") from None
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise ValueError("URL scheme must be http or https")
    if not parsed.host:
        raise ValueError("URL has no host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ValueError("URL port is out of range")
    if parsed.userinfo:
        raise ValueError("URL must not contain user info (credentials)")
    host = parsed.host
    last_label = host.rstrip(".").rsplit(".", 1)[-1]
    if ":" not in host and _NUMERIC_LABEL.fullmatch(last_label) and not _is_dotted_quad(host):
        raise ValueError("URL host is a numeric address in a non-standard form")
    return url


def _is_dotted_quad(host: str) -> bool:
    try:
        return isinstance(ip_address(host), IPv4Address)
    except ValueError:
        return False


async def fetch_to_file(client: httpx.AsyncClient, url: str, path: Path, max_bytes: int) -> int:
    """Stream a GET of `url` into `path` (created or truncated); the bytes written.

    Raises FetchFailed on a non-2xx answer and FetchTooLarge as soon as the body
    exceeds `max_bytes` (a declared Content-Length is checked first but the count of
    bytes received is what decides). On any failure `path` is removed.
    It asks for no content encoding (`Accept-Encoding: identity`) so a small compressed
    body cannot expand in memory; if a server compresses anyway, the cap applies to the
    decoded bytes, which are what is written.
    """
    written = 0
    try:
        _require_http(httpx.URL(url))
        async with client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
            if not response.is_success:
                raise FetchFailed(response.status_code, response.url)
            declared = response.headers.get("Content-Length")
            if (
                declared is not None
                and "Content-Encoding" not in response.headers
                and int(declared) > max_bytes
            ):
                raise FetchTooLarge(response.url, max_bytes)
            async with await anyio.open_file(path, "wb") as out:
                async for chunk in response.aiter_bytes():
                    written += len(chunk)
                    if written > max_bytes:
                        raise FetchTooLarge(response.url, max_bytes)
                    await out.write(chunk)
    except BaseException:
        # Synchronous on purpose: an await here could be cancelled again before it runs.
        path.unlink(missing_ok=True)  # noqa: ASYNC240
        raise
    return written
