"""Client connections: one :class:`ClientConnection` per ``connect`` owner, kept up until
``disconnect``, with core's semantics (fixed reconnect delay, opt-in heartbeat) plus a handshake
timeout. Built on ``websockets.asyncio.client.connect``.

Events per attempt: ``open``, ``message``s, ``close``; or ``error`` then ``close`` when the
attempt fails, the heartbeat times out or the server stops reading (``write_limit``).
``disconnect`` ends with ``closed``.

Flow control: while the worker's :class:`~websocket_worker.flow.FlowControl` is paused a
connection takes no message from its websockets connection, whose queue then fills (``max_queue``)
and stops reading the socket, so TCP pushes back on the server. The heartbeat does not count
pongs that could not be read meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection as WebSocketClientConnection
from websockets.asyncio.client import connect
from websockets.asyncio.server import broadcast
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidHeader,
    InvalidMessage,
    InvalidProxy,
    InvalidProxyStatus,
    InvalidStatus,
    InvalidURI,
)
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import OPEN
from websockets.typing import Subprotocol

from .flow import FlowControl
from .options import ClientOptions
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
#: Seconds websockets waits for the server's close frame / TCP close before dropping it.
CLOSE_TIMEOUT = 1.5

Emit = Callable[[list[Any]], None]
Log = Callable[[str, str], None]

logger = logging.getLogger("websocket_worker.clients")


def safe_url(url: str) -> str:
    """``url`` for a log: scheme, host, port and path; no credentials, query or fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "client connection"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def describe_error(exc: BaseException) -> str:
    """A short text for an ``error`` event: never a header value, payload or URL."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout during opening handshake"
    if isinstance(exc, InvalidStatus):
        return f"server rejected WebSocket connection: HTTP {exc.response.status_code}"
    if isinstance(exc, InvalidProxyStatus):
        return f"proxy rejected connection: HTTP {exc.response.status_code}"
    if isinstance(exc, InvalidURI):
        return f"invalid URL: {exc.msg}"
    if isinstance(exc, InvalidProxy):
        return f"invalid proxy: {exc.msg}"
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


class _WatchedConnection(WebSocketClientConnection):
    """websockets' client connection noting when a ping or pong arrives (heartbeat)."""

    awaiting_heartbeat = False

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.opcode in (Opcode.PING, Opcode.PONG):
            self.awaiting_heartbeat = False
        super().process_event(event)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # a ping never answered ends with ConnectionClosed: nobody awaits it


