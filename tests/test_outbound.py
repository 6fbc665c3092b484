"""Outbound requests to client-supplied URLs: every connection is address-checked.

All traffic stays on loopback: local servers on 127.0.0.1/127.0.0.2/::1, and every
non-loopback target is refused by the policy before a socket is opened (a tripwire
policy fails the test instead of letting a connection through).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import httpcore
import httpx
import pytest

from workflow_service.outbound import (
    AddressRefused,
    FetchFailed,
    FetchTooLarge,
    GuardedBackend,
    UnsupportedURL,
    address_refusal,
    fetch_to_file,
    outbound_client,
    validate_public_url,
)

IPAddress = IPv4Address | IPv6Address
Route = Callable[[asyncio.StreamWriter], Awaitable[None]]


def respond(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Route:
    async def route(writer: asyncio.StreamWriter) -> None:
        head = {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
        lines = [f"HTTP/1.1 {status} X", *(f"{k}: {v}" for k, v in head.items()), "", ""]
        writer.write("\r\n".join(lines).encode() + body)
        await writer.drain()

    return route


def endless(*, chunked: bool) -> Route:
    """A body with no Content-Length that goes on (up to 8 MiB) until the client leaves."""

    async def route(writer: asyncio.StreamWriter) -> None:
        framing = "Transfer-Encoding: chunked" if chunked else "Connection: close"
        writer.write(f"HTTP/1.1 200 OK\r\n{framing}\r\n\r\n".encode())
        block = b"x" * 1024
        for _ in range(8 * 1024):
            writer.write(b"400\r\n" + block + b"\r\n" if chunked else block)
            await writer.drain()

    return route


@dataclass
class LocalServer:
    """Minimal HTTP/1.1 on loopback: one request per connection, answered from `routes`."""

    routes: dict[str, Route]
    port: int = 0
    connections: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *header_lines = head.split("\r\n")
            _, target, _ = request_line.split(" ", 2)
            headers = dict(
                (name.lower(), value.strip())
                for name, value in (line.split(":", 1) for line in header_lines if line)
            )
            self.requests.append((target, headers))
            await self.routes.get(target, respond(404))(writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


Serve = Callable[..., Awaitable[LocalServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start LocalServers (skipping the test where the address cannot be bound)."""
    servers: list[asyncio.Server] = []

    async def start(
        routes: dict[str, Route], host: str = "127.0.0.1", *, also_ipv6: bool = False
    ) -> LocalServer:
        local = LocalServer(routes)
        try:
            server = await asyncio.start_server(local.handle, host, 0)
        except OSError as exc:
            pytest.skip(f"cannot listen on {host}: {exc}")
        servers.append(server)
        local.port = server.sockets[0].getsockname()[1]
        if also_ipv6:  # best effort: the same port on ::1, where IPv6 exists
            with contextlib.suppress(OSError):
                servers.append(await asyncio.start_server(local.handle, "::1", local.port))
        return local

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def tripwire(allowed: Callable[[IPAddress], bool]) -> Callable[[IPAddress], str | None]:
    """A policy allowing only loopback addresses `allowed` accepts; any other address the
    real policy would let through fails the test before a socket is opened."""

    def policy(ip: IPAddress) -> str | None:
        if not ip.is_loopback and address_refusal(ip) is None:
            pytest.fail(f"{ip} would have been contacted")
        return None if ip.is_loopback and allowed(ip) else address_refusal(ip) or "test policy"

    return policy


def client(
    *, allow_private: bool, address_policy: Callable[[IPAddress], str | None] | None = None
) -> httpx.AsyncClient:
    return outbound_client(allow_private=allow_private, timeout=5.0, address_policy=address_policy)


