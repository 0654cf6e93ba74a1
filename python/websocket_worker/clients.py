"""Client connections: one :class:`ClientConnection` per ``connect`` owner, until ``disconnect``,
under the flow's control. Each attempt is a
:class:`~websocket_worker.client_session.ClientSession` on a transport from :mod:`.connector`.

A connection's states, driven by the commands (``client_action``) and by its attempts:

- ``idle``: no attempt, none planned: not ``auto``, a ``disconnect`` action, or it gave up after
  ``reconnect_attempts`` attempts in a row that failed or did not stay up;
- ``connecting``: an attempt is under way (TCP, proxy, TLS, the opening handshake);
- ``open``: the attempt opened (``open`` was emitted);
- ``waiting``: the delay of :func:`reconnect_delay` before the next attempt.

Every change but to ``open`` is reported as ``["client_state", owner, state, info]``, and every
``client_action`` is answered by exactly one, with the number of actions taken so far
(``info["actions"]``): the bridge knows from it which events come after its command.

Events per attempt: ``open``, ``message``s, ``close`` (with ``by``); or ``error`` then ``close``
when the attempt fails, the heartbeat times out, the server breaks the protocol or stops reading
(``write_limit``). An attempt a command gives up on (``disconnect``, ``reconnect``, new options)
before it opened reports nothing. ``disconnect`` ends with ``closed``.

Flow control: like a listener session, an open connection stops reading its socket while the
worker's :class:`~websocket_worker.flow.FlowControl` is paused, so TCP pushes back on the server
and the worker holds at most one read beyond the window.
"""

from __future__ import annotations

import asyncio
import logging
import random
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
    "ACTIONS",
    "DISCONNECT_TIMEOUT",
    "JITTER",
    "ClientConnection",
    "Clients",
    "describe_error",
    "reconnect_delay",
    "safe_url",
]

#: Bound of ``disconnect``: closing handshake included.
DISCONNECT_TIMEOUT = 2.0

#: ``client_action`` actions.
ACTIONS = ("connect", "disconnect", "reconnect")

#: Backoff jitter: each delay is drawn between (1 - JITTER) and 1 times its step. Never longer
#: than the step (the maximum is one), never much shorter (a failing server is not hammered at
#: once, and the status's "reconnecting in N s" holds), and still spread so that clients cut
#: off together do not come back together.
JITTER = 0.25

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


def reconnect_delay(options: ClientOptions, wait: int, draw: Callable[[], float]) -> float:
    """Seconds of the ``wait``-th wait in a row (1: the first since the connection was up or the
    flow asked to connect). ``draw()`` is uniform in [0, 1)."""
    if options.reconnect_policy == "fixed":
        return options.reconnect_delay
    step = options.reconnect_delay
    factor = options.reconnect_factor
    if factor > 1:
        for _ in range(wait - 1):  # at most log(max/first)/log(factor) turns
            step *= factor
            if step >= options.reconnect_max_delay:
                break
    step = min(step, options.reconnect_max_delay)
    return step * (1.0 - JITTER * draw())


