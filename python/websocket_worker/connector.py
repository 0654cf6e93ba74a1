"""Opening the transport of a client connection: TCP, an HTTP CONNECT proxy, TLS.

:func:`open_transport` connects ``protocol`` to ``host:port``, through an ``http://`` proxy when
one is given (Node-RED's proxy settings, resolved by the bridge), with TLS for ``wss://``. Only
the opening of the connection is here; what travels over it is the protocol's business.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from typing import cast
from urllib.parse import unquote, urlsplit

__all__ = ["ProxyError", "open_transport"]

#: Longest proxy answer to CONNECT read.
MAX_PROXY_RESPONSE = 16 * 1024


class ProxyError(OSError):
    """The proxy could not be used or refused the tunnel (``status``: its HTTP status, if any)."""

    def __init__(self, text: str, status: int | None = None) -> None:
        super().__init__(text)
        self.status = status


class _Tunnel(asyncio.Protocol):
    """Asks a proxy for a tunnel and waits for its answer."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.answer = bytearray()
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self.answer += data
        end = self.answer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.answer) > MAX_PROXY_RESPONSE:
                self.done.set_exception(ProxyError("invalid proxy response: too long"))
            return
        head, rest = bytes(self.answer[:end]), bytes(self.answer[end + 4 :])
        parts = head.split(b"\r\n", 1)[0].split(b" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            self.done.set_exception(ProxyError("invalid proxy response"))
            return
        if status != 200:
            self.done.set_exception(ProxyError(f"proxy rejected connection: HTTP {status}", status))
            return
        if self.transport is not None:
            self.transport.pause_reading()  # what follows is the protocol's
        self.done.set_result(rest)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ProxyError("proxy closed the connection"))


def _connect_request(proxy: str, host: str, port: int) -> tuple[str, int, bytes]:
    """The proxy's address and the CONNECT request for ``host:port``."""
    parts = urlsplit(proxy)
    if parts.scheme != "http" or not parts.hostname:
        raise ProxyError(f"invalid proxy: only http:// proxies are supported, not {parts.scheme}")
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if parts.username is not None:
        user_info = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(user_info.encode()).decode())
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return parts.hostname, parts.port or 80, request


async def open_transport(
    protocol: asyncio.Protocol,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    proxy: str | None = None,
) -> asyncio.Transport:
    """Connect ``protocol`` to ``host:port`` and return its transport."""
    loop = asyncio.get_running_loop()
    if proxy is None:
        transport, _ = await loop.create_connection(
            lambda: protocol, host, port, ssl=ssl_context,
            server_hostname=(server_hostname or host) if ssl_context else None,
        )  # fmt: skip
        return transport
    proxy_host, proxy_port, request = _connect_request(proxy, host, port)
    tunnel = _Tunnel(request)
    transport, _ = await loop.create_connection(lambda: tunnel, proxy_host, proxy_port)
    try:
        rest = await tunnel.done
        if ssl_context is not None:
            wrapped = await loop.start_tls(
                transport, tunnel, ssl_context, server_hostname=server_hostname or host
            )
            if wrapped is None:
                raise ProxyError("TLS could not be started through the proxy")
            transport = wrapped
    except BaseException:
        transport.abort()
        raise
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    transport.resume_reading()
    if rest:
        protocol.data_received(rest)
    return transport