class ClientConnection:
    """One client connection, reconnecting until :meth:`stop`."""

    def __init__(
        self,
        owner: int,
        options: ClientOptions,
        emit: Emit,
        flow: FlowControl | None = None,
        log: Log | None = None,
    ) -> None:
        self.owner = owner
        self.options = options
        self._emit = emit
        self._flow = flow if flow is not None else FlowControl()
        self._log = log or (lambda level, text: None)
        self._websocket: _WatchedConnection | None = None
        self._stopping = False
        self._stop_requested: asyncio.Future[None] | None = None
        self._failure: str | None = None  # the error of the connection being served
        self._task: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        ws = self._websocket
        return ws is not None and ws.state is OPEN

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def send(self, data: str | bytes) -> None:
        """Send one message if open; otherwise drop it (the bridge knows the state).

        Never waits: when what earlier sends left unsent is over ``write_limit``, the server is
        not reading and the connection is dropped instead (then retried after the delay).
        """
        ws = self._websocket
        if ws is None or ws.state is not OPEN:
            return
        transport = ws.transport
        if transport.is_closing():
            return
        limit = self.options.write_limit
        if limit is not None:
            queued = transport.get_write_buffer_size()
            if queued > limit:
                self._failure = f"outgoing buffer over {limit} bytes: the peer is not reading"
                self._log(
                    "warn",
                    f"{safe_url(self.options.url)}: the server stopped reading; "
                    f"dropped the connection after {queued} bytes queued",
                )
                transport.abort()  # the receive loop reports error and close 1006
                return
        broadcast([ws], data)

    async def stop(self, timeout: float = DISCONNECT_TIMEOUT) -> None:
        """Close with 1000 and stop reconnecting, within ``timeout``."""
        self._stopping = True
        if self._stop_requested is not None and not self._stop_requested.done():
            self._stop_requested.set_result(None)  # a paused receive loop reads the close
        task = self._task
        if task is None or task.done():
            return
        ws = self._websocket
        if ws is None:  # connecting or waiting to reconnect: nothing to close politely
            task.cancel()
        else:
            # The receive loop sees the close, reports it and ends.
            close = asyncio.ensure_future(ws.close(CloseCode.NORMAL_CLOSURE))
            close.add_done_callback(_retrieve)
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            await asyncio.wait({task})

    # The connection loop.

    def _connect_kwargs(self) -> dict[str, Any]:
        options = self.options
        headers = [(n, v) for n, v in options.headers if n.lower() != "user-agent"]
        kwargs: dict[str, Any] = {
            "subprotocols": [Subprotocol(name) for name in options.subprotocols] or None,
            "additional_headers": headers,
            "compression": "deflate" if options.compression else None,
            "open_timeout": options.handshake_timeout,
            "ping_interval": None,
            "ping_timeout": None,
            "close_timeout": CLOSE_TIMEOUT,
            "max_size": options.max_size,
            # Never the environment's proxy: the bridge resolves Node-RED's proxy settings.
            "proxy": options.proxy or None,
            "create_connection": _WatchedConnection,
        }
        for name, value in options.headers:
            if name.lower() == "user-agent":
                kwargs["user_agent_header"] = value
        if options.url.lower().startswith("wss:"):
            kwargs["ssl"] = build_ssl_context(options.tls)
            if options.tls is not None and options.tls.servername:
                kwargs["server_hostname"] = options.tls.servername
        return kwargs

    async def _run(self) -> None:
        while not self._stopping:
            try:
                ws = await connect(self.options.url, **self._connect_kwargs())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._emit(["error", self.owner, None, describe_error(exc)])
                self._emit(["close", self.owner, None, int(CloseCode.ABNORMAL_CLOSURE), ""])
            else:
                assert isinstance(ws, _WatchedConnection)
                await self._serve(ws)
            if self._stopping:
                break
            await asyncio.sleep(self.options.reconnect_delay)

    async def _serve(self, ws: _WatchedConnection) -> None:
        self._websocket = ws
        self._failure = None
        self._emit(["open", self.owner, None, {"subprotocol": ws.subprotocol}])
        heartbeat = None
        if self.options.heartbeat:
            heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(ws))
        flow = self._flow
        owner = self.owner
        emit = self._emit
        try:
            while True:
                if flow.paused:
                    await self._flow_paused(ws)
                message = await ws.recv()
                emit(["message", owner, None, message])
                flow.count(len(message))  # str: characters, not UTF-8 bytes
        except ConnectionClosed:
            pass
        finally:
            self._websocket = None
            if heartbeat is not None:
                heartbeat.cancel()
            if ws.close_code is None:  # cancelled (disconnect timed out): drop it
                ws.transport.abort()
            if self._failure is not None:
                self._emit(["error", self.owner, None, self._failure])
            code, reason = ws.close_code, ws.close_reason or ""
            if code is None or self._failure is not None:  # we dropped it
                code, reason = CloseCode.ABNORMAL_CLOSURE, ""
            self._emit(["close", self.owner, None, int(code), reason])

    async def _flow_paused(self, ws: _WatchedConnection) -> None:
        """Wait while the flow is paused; not when the connection ends or must close: what
        was read is then delivered and the close reported."""
        if self._stop_requested is None:
            self._stop_requested = asyncio.get_running_loop().create_future()
        lost = ws.connection_lost_waiter
        while self._flow.paused and not self._stopping and not lost.done():
            await asyncio.wait(
                {self._flow.wait(), lost, self._stop_requested},
                return_when=asyncio.FIRST_COMPLETED,
            )

    async def _heartbeat(self, ws: _WatchedConnection) -> None:
        """Like core's ``hb``: ping every interval; no ping or pong since the last one → drop."""
        interval = self.options.heartbeat
        while True:
            await asyncio.sleep(interval)
            if self._flow.paused:
                ws.awaiting_heartbeat = False  # not reading: a pong may be waiting unread
                continue
            if ws.awaiting_heartbeat:
                self._failure = "timeout"
                ws.transport.abort()
                return
            ws.awaiting_heartbeat = True
            try:
                pong = await ws.ping()
            except ConnectionClosed:
                return
            if isinstance(pong, asyncio.Future):
                pong.add_done_callback(_retrieve)


class Clients:
    """Registry of client connections by owner."""

    def __init__(self, emit: Emit, flow: FlowControl | None = None, log: Log | None = None) -> None:
        self._emit = emit
        self._log = log
        #: The worker's flow control, shared by every connection.
        self.flow = flow if flow is not None else FlowControl()
        self._connections: dict[int, ClientConnection] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __contains__(self, owner: object) -> bool:
        return owner in self._connections

    def get(self, owner: int) -> ClientConnection | None:
        return self._connections.get(owner)

    def connect(self, owner: int, options: Any) -> None:
        """Start a client connection; a second ``connect`` for a live owner is an error."""
        if owner in self._connections:
            raise ValueError(f"client {owner} is already connected")
        connection = ClientConnection(
            owner, ClientOptions.from_dict(options), self._emit, self.flow, self._log
        )
        self._connections[owner] = connection
        connection.start()

    def disconnect(self, owner: int) -> None:
        """Stop the connection (close 1000), then emit ``closed``."""
        connection = self._connections.pop(owner, None)
        if connection is None:
            self._emit(["closed", owner])
            return
        self._spawn(self._disconnect(connection))

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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