# --- address_refusal ----------------------------------------------------------------

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local (cloud metadata service)"),
    ("169.254.1.1", "link-local"),
    ("0.0.0.0", "unspecified"),  # noqa: S104
    ("0.1.2.3", "this network"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("192.0.0.9", "IETF protocol assignments"),
    ("192.0.0.170", "IETF protocol assignments"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.1", "documentation"),
    ("203.0.113.1", "documentation"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fc00::1", "private"),
    ("fd00:ec2::254", "private"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("2001:2::1", "benchmarking"),
    ("100::1", "discard-only"),
    ("4000::1", "reserved"),
    ("64:ff9b:1::a00:1", "local-use NAT64"),
    ("::ffff:127.0.0.1", "IPv4-mapped address embedding 127.0.0.1, which is loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped address embedding 169.254.169.254, which is link"),
    ("::ffff:10.0.0.1", "IPv4-mapped address embedding 10.0.0.1, which is private"),
    ("::ffff:0.0.0.0", "IPv4-mapped address embedding 0.0.0.0, which is unspecified"),
    ("::ffff:0:7f00:1", "IPv4-translated address embedding 127.0.0.1, which is loopback"),
    ("::127.0.0.1", "IPv4-compatible address embedding 127.0.0.1, which is loopback"),
    ("::a9fe:a9fe", "IPv4-compatible address embedding 169.254.169.254"),
    ("2002:7f00:1::1", "6to4 address embedding 127.0.0.1, which is loopback"),
    ("2002:c0a8:101::", "6to4 address embedding 192.168.1.1, which is private"),
    ("64:ff9b::7f00:1", "NAT64 address embedding 127.0.0.1, which is loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 address embedding 169.254.169.254"),
    # Teredo: server 65.54.227.120, client stored inverted (~127.0.0.1 = 80ff:fffe).
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo address embedding 127.0.0.1"),
    ("2001:0:0a00:0001:8000:63bf:f7f7:f7f7", "Teredo address embedding 10.0.0.1"),
    # Teredo with public server and client (8.8.8.8) is still not globally reachable.
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "not globally reachable"),
]
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "::8.8.8.8",
    "2002:808:808::1",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_address_refusal_refuses(address: str, reason: str) -> None:
    refusal = address_refusal(ip_address(address))
    assert refusal is not None
    assert reason in refusal


@pytest.mark.parametrize("address", ALLOWED)
def test_address_refusal_allows_public(address: str) -> None:
    assert address_refusal(ip_address(address)) is None


# --- connection-time refusal --------------------------------------------------------

# Hosts that reach 127.0.0.1. The legacy numeric forms are passed on by httpx as host
# names, and getaddrinfo (inet_aton) reads each as 127.0.0.1.
IPV4_LOOPBACK_URLS = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f.1:{port}/",
    "http://0x7f000001:{port}/",
    "http://017700000001:{port}/",
    "http://0177.1:{port}/",
    "http://127.1:{port}/",
    "http://127.0.1:{port}/",
]
LOOPBACK_URLS = [
    *IPV4_LOOPBACK_URLS,
    "http://[::1]:{port}/",
    "http://0.0.0.0:{port}/",  # Linux connects 0.0.0.0 to the local host
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
]


@pytest.mark.parametrize("template", LOOPBACK_URLS)
async def test_loopback_targets_are_refused_before_connecting(serve: Serve, template: str) -> None:
    local = await serve({"/": respond(200, b"hello")}, also_ipv6=True)
    url = template.format(port=local.port)
    async with client(allow_private=False) as http:
        with pytest.raises(AddressRefused) as refused:
            await http.get(url)
    assert not isinstance(refused.value, httpx.ConnectError)  # permanent: never retried
    assert httpx.URL(url).host in str(refused.value)
    assert local.connections == 0


async def test_refusal_names_host_address_and_reason(serve: Serve) -> None:
    local = await serve({"/": respond(200)})
    async with client(allow_private=False) as http:
        with pytest.raises(AddressRefused, match=r"'localhost' \(127\.0\.0\.1\): loopback"):
            await http.get(f"http://localhost:{local.port}/")


def test_octal_dotted_quad_is_rejected_by_httpx() -> None:
    # httpx validates four-part dotted hosts with ipaddress, which refuses leading zeros.
    with pytest.raises(httpx.InvalidURL):
        httpx.URL("http://0177.0.0.1/")


async def test_octal_dotted_quad_never_connects(serve: Serve) -> None:
    local = await serve({"/": respond(200)})
    async with client(allow_private=False) as http:
        with pytest.raises(httpx.InvalidURL):
            await http.get(f"http://0177.0.0.1:{local.port}/")
    assert local.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
    ],
)
async def test_non_loopback_private_targets_are_refused_without_traffic(url: str) -> None:
    started = time.monotonic()
    async with client(allow_private=False, address_policy=tripwire(lambda ip: True)) as http:
        with pytest.raises(AddressRefused):
            await http.get(url)
    assert time.monotonic() - started < 1.0  # no connect attempt, no timeout


