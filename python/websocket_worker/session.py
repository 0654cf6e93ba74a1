"""One listener connection: the opening handshake (:mod:`.handshake`), then the shared
:class:`~websocket_worker.shell.Shell` around the connection's core.

A session reports ``open`` once the handshake succeeded (with what :func:`~.auth.open_info`
says about the request; the request itself is dropped then), then its messages, an ``error`` when
the core failed the connection or the peer stopped reading, and exactly one ``close``, saying who
ended it (:data:`CLOSED_BY`); a session that never opened reports nothing. It knows its endpoint
only through :class:`SessionHost`, which also runs the heartbeat of all its sessions
(:meth:`ServerSession.beat`). With a message rate limit a session counts its messages
(:class:`MessageRate`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from .auth import client_address, open_info
from .core import OPEN, Ping, Pong, WebSocketCore
from .flow import FlowControl
from .frames import message_frame
from .handshake import TOO_LARGE, Answer, RequestReader
from .ipc import LARGE_PAYLOAD
from .options import EndpointOptions
from .shell import Shell, WriteBatch

__all__ = ["CLOSED_BY", "CLOSING_TIMEOUT", "MessageRate", "ServerSession", "SessionHost"]

#: The ``by`` of a ``close`` event: the client (its close frame, or its connection ended), the
#: server (the flow, or the endpoint going away), the heartbeat (no pong by the next ping), a
#: limit (the message rate), or an error (the worker failed the session; ``error`` came first).
CLOSED_BY = ("client", "server", "heartbeat", "limit", "error")

#: Seconds a session waits for the peer's side of the closing handshake (its close frame, then
#: the end of TCP) before dropping the connection.
CLOSING_TIMEOUT = 10.0

logger = logging.getLogger("websocket_worker.session")


class SessionHost(Protocol):
    """What a session needs from its endpoint."""

    owner: int
    options: EndpointOptions
    flow: FlowControl
    batch: WriteBatch

    @property
    def name(self) -> str:
        """The endpoint in logs."""

    def emit(self, frame: list[Any]) -> None:
        """Send an event to Node."""

    def answer(self, request: bytes, peer: tuple[str, int] | None) -> Answer:
        """Answer an upgrade request with the endpoint's checks, subprotocols and extensions."""

    def session_finished(self, session: ServerSession) -> None:
        """The session is over (after its ``close``, if it opened)."""


