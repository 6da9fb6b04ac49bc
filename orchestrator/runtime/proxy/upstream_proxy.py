"""The forward proxy, if any, between the adapter proxy and its endpoint: ``https_proxy``, ``http_proxy``,
``all_proxy`` and ``no_proxy`` read as curl, requests and httpx read them, and the ``CONNECT`` that opens a tunnel.

The variables are urllib's :func:`urllib.request.getproxies_environment` (what requests uses): a lower-case name
wins over the upper-case one, and an empty lower-case value turns the upper-case one off. ``no_proxy`` is matched
here: urllib's ``proxy_bypass_environment`` knows no IP ranges (``10.0.0.0/8``), no spaces between entries, no
``*.example.com``, and ``*`` only as the whole value.

An endpoint on loopback is always reached directly, as Go's net/http does: a proxy elsewhere cannot reach this
machine's loopback, and a harness container on host networking with a corporate proxy set would otherwise lose
its local endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
import re
import ssl
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import httptools

from orchestrator.schema.errors import InputError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_MAX_REPLY_BYTES = 64 * 1024
"""A proxy's answer to CONNECT longer than this (head and body) is not a proxy's answer."""


@dataclass(frozen=True, slots=True)
class UpstreamProxy:
    """A forward proxy: ``url`` as shown (password masked), where it listens, and the ``Proxy-Authorization``
    value its URL's credentials make (never in repr, logs or messages)."""

    url: str
    variable: str
    host: str
    port: int
    tls: bool
    authorization: str | None = field(default=None, repr=False)

    def authority(self) -> str:
        """``host:port`` as a request line writes it."""
        return _authority(self.host, self.port)


def proxy_for(scheme: str, host: str, port: int) -> UpstreamProxy | None:
    """The proxy the environment names for ``scheme://host:port``, or None to connect directly.

    Raises InputError (one line, password masked) when the proxy to use is not an http(s) proxy URL.
    """
    proxies = urllib.request.getproxies_environment()
    if is_loopback(host) or bypassed(host, port, proxies.get("no", "")):
        return None
    key = scheme if proxies.get(scheme) else "all"
    value = proxies.get(key)
    if not value:
        return None
    variable = f"{key}_proxy" if os.environ.get(f"{key}_proxy") else f"{key.upper()}_PROXY"
    return parse_proxy_url(value, variable=variable)


