"""Client connections: one :class:`ClientConnection` per ``connect`` owner, kept up until
``disconnect``, with core's semantics (fixed reconnect delay, opt-in heartbeat) plus a handshake
timeout. Built on ``websockets.asyncio.client.connect``.

Events per attempt: ``open``, ``message``s, ``close``; or ``error`` then ``close`` when the
attempt fails or the heartbeat times out. ``disconnect`` ends with ``closed``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

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

from .endpoints import DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_SIZE
from .tls import TlsOptions, build_ssl_context

__all__ = [
    "DEFAULT_RECONNECT_DELAY",
    "DISCONNECT_TIMEOUT",
    "ClientConnection",
    "ClientOptions",
    "Clients",
    "describe_error",
]

DEFAULT_RECONNECT_DELAY = 3.0
#: Bound of ``disconnect``: closing handshake included.
DISCONNECT_TIMEOUT = 2.0
#: Seconds websockets waits for the server's close frame / TCP close before dropping it.
CLOSE_TIMEOUT = 1.5

Emit = Callable[[list[Any]], None]

logger = logging.getLogger("websocket_worker.clients")


def _seconds(options: dict[str, Any], key: str, default: float | None) -> float | None:
    value = options.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{key} must be a number >= 0")
    return None if math.isinf(value) else float(value)


@dataclass(frozen=True)
class ClientOptions:
    """Options of ``["connect", owner, options]`` (docs/protocol.md) with their defaults."""

    url: str
    subprotocols: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    heartbeat: float = 0.0
    tls: TlsOptions | None = None
    proxy: str | None = None
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
    reconnect_delay: float = DEFAULT_RECONNECT_DELAY
    max_size: int | None = DEFAULT_MAX_SIZE
    compression: bool = False

    @classmethod
    def from_dict(cls, options: Any) -> ClientOptions:
        """Validate a ``connect`` options map; raises ValueError naming the bad option."""
        if not isinstance(options, dict):
            raise ValueError("options must be a map")
        url = options.get("url")
        if not isinstance(url, str) or not url:
            raise ValueError("url must be a non-empty string")
        subprotocols = options.get("subprotocols") or []
        if not isinstance(subprotocols, list) or not all(isinstance(s, str) for s in subprotocols):
            raise ValueError("subprotocols must be a list of strings")
        headers = options.get("headers") or []
        if not isinstance(headers, list) or not all(
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], str)
            for pair in headers
        ):
            raise ValueError("headers must be a list of [name, value] strings")
        proxy = options.get("proxy")
        if proxy is not None and not isinstance(proxy, str):
            raise ValueError("proxy must be a string or nil")
        max_size = options.get("max_size", DEFAULT_MAX_SIZE)
        if max_size is None:
            max_size = DEFAULT_MAX_SIZE
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0:
            raise ValueError("max_size must be an integer >= 0 (0 = no limit)")
        compression = options.get("compression") or False
        if not isinstance(compression, bool):
            raise ValueError("compression must be a boolean")
        heartbeat = _seconds(options, "heartbeat", 0.0) or 0.0
        reconnect_delay = _seconds(options, "reconnect_delay", DEFAULT_RECONNECT_DELAY)
        if reconnect_delay is None:
            raise ValueError("reconnect_delay must be finite")
        timeout = _seconds(options, "handshake_timeout", DEFAULT_HANDSHAKE_TIMEOUT)
        return cls(
            url=url,
            subprotocols=tuple(subprotocols),
            headers=tuple((name, value) for name, value in headers),
            heartbeat=heartbeat,
            tls=TlsOptions.from_dict(options.get("tls")),
            proxy=proxy or None,
            handshake_timeout=timeout or None,
            reconnect_delay=reconnect_delay,
            max_size=max_size or None,
            compression=compression,
        )


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

    def __init__(self, owner: int, options: ClientOptions, emit: Emit) -> None:
        self.owner = owner
        self.options = options
        self._emit = emit
        self._websocket: _WatchedConnection | None = None
        self._stopping = False
        self._timed_out = False
        self._task: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        ws = self._websocket
        return ws is not None and ws.state is OPEN

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def send(self, data: str | bytes) -> None:
        """Send one message if open; otherwise drop it (the bridge knows the state)."""
        ws = self._websocket
        if ws is not None and ws.state is OPEN:
            broadcast([ws], data)

    async def stop(self, timeout: float = DISCONNECT_TIMEOUT) -> None:
        """Close with 1000 and stop reconnecting, within ``timeout``."""
        self._stopping = True
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
        self._timed_out = False
        self._emit(["open", self.owner, None, {"subprotocol": ws.subprotocol}])
        heartbeat = None
        if self.options.heartbeat > 0:
            heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(ws))
        try:
            while True:
                message = await ws.recv()
                self._emit(["message", self.owner, None, message])
        except ConnectionClosed:
            pass
        finally:
            self._websocket = None
            if heartbeat is not None:
                heartbeat.cancel()
            if ws.close_code is None:  # cancelled (disconnect timed out): drop it
                ws.transport.abort()
            if self._timed_out:
                self._emit(["error", self.owner, None, "timeout"])
            code = ws.close_code if ws.close_code is not None else CloseCode.ABNORMAL_CLOSURE
            self._emit(["close", self.owner, None, int(code), ws.close_reason or ""])

    async def _heartbeat(self, ws: _WatchedConnection) -> None:
        """Like core's ``hb``: ping every interval; no ping or pong since the last one → drop."""
        interval = self.options.heartbeat
        while True:
            await asyncio.sleep(interval)
            if ws.awaiting_heartbeat:
                self._timed_out = True
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

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
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
        connection = ClientConnection(owner, ClientOptions.from_dict(options), self._emit)
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