async def test_default_policy_refuses_non_loopback_without_traffic() -> None:
    # No tripwire here: the literal is refused by address_refusal before any socket.
    async with client(allow_private=False) as http:
        with pytest.raises(AddressRefused, match="cloud metadata"):
            await http.get("http://169.254.169.254/latest/meta-data/")


@pytest.mark.parametrize("template", IPV4_LOOPBACK_URLS)
async def test_numeric_forms_reach_127_0_0_1_keeping_the_host_header(
    serve: Serve, template: str
) -> None:
    """What getaddrinfo made of each form, seen through a policy that records it."""
    local = await serve({"/": respond(200, b"hello")})
    seen: list[IPAddress] = []

    def record(ip: IPAddress) -> str | None:
        seen.append(ip)
        return None

    url = template.format(port=local.port)
    async with client(allow_private=False, address_policy=record) as http:
        response = await http.get(url)
    assert response.content == b"hello"
    assert seen == [IPv4Address("127.0.0.1")]
    assert local.requests[0][1]["host"] == httpx.URL(url).netloc.decode()


async def test_allow_private_reaches_loopback(serve: Serve) -> None:
    local = await serve({"/": respond(200, b"hello")})
    async with client(allow_private=True) as http:
        for url in (f"http://127.0.0.1:{local.port}/", f"http://localhost:{local.port}/"):
            assert (await http.get(url)).content == b"hello"
    assert local.connections == 2


def test_address_policy_conflicts_with_allow_private() -> None:
    with pytest.raises(ValueError, match="allow_private"):
        outbound_client(allow_private=True, timeout=1.0, address_policy=address_refusal)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/", "gopher://127.0.0.1/", "data:,x"]
)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_only_http_and_https_urls(url: str, allow_private: bool) -> None:
    async with client(allow_private=allow_private) as http:
        with pytest.raises(UnsupportedURL):
            await http.get(url)


async def test_tls_uses_the_host_name_not_the_checked_address(serve: Serve) -> None:
    """The TCP connection goes to 127.0.0.1, but SNI still says `localhost`."""
    server_names: list[str | None] = []

    def on_sni(_: ssl.SSLObject, name: str | None, __: ssl.SSLContext) -> int:
        server_names.append(name)
        return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE  # no certificate needed

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.sni_callback = on_sni
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        async with client(allow_private=False, address_policy=tripwire(lambda ip: True)) as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"https://localhost:{port}/")
    finally:
        server.close()
        await server.wait_closed()
    assert server_names == ["localhost"]


# --- redirects: each hop is a new connection, so each hop is checked -----------------


async def test_every_redirect_hop_is_checked(serve: Serve) -> None:
    second = await serve({"/secret": respond(200, b"secret")}, "127.0.0.2")
    first = await serve(
        {"/start": respond(302, headers={"Location": f"http://127.0.0.2:{second.port}/secret"})}
    )
    start = f"http://127.0.0.1:{first.port}/start"

    refuse_second = tripwire(lambda ip: ip != IPv4Address("127.0.0.2"))
    async with client(allow_private=False, address_policy=refuse_second) as http:
        with pytest.raises(AddressRefused, match=r"127\.0\.0\.2"):
            await http.get(start)
    assert first.paths == ["/start"]
    assert second.connections == 0

    # The same redirect is followed when the second address is allowed.
    async with client(allow_private=False, address_policy=tripwire(lambda ip: True)) as http:
        response = await http.get(start)
    assert response.content == b"secret"
    assert [r.status_code for r in response.history] == [302]
    assert second.paths == ["/secret"]


