"""Client connections: one :class:`ClientConnection` per ``connect`` owner, kept up until
``disconnect``, with core's semantics (fixed reconnect delay, opt-in heartbeat) plus a handshake
timeout. Each attempt is a :class:`~websocket_worker.client_session.ClientSession` on a transport
from :mod:`.connector`.

Events per attempt: ``open``, ``message``s, ``close``; or ``error`` then ``close`` when the
attempt fails, the heartbeat times out, the server breaks the protocol or stops reading
(``write_limit``). ``disconnect`` ends with ``closed``.

Flow control: like a listener session, an open connection stops reading its socket while the
worker's :class:`~websocket_worker.flow.FlowControl` is paused, so TCP pushes back on the server
and the worker holds at most one read beyond the window.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

from websockets.exceptions import InvalidHandshake, InvalidHeader, InvalidMessage, InvalidURI
from websockets.uri import parse_uri

from .background import Background
from .client_session import ClientSession, HandshakeRejected, safe_url
from .connector import ProxyError, open_transport
from .flow import FlowControl
from .options import ClientOptions
from .shell import WriteBatch
from .tls import build_ssl_context

__all__ = [
    "DISCONNECT_TIMEOUT",
    "ClientConnection",
    "Clients",
    "describe_error",
    "safe_url",
]

#: Bound of ``disconnect``: closing handshake included.
DISCONNECT_TIMEOUT = 2.0

Emit = Callable[[list[Any]], None]
Log = Callable[[str, str], None]

logger = logging.getLogger("websocket_worker.clients")


def describe_error(exc: BaseException) -> str:
    """A short text for an ``error`` event: never a header value, payload or URL."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout during opening handshake"
    if isinstance(exc, HandshakeRejected):
        return str(exc)
    if isinstance(exc, ProxyError):
        return str(exc)
    if isinstance(exc, InvalidURI):
        return f"invalid URL: {exc.msg}"
    if isinstance(exc, InvalidHeader):
        return f"invalid {exc.name} header in the server's response"
    if isinstance(exc, InvalidMessage):
        return "invalid HTTP response from the server"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verify failed: {exc.verify_message}"
    if isinstance(exc, (OSError, InvalidHandshake)):
        return str(exc) or type(exc).__name__
    if isinstance(exc, ValueError):  # urllib on a bad port or host: its text quotes the URL
        return "invalid URL"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class ClientConnection:
    """One client connection, reconnecting until :meth:`stop`."""

    def __init__(
        self,
        owner: int,
        options: ClientOptions,
        emit: Emit,
        flow: FlowControl | None = None,
        log: Log | None = None,
        batch: WriteBatch | None = None,
    ) -> None:
        self.owner = owner
        self.options = options
        self._emit = emit
        self._flow = flow if flow is not None else FlowControl()
        self._batch = batch if batch is not None else WriteBatch()
        self._log = log or (lambda level, text: None)
        self._session: ClientSession | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        session = self._session
        return session is not None and session.is_open

    @property
    def running(self) -> bool:
        """Whether the connection loop still runs (connecting, open or waiting to reconnect)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def send(self, data: str | bytes) -> None:
        """Send one message if open; otherwise drop it (the bridge knows the state). Never
        waits: a server that stopped reading is dropped instead (``write_limit``)."""
        session = self._session
        if session is not None:
            session.send(data)

    async def stop(self, timeout: float = DISCONNECT_TIMEOUT) -> None:
        """Close with 1000 and stop reconnecting, within ``timeout``."""
        self._stopping = True
        task = self._task
        if task is None or task.done():
            return
        session = self._session
        if session is None or not session.is_open:  # nothing to close politely
            task.cancel()
        else:
            session.close(1000)  # the attempt sees the end, reports it and the loop stops
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            await asyncio.wait({task})

    # The connection loop.

    async def _run(self) -> None:
        while not self._stopping:
            await self._attempt()
            if self._stopping:
                break
            await asyncio.sleep(self.options.reconnect_delay)

    async def _attempt(self) -> None:
        owner = self.owner
        try:
            uri = parse_uri(self.options.url)
        except Exception as exc:
            self._failed(exc)
            return
        session = ClientSession(
            owner, uri, self.options, self._emit, self._flow, self._batch, self._log
        )
        self._session = session  # sends reach it as soon as it reports open
        try:
            try:
                await asyncio.wait_for(self._open(session, uri), self.options.handshake_timeout)
                code, reason = await asyncio.shield(session.ended)
            except asyncio.CancelledError:
                session.abort()
                raise
            except Exception as exc:
                session.abort()
                self._failed(exc)
                return
        finally:
            self._session = None
        self._emit(["close", owner, None, code, reason])

    def _failed(self, exc: Exception) -> None:
        """An attempt that did not open: ``error`` then ``close`` 1006, as core's ``ws``."""
        self._emit(["error", self.owner, None, describe_error(exc)])
        self._emit(["close", self.owner, None, 1006, ""])

    async def _open(self, session: ClientSession, uri: Any) -> None:
        options = self.options
        context = build_ssl_context(options.tls) if uri.secure else None
        servername = options.tls.servername if options.tls is not None else None
        await open_transport(
            session, uri.host, uri.port, ssl_context=context,
            server_hostname=servername, proxy=options.proxy,
        )  # fmt: skip
        await session.opened


class Clients:
    """Registry of client connections by owner."""

    def __init__(
        self,
        emit: Emit,
        flow: FlowControl | None = None,
        log: Log | None = None,
        batch: WriteBatch | None = None,
    ) -> None:
        self._emit = emit
        self._log = log
        #: The worker's flow control, shared by every connection.
        self.flow = flow if flow is not None else FlowControl()
        self._batch = batch if batch is not None else WriteBatch()
        self._connections: dict[int, ClientConnection] = {}
        self._background = Background()

    def __contains__(self, owner: object) -> bool:
        return owner in self._connections

    def get(self, owner: int) -> ClientConnection | None:
        return self._connections.get(owner)

    def connect(self, owner: int, options: Any) -> None:
        """Start a client connection; a second ``connect`` for a live owner is an error."""
        if owner in self._connections:
            raise ValueError(f"client {owner} is already connected")
        connection = ClientConnection(
            owner, ClientOptions.from_dict(options), self._emit, self.flow, self._log, self._batch
        )
        self._connections[owner] = connection
        connection.start()

    def disconnect(self, owner: int) -> None:
        """Stop the connection (close 1000), then emit ``closed``."""
        connection = self._connections.pop(owner, None)
        if connection is None:
            self._emit(["closed", owner])
            return
        self._background.spawn(self._disconnect(connection))

    async def _disconnect(self, connection: ClientConnection) -> None:
        try:
            await connection.stop()
        finally:
            self._emit(["closed", connection.owner])

    def send(self, owner: int, data: str | bytes) -> None:
        connection = self._connections.get(owner)
        if connection is not None:
            connection.send(data)

    async def aclose(self, timeout: float = DISCONNECT_TIMEOUT) -> None:
        """Stop every connection (worker shutdown)."""
        connections = list(self._connections.values())
        self._connections.clear()
        if connections:
            await asyncio.gather(*(c.stop(timeout) for c in connections))
        await self._background.finish(timeout)  # a disconnect under way