class ClientConnection:
    """One client connection, in the states of the module docstring until :meth:`stop`."""

    def __init__(
        self,
        owner: int,
        options: ClientOptions,
        emit: Emit,
        flow: FlowControl | None = None,
        log: Log | None = None,
        batch: WriteBatch | None = None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.owner = owner
        self.options = options
        self._emit = emit
        self._flow = flow if flow is not None else FlowControl()
        self._batch = batch if batch is not None else WriteBatch()
        self._log = log or (lambda level, text: None)
        self._draw = draw
        self.state = "idle"
        self._info: dict[str, Any] = {}
        self._reported: tuple[str, dict[str, Any]] | None = None
        self._session: ClientSession | None = None
        self._wanted = False  # an attempt should be under way, or planned
        self._restart = False  # the attempt is being replaced: the next one at once
        self._failures = 0  # attempts in a row that failed or did not stay up
        self._waits = 0  # waits since the connection was last up (or the flow said connect)
        self._actions = 0
        self._wake: asyncio.Future[None] | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        session = self._session
        return session is not None and session.is_open

    @property
    def running(self) -> bool:
        """Whether the connection loop still runs (until :meth:`stop`)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._wanted = self.options.auto
        self._task = asyncio.get_running_loop().create_task(self._run())

    def send(self, data: str | bytes) -> None:
        """Send one message if open; otherwise drop it (the bridge knows the state). Never
        waits: a server that stopped reading is dropped instead (``write_limit``)."""
        session = self._session
        if session is not None:
            session.send(data)

    # Commands.

    def action(self, action: str, options: ClientOptions | None = None) -> None:
        """``client_action``: connect (with new options: the current attempt is replaced),
        disconnect, reconnect; answered by one ``client_state``."""
        self._actions += 1
        if self._stopping:
            return
        if action == "disconnect":
            self._wanted = False
            self._interrupt()
            self._set("idle")
        else:
            if options is not None:
                self.options = options
            self._wanted = True
            if action == "reconnect" or options is not None or self.state in ("idle", "waiting"):
                self._failures = 0
                self._waits = 0
                self._restart = self.state in ("connecting", "open")
                self._interrupt()
                self._set("connecting", attempt=1)
        self._report()

    async def stop(self, timeout: float = DISCONNECT_TIMEOUT) -> None:
        """Close with 1000 and stop for good, within ``timeout``."""
        self._stopping = True
        self._wanted = False
        task = self._task
        if task is None or task.done():
            return
        session = self._session
        if session is None or not session.is_open:  # nothing to close politely
            task.cancel()
        else:
            self._interrupt()  # the attempt sees the end, reports it and the loop stops
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            await asyncio.wait({task})

    def _interrupt(self) -> None:
        """Whatever the loop awaits ends now: an open connection is closed (1000), an attempt
        under way is given up, a wait is cut short."""
        session = self._session
        if session is not None and session.is_open:
            session.close(1000)
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    # States.

    def _set(self, state: str, **info: Any) -> None:
        self.state = state
        self._info = info

    def _enter(self, state: str, **info: Any) -> None:
        """A change the loop made: reported unless it was already."""
        self._set(state, **info)
        if self._reported != (state, info):
            self._report()

    def _report(self) -> None:
        self._reported = (self.state, self._info)
        info = {"actions": self._actions, **self._info}
        self._emit(["client_state", self.owner, self.state, info])

    # The connection loop.

    async def _run(self) -> None:
        gave_up = 0
        while not self._stopping:
            if not self._wanted:
                if gave_up:
                    self._enter("idle", gave_up=gave_up)
                    gave_up = 0
                else:
                    self._enter("idle")
                await self._sleep(None)
                continue
            self._enter("connecting", attempt=self._failures + 1)
            stayed_up = await self._attempt()
            if self._stopping:
                break
            if self._restart:
                self._restart = False
                continue
            if not self._wanted or self.state != "connecting" and self.state != "open":
                continue  # a command has decided what comes next
            if stayed_up:
                self._failures = 0
                self._waits = 0
            else:
                self._failures += 1
            limit = self.options.reconnect_attempts
            if limit and self._failures >= limit:
                self._wanted = False
                gave_up = self._failures
                continue
            self._waits += 1
            delay = reconnect_delay(self.options, self._waits, self._draw)
            self._enter("waiting", delay=delay, attempt=self._failures + 1)
            await self._sleep(delay)

    async def _sleep(self, delay: float | None) -> None:
        """Until ``delay`` has passed (None: for ever) or a command cuts it short."""
        wake = self._wake = asyncio.get_running_loop().create_future()
        await asyncio.wait({wake}, timeout=delay)

    async def _attempt(self) -> bool:
        """One attempt: True when it opened and stayed open ``reconnect_reset`` seconds."""
        owner = self.owner
        options = self.options
        try:
            uri = parse_uri(options.url)
        except Exception as exc:
            self._failed(exc)
            return False
        loop = asyncio.get_running_loop()
        session = ClientSession(owner, uri, options, self._emit, self._flow, self._batch, self._log)
        self._session = session  # sends reach it as soon as it reports open
        wake = self._wake = loop.create_future()
        opening = loop.create_task(self._open(session, uri))
        try:
            try:
                done, _ = await asyncio.wait(
                    {opening, wake}, timeout=options.handshake_timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )  # fmt: skip
            except asyncio.CancelledError:
                opening.cancel()
                session.abort()
                raise
            if opening not in done:
                opening.cancel()
                session.abort()
                await asyncio.wait({opening})
                if not wake.done():  # the handshake timeout, not a command
                    self._failed(TimeoutError())
                return False
            error = opening.exception()
            if error is not None:
                session.abort()
                self._failed(error)
                return False
            self.state = "open"
            self._reported = ("open", {})
            opened_at = loop.time()
            if wake.done():  # a command came just as it opened
                self._interrupt()
            try:
                code, reason = await asyncio.shield(session.ended)
            except asyncio.CancelledError:
                session.abort()
                raise
        finally:
            self._session = None
        self._emit(["close", owner, None, code, reason, session.closed_by])
        return loop.time() - opened_at >= options.reconnect_reset

    def _failed(self, exc: BaseException) -> None:
        """An attempt that did not open: ``error`` then ``close`` 1006, as core's ``ws``."""
        self._emit(["error", self.owner, None, describe_error(exc)])
        self._emit(["close", self.owner, None, 1006, "", "error"])

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

    def action(self, owner: int, action: str, options: Any) -> None:
        """``client_action``: connect (nil options: the current ones), disconnect, reconnect.
        An unknown owner is ignored (it may just have been disconnected)."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
        if action != "connect" and options is not None:
            raise ValueError(f"{action} takes no options")
        parsed = None if options is None else ClientOptions.from_dict(options)
        if parsed is not None:
            try:
                parse_uri(parsed.url)  # a bad URL keeps the current connection
            except Exception as exc:
                raise ValueError(f"url: {describe_error(exc)}") from None
        connection = self._connections.get(owner)
        if connection is not None:
            connection.action(action, parsed)

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