@pytest.mark.parametrize("location", ["file:///etc/passwd", "gopher://127.0.0.1:{port}/x"])
async def test_redirect_to_other_schemes_is_refused(serve: Serve, location: str) -> None:
    local = await serve({})
    local.routes["/start"] = respond(302, headers={"Location": location.format(port=local.port)})
    async with client(allow_private=True) as http:
        with pytest.raises(UnsupportedURL):
            await http.get(f"http://127.0.0.1:{local.port}/start")
    assert local.paths == ["/start"]


# --- the backend itself --------------------------------------------------------------


class FixedResolution(GuardedBackend):
    """The guarded backend with resolution pinned, to show how several addresses are
    treated (no local name resolves to more than one address everywhere)."""

    def __init__(self, addresses: list[str], policy: Callable[[IPAddress], str | None]) -> None:
        super().__init__(policy)
        self._addresses = [ip_address(a) for a in addresses]

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        return self._addresses


async def test_one_refused_address_refuses_the_host(serve: Serve) -> None:
    local = await serve({})
    backend = FixedResolution(["127.0.0.1", "10.0.0.1"], tripwire(lambda ip: True))
    with pytest.raises(AddressRefused, match=r"'multi\.example' \(10\.0\.0\.1\): private"):
        await backend.connect_tcp("multi.example", local.port)
    assert local.connections == 0


async def test_connects_to_the_next_checked_address_when_one_fails(serve: Serve) -> None:
    local = await serve({})  # listens on 127.0.0.1 only: 127.0.0.2 refuses the connection
    backend = FixedResolution(["127.0.0.2", "127.0.0.1"], tripwire(lambda ip: True))
    stream = await backend.connect_tcp("multi.example", local.port)
    try:
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", local.port)
    finally:
        await stream.aclose()


async def test_unresolvable_host_is_a_connect_error() -> None:
    with pytest.raises(httpcore.ConnectError, match="cannot resolve"):
        await GuardedBackend().connect_tcp("a" * 64 + ".example", 80)  # IDNA: label too long


async def test_unix_sockets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AddressRefused, match="Unix domain sockets"):
        await GuardedBackend(lambda ip: None).connect_unix_socket(str(tmp_path / "sock"))


# --- fetch_to_file -------------------------------------------------------------------


async def test_fetch_to_file_writes_the_body(serve: Serve, tmp_path: Path) -> None:
    body = os.urandom(200_000)
    local = await serve({"/input.glm": respond(200, body)})
    target = tmp_path / "input.glm"
    target.write_bytes(b"stale content, longer than nothing")
    async with client(allow_private=True) as http:
        size = await fetch_to_file(
            http, f"http://127.0.0.1:{local.port}/input.glm", target, max_bytes=len(body)
        )
    assert size == len(body) == target.stat().st_size
    assert target.read_bytes() == body
    assert local.requests[0][1]["accept-encoding"] == "identity"


async def test_fetch_to_file_follows_redirects(serve: Serve, tmp_path: Path) -> None:
    local = await serve({"/new": respond(200, b"moved")})
    local.routes["/old"] = respond(301, headers={"Location": "/new"})
    async with client(allow_private=True) as http:
        size = await fetch_to_file(http, f"http://127.0.0.1:{local.port}/old", tmp_path / "f", 10)
    assert size == 5
    assert (tmp_path / "f").read_bytes() == b"moved"


