"""One listener connection: the opening handshake (:mod:`.handshake`), then the shared
:class:`~websocket_worker.shell.Shell` around the connection's core.

A session reports ``open`` once the handshake succeeded, then its messages, an ``error`` when the
core failed the connection or the peer stopped reading, and exactly one ``close``; a session that
never opened reports nothing. It knows its endpoint only through :class:`SessionHost`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from .core import OPEN, WebSocketCore
from .flow import FlowControl
from .frames import message_frame
from .handshake import TOO_LARGE, Answer, RequestReader
from .ipc import LARGE_PAYLOAD
from .options import EndpointOptions
from .shell import Shell, WriteBatch

__all__ = ["CLOSING_TIMEOUT", "ServerSession", "SessionHost"]

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

    def answer(self, request: bytes) -> Answer:
        """Answer an upgrade request with the endpoint's subprotocols and extensions."""

    def session_finished(self, session: ServerSession) -> None:
        """The session is over (after its ``close``, if it opened)."""


class ServerSession(Shell):
    """A WebSocket server connection of one endpoint, identified by ``sid``."""

    __slots__ = ("_handshake_timer", "_preface", "_reader", "host", "opened", "plain")

    closing_timeout = CLOSING_TIMEOUT

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
            self.emit(["close", self.owner, self.sid, *closed])
        self.host.session_finished(self)

    # The handshake.

    def _handshake(self, request: bytes, rest: bytes) -> None:
        host = self.host
        answer = host.answer(request)
        self._write_all(answer.writes)
        if answer.status != 101:
            logger.debug("session %s: handshake refused (%d, %s)", self.sid, answer.status,
                         answer.refusal)  # fmt: skip
            return
        self.opened = True
        self._cancel_handshake_timer()
        self.plain = not answer.extensions
        self.emit(["open", self.owner, self.sid, {"subprotocol": answer.subprotocol}])
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