def proxy_for_url(url: str) -> UpstreamProxy | None:
    """:func:`proxy_for` an endpoint URL (None for one that is not an http(s) URL: the pool says what is wrong)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return proxy_for(parts.scheme, parts.hostname, port)


def parse_proxy_url(value: str, *, variable: str) -> UpstreamProxy:
    """``[http[s]://][user[:password]@]host[:port]`` (a URL without a scheme is an http proxy, as for curl and
    requests; the default port is 80, or 443 for https)."""
    text = value.strip()
    text = text if "://" in text else f"http://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as err:
        raise _bad_url(variable, value, str(err)) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InputError(f"{variable} names a {scheme}:// proxy ({masked(value)}): the adapter proxy reaches the "
                         "endpoint through http:// and https:// proxies only",
                         hint="give an http:// proxy, or add the endpoint's host to NO_PROXY")
    if not parts.hostname or any(ch.isspace() for ch in parts.hostname):
        raise _bad_url(variable, value, "a space in the host" if parts.hostname else "no host")
    port = port or (443 if scheme == "https" else 80)
    authorization, shown_user = None, ""
    if "@" in parts.netloc:  # RFC 7617: user-id ":" password, UTF-8
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        shown_user = (parts.username or "") + (":***@" if parts.password else "@")
    shown = f"{scheme}://{shown_user}{_authority(parts.hostname, port)}"
    return UpstreamProxy(shown, variable, parts.hostname, port, scheme == "https", authorization)


def _bad_url(variable: str, value: str, why: str) -> InputError:
    return InputError(f"{variable} is not a proxy URL ({why}): {masked(value)}",
                      hint="the form is http://[USER:PASSWORD@]HOST[:PORT]")


def masked(value: str) -> str:
    """A proxy URL with its user and password (everything before the host's ``@``) hidden."""
    head, at, host = value.rpartition("@")
    if not at:
        return value
    scheme, sep, _ = head.partition("://")
    return f"{scheme}{sep}***@{host}" if sep else f"***@{host}"


def is_loopback(host: str) -> bool:
    """``localhost`` (and names under it, RFC 6761) or a loopback address."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = _address(name)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address is not None and address.is_loopback


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``no_proxy`` keeps ``host:port`` away from the proxy.

    Entries are separated by commas or spaces; ``*`` matches everything; a name matches itself and the names
    under it (``example.com``, ``.example.com`` and ``*.example.com`` all match ``api.example.com``, not
    ``badexample.com``); an IP address or range (``10.0.0.0/8``, ``fd00::/8``) matches an endpoint given by an
    address in it (names are not resolved: the proxy resolves them); ``:PORT`` (``[v6]:PORT`` for IPv6)
    limits an entry to that port.
    """
    name = host.lower().rstrip(".")
    address = _address(name)
    for entry in re.split(r"[\s,]+", no_proxy.strip()):
        if entry == "*":
            return True
        pattern, entry_port = _split_port(entry.lower())
        if not pattern or entry_port not in (None, port):
            continue
        if address is not None:
            network = _network(pattern)
            if network is not None and address in network:
                return True
            continue
        suffix = pattern.lstrip("*").lstrip(".").rstrip(".")
        if suffix and (name == suffix or name.endswith(f".{suffix}")):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port``, ``[v6]``; a bare IPv6 address (more than one colon) has no port."""
    if entry.startswith("["):
        inside, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return inside, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        pattern, _, port = entry.partition(":")
        return (pattern, int(port)) if port.isdigit() else ("", None)  # a port that is not one matches nothing
    return entry, None


def _address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _network(pattern: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(pattern, strict=False)
    except ValueError:
        return None


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _ConnectReply(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT up to the end of its head."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.reply: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self.reason = ""
        self.size = 0

    def data_received(self, data: bytes) -> None:
        if self.reply.done():  # a refusal's body
            return
        self.size += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as err:
            self.reply.set_exception(ConnectionError(f"its answer to CONNECT is not HTTP: {err}"))
            return
        if not self.reply.done() and self.size > _MAX_REPLY_BYTES:
            self.reply.set_exception(ConnectionError(f"its answer to CONNECT is over {_MAX_REPLY_BYTES} bytes"))

    def on_status(self, status: bytes) -> None:
        self.reason += status.decode("latin-1")

    def on_headers_complete(self) -> None:
        if not self.reply.done():
            self.reply.set_result((self.parser.get_status_code(), self.reason))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.reply.done():
            self.reply.set_exception(ConnectionError(f"it closed the connection before answering CONNECT"
                                                     f"{f': {exc}' if exc else ''}"))


async def open_tunnel(proxy: UpstreamProxy, host: str, port: int,
                      tls: ssl.SSLContext | None) -> tuple[asyncio.Transport, int, str]:
    """A connection to ``proxy`` (over TLS with ``tls``) that has asked it for a tunnel to ``host:port``: the
    transport, and the status and reason the proxy answered (the tunnel is open on 200 only).

    Raises ConnectionError naming the proxy when it cannot be reached or does not answer CONNECT.
    """
    loop = asyncio.get_running_loop()
    try:
        transport, reply = await loop.create_connection(_ConnectReply, proxy.host, proxy.port, ssl=tls,
                                                        server_hostname=proxy.host if tls else None)
    except OSError as err:
        raise ConnectionError(f"the proxy {proxy.url} ({proxy.variable}) cannot be reached: {err}") from err
    try:
        target = _authority(host, port)
        lines = [f"CONNECT {target} HTTP/1.1", f"host: {target}"]
        if proxy.authorization:
            lines.append(f"proxy-authorization: {proxy.authorization}")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            status, reason = await reply.reply
        except ConnectionError as err:
            raise ConnectionError(f"the proxy {proxy.url} ({proxy.variable}): {err}") from None
    except BaseException:
        transport.close()
        raise
    return transport, status, reason.strip()


def refusal(proxy: UpstreamProxy, status: int, reason: str, target: str) -> str:
    """Why the proxy refused a request (a CONNECT to ``target``, or a request it answered 407)."""
    what = f"the proxy {proxy.url} ({proxy.variable}) answered HTTP {status} {reason}".rstrip()
    if status == 407:
        fix = ("check the user and password in it" if proxy.authorization else
               f"it asks for credentials: {proxy.variable}=http://USER:PASSWORD@{proxy.authority()}")
        return f"{what} to the request for {target}: {fix}"
    return f"{what} when asked for a tunnel to {target}"


def refusal_is_final(status: int) -> bool:
    """A refusal that asking again will not change (credentials, policy); 408, 429 and 5xx may pass."""
    return status < 500 and status not in (408, 429)