async def test_fetch_refuses_a_declared_length_over_the_cap(serve: Serve, tmp_path: Path) -> None:
    local = await serve({"/big": respond(200, b"x" * 5000)})
    target = tmp_path / "big"
    async with client(allow_private=True) as http:
        with pytest.raises(FetchTooLarge, match="4999 bytes"):
            await fetch_to_file(http, f"http://127.0.0.1:{local.port}/big", target, 4999)
    assert not target.exists()


@pytest.mark.parametrize("chunked", [False, True])
async def test_fetch_stops_an_undeclared_body_at_the_cap(
    serve: Serve, tmp_path: Path, chunked: bool
) -> None:
    local = await serve({"/endless": endless(chunked=chunked)})
    target = tmp_path / "endless"
    target.write_bytes(b"previous")
    started = time.monotonic()
    async with client(allow_private=True) as http:
        with pytest.raises(FetchTooLarge):
            await fetch_to_file(http, f"http://127.0.0.1:{local.port}/endless", target, 10_000)
    assert time.monotonic() - started < 2.0  # stopped early, not after 8 MiB
    assert not target.exists()


async def test_fetch_refuses_non_2xx(serve: Serve, tmp_path: Path) -> None:
    local = await serve({})
    target = tmp_path / "missing"
    async with client(allow_private=True) as http:
        with pytest.raises(FetchFailed, match="HTTP 404") as failed:
            await fetch_to_file(
                http, f"http://127.0.0.1:{local.port}/missing?signature=s3cr3t", target, 100
            )
    assert failed.value.status_code == 404
    assert "s3cr3t" not in str(failed.value)
    assert not target.exists()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "data:,x"])
async def test_fetch_refuses_other_schemes(tmp_path: Path, url: str) -> None:
    target = tmp_path / "f"
    async with client(allow_private=True) as http:
        with pytest.raises(UnsupportedURL):
            await fetch_to_file(http, url, target, 100)
    assert not target.exists()


async def test_fetch_refuses_private_addresses(serve: Serve, tmp_path: Path) -> None:
    local = await serve({"/": respond(200, b"hello")})
    target = tmp_path / "f"
    async with client(allow_private=False) as http:
        with pytest.raises(AddressRefused):
            await fetch_to_file(http, f"http://127.0.0.1:{local.port}/", target, 100)
    assert not target.exists()
    assert local.connections == 0


# --- validate_public_url -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/x",
        "https://example.com:8443/a/b?X-Amz-Signature=abc&x=1#frag",
        "http://127.0.0.1:8000/input.glm",
        "http://[::1]:8000/",
        "http://[::ffff:127.0.0.1]/",
        "https://bücher.example/datei",
        "http://1.2.3.4/",
        "http://host-9.example/",
        "https://example.com/" + "a" * (2000 - len("https://example.com/")),
    ],
)
def test_validate_public_url_accepts(url: str) -> None:
    assert validate_public_url(url) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "scheme"),
        ("example.com/x", "scheme"),
        ("//example.com/x", "scheme"),
        ("ftp://example.com/x", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("http://", "no host"),
        ("http:///x", "no host"),
        ("http://user:pw@example.com/", "user info"),
        ("http://user@example.com/", "user info"),
        ("http://exa mple.com/", "whitespace"),
        (" http://example.com/", "whitespace"),
        ("http://example.com/\n", "whitespace"),
        ("http://example.com/\x00", "control"),
        ("http://example.com/\x7f", "control"),
        ("http://example.com/\u202e", "control"),
        ("https://example.com/" + "a" * 1981, "longer than 2000"),
        ("http://example.com:0/", "port"),
        ("http://example.com:65536/", "port"),
        ("http://example.com:x/", "invalid URL"),
        ("http://[::1/", "invalid URL"),
        ("http://0177.0.0.1/", "invalid URL"),
        ("http://2130706433/", "numeric"),
        ("http://0x7f.1/", "numeric"),
        ("http://127.1/", "numeric"),
        ("http://127.0.0.1./", "numeric"),
        ("http://1.2.3.4.5/", "numeric"),
    ],
)
def test_validate_public_url_rejects(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_public_url(url)