class ServerSession(Shell):
    """A WebSocket server connection of one endpoint, identified by ``sid``."""

    __slots__ = (
        "_handshake_timer",
        "_preface",
        "_reader",
        "awaiting_pong",
        "host",
        "opened",
        "plain",
    )

    closing_timeout = CLOSING_TIMEOUT
    CLOSED_HERE = "server"
    CLOSED_THERE = "client"

    def __init__(
        self, host: SessionHost, sid: str, *, request: bytes = b"", head: bytes = b""
    ) -> None:
        super().__init__(host.owner, sid, host.emit, host.flow, host.batch,
                         host.options.write_limit)  # fmt: skip
        self.host = host
        #: Open without extensions: a broadcast's frame, encoded once, fits this session.
        self.plain = False
        self.opened = False
        self._preface: tuple[bytes, bytes] | None = (request, head)
        self._reader: RequestReader | None = None  # the request still to be read from the socket
        self._handshake_timer: asyncio.TimerHandle | None = None
        #: Pinged by the heartbeat, no pong (or ping) since.
        self.awaiting_pong = False
        rate = host.options.max_rate
        if rate is not None:
            self.emit = MessageRate(self, rate)

    def describe_drop(self, queued: int) -> str:
        return f"{self.host.name}: a client stopped reading; dropped it after {queued} bytes queued"

    def send(self, data: str | bytes) -> None:
        if self.plain and len(data) < LARGE_PAYLOAD:  # the hot path: no extension to apply
            core = self.core
            if core is not None and core.state is OPEN:
                self._write(message_frame(data))
            return
        super().send(data)

    def write_frame(self, wire: bytes) -> None:
        """Write an already serialized unmasked frame (a broadcast to a ``plain`` session)."""
        core = self.core
        if core is not None and core.state is OPEN:
            self._write(wire)

    def beat(self, judge: bool) -> None:
        """The endpoint's heartbeat: drop the session if the last ping went unanswered (when
        ``judge``: not while the flow is paused, as its pong may be waiting unread), else ping."""
        core = self.core
        if core is None or core.state is not OPEN or self._closing:
            return
        if not judge:
            self.awaiting_pong = False
        elif self.awaiting_pong:
            self.by = "heartbeat"
            self._dropped = True
            self.abort()
        else:
            self.awaiting_pong = True
            core.ping()
            self._flush()

    def over_rate(self, rate: float) -> None:
        """More messages a second than allowed: close 1008, then EOF (a server closes TCP
        first), and take nothing more from the client (what is already read is still
        delivered): the core is told the client's input ended, so later input, the client's
        close frame included, is discarded. A flood ends here."""
        core = self.core
        if self.by is not None or core is None or core.state is not OPEN:
            return
        self.by = "limit"
        core.close(1008, f"message rate over {rate:g}/s")
        core.receive_eof()
        self._flush()
        self._write_all([b""])

    def _event(self, event: object) -> None:
        kind = type(event)
        if kind is Ping or kind is Pong:
            self.awaiting_pong = False
            return
        super()._event(event)

    # asyncio.Protocol.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        timeout = self.host.options.handshake_timeout
        if timeout:
            loop = asyncio.get_running_loop()
            self._handshake_timer = loop.call_later(timeout, self._handshake_timed_out)
        request, head = self._preface or (b"", b"")
        self._preface = None
        if request:
            self._handshake(request, head)  # answered before any frame in head is read
        else:
            self._reader = RequestReader()
            if head:
                self._handshake_data(head)

    def _handshake_data(self, data: bytes) -> None:
        reader = self._reader
        if reader is None:
            return  # the handshake was refused: the connection is closing
        try:
            found = reader.feed(data)
        except ValueError:
            self._reader = None
            self._write_all([TOO_LARGE, b""])
            return
        if found is not None:
            self._reader = None
            self._handshake(*found)

    def _stop_timers(self) -> None:
        self._cancel_handshake_timer()

    def _ended(self, closed: tuple[int, str] | None, exc: Exception | None) -> None:
        if closed is not None:
            by = self.closed_by
            if by == "limit":  # our close frame's code (the client's input was cut after it)
                closed = 1008, f"message rate over {self.host.options.max_rate:g}/s"
            self.emit(["close", self.owner, self.sid, *closed, by])
        self.host.session_finished(self)

    # The handshake.

    def _handshake(self, request: bytes, rest: bytes) -> None:
        host = self.host
        transport = self.transport
        peername = transport.get_extra_info("peername") if transport is not None else None
        peer = (peername[0], peername[1]) if isinstance(peername, tuple) else None
        answer = host.answer(request, peer)
        self._write_all(answer.writes)
        if answer.status != 101:
            logger.debug("session %s: handshake refused (%d, %s)", self.sid, answer.status,
                         answer.refusal)  # fmt: skip
            return
        self.opened = True
        self._cancel_handshake_timer()
        self.plain = not answer.extensions
        options = host.options
        assert answer.request is not None
        address, port = client_address(answer.request, peer, options.trust_proxy)
        info = open_info(answer.request, answer.subprotocol, address, port, answer.user,
                         options.auth)  # fmt: skip
        self.emit(["open", self.owner, self.sid, info])
        core = WebSocketCore(max_size=host.options.max_size, extensions=answer.extensions)
        self._open(core, rest)

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if not self.opened:
            logger.debug("session %s: handshake timed out", self.sid)
            self.abort()

    def _cancel_handshake_timer(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None


class MessageRate:
    """A session's ``emit`` under a message rate limit: a token bucket of ``rate`` messages,
    refilled at ``rate`` a second. The message that finds it empty is still delivered (it is
    counted by the flow control already), then the session is closed (1008)."""

    __slots__ = ("_at", "_emit", "_rate", "_session", "_tokens")

    def __init__(self, session: ServerSession, rate: float) -> None:
        self._session = session
        self._emit = session.host.emit
        self._rate = rate
        self._tokens = max(rate, 1.0)
        self._at = asyncio.get_running_loop().time()

    def __call__(self, frame: list[Any]) -> None:
        self._emit(frame)
        if frame[0] != "message":
            return
        now = asyncio.get_running_loop().time()
        rate = self._rate
        tokens = min(self._tokens + (now - self._at) * rate, max(rate, 1.0)) - 1.0
        self._at = now
        self._tokens = tokens
        if tokens < 0:
            self._session.over_rate(rate)
