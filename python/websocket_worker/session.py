"""One listener connection: a thin asyncio shell around the opening handshake (:mod:`.handshake`)
and the Sans-I/O :class:`~websocket_worker.core.WebSocketCore`.

The shell moves bytes and keeps the timers (handshake timeout, closing timeout); every rule about
frames is the core's. It reports ``open`` once the handshake succeeded, then the messages, an
``error`` when the core failed the connection, and exactly one ``close``; a session that never
opened reports nothing. It knows its endpoint only through :class:`SessionHost`.

Flow control (:mod:`.flow`): an open session is a reader of the worker's
:class:`~websocket_worker.flow.FlowControl`. Paused, it stops reading its transport and stops
taking events from its core, whose buffer keeps the bytes already read (at most one read); they
are delivered in order on resume, or before the ``close`` if the connection ends first. While it
closes, a session reads and delivers regardless, so that the peer's close is seen.

Slow readers: a session whose transport holds more than ``write_limit`` unsent bytes when it is
written to again is dropped (``error``, a ``warn`` log, close 1006); it never makes a broadcast
wait.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol, cast

from .core import OPEN, Failed, WebSocketCore
from .flow import FlowControl
from .frames import message_frame
from .handshake import TOO_LARGE, Answer, RequestReader
from .options import EndpointOptions

__all__ = ["CLOSING_TIMEOUT", "ServerSession", "SessionHost", "WriteBatch"]

#: Seconds a session waits for the peer's side of the closing handshake (its close frame, then
#: the end of TCP) before dropping the connection.
CLOSING_TIMEOUT = 10.0
#: asyncio's (and uvloop's) default high-water mark of a transport's write buffer: above it the
#: transport calls ``pause_writing``, which is when the write limit is checked.
HIGH_WATER = 64 * 1024

logger = logging.getLogger("websocket_worker.session")


class WriteBatch:
    """Coalesces session writes while a batch of commands is dispatched.

    The bridge coalesces its frames, so one read of the event channel often holds many ``send``
    commands for the same session: inside a batch each session collects its frames and writes
    them in one syscall when the batch ends, with no added latency.
    """

    def __init__(self) -> None:
        self.active = False
        self.dirty: list[ServerSession] = []

    def __enter__(self) -> WriteBatch:
        self.active = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.active = False
        dirty, self.dirty = self.dirty, []
        for session in dirty:
            session.write_out()


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


class ServerSession(asyncio.Protocol):
    """A WebSocket server connection of one endpoint, identified by ``sid``."""

    # Thousands of these live at once: slots keep each a few hundred bytes smaller.
    __slots__ = (
        "_closing",
        "_closing_timer",
        "_dropped",
        "_error_reported",
        "_handshake_timer",
        "_out",
        "_preface",
        "_reader",
        "_writes_paused",
        "core",
        "finished",
        "flow",
        "host",
        "opened",
        "plain",
        "sid",
        "transport",
    )

    def __init__(
        self, host: SessionHost, sid: str, *, request: bytes = b"", head: bytes = b""
    ) -> None:
        self.host = host
        self.sid = sid
        self.flow = host.flow
        self.transport: asyncio.Transport | None = None
        #: The open connection's core (None until the handshake succeeded).
        self.core: WebSocketCore | None = None
        #: Open without extensions: a broadcast's frame, encoded once, fits this session.
        self.plain = False
        self.opened = False
        self.finished = False
        self._preface = (request, head)
        self._reader: RequestReader | None = None  # the request still to be read from the socket
        self._closing = False  # we started the closing handshake: read regardless of the flow
        self._error_reported = False
        self._writes_paused = False  # the transport buffer is over its high-water mark
        self._dropped = False  # for not reading: close 1006 whatever the core says
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._closing_timer: asyncio.TimerHandle | None = None
        self._out: list[bytes] = []

    # Commands.

    @property
    def is_open(self) -> bool:
        core = self.core
        return core is not None and core.state is OPEN

    def send(self, data: str | bytes) -> None:
        """Send one message (str → text frame, bytes → binary frame); dropped unless open."""
        core = self.core
        if core is not None and core.state is OPEN:
            self._write(message_frame(data) if self.plain else core.message(data))

    def write_frame(self, wire: bytes) -> None:
        """Write an already serialized unmasked frame (a broadcast to a ``plain`` session)."""
        core = self.core
        if core is not None and core.state is OPEN:
            self._write(wire)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (an unopened session is dropped at once)."""
        core = self.core
        transport = self.transport
        if core is None:
            if transport is not None:
                transport.abort()
            return
        if core.state is not OPEN:
            return
        core.close(code, reason)
        self._closing = True
        self._flush()
        if transport is not None and not transport.is_closing():
            transport.resume_reading()  # the peer's close must be read even while paused

    def abort(self) -> None:
        """Drop the connection now and report it closed (idempotent)."""
        if self.transport is not None:
            self.transport.abort()
        self.connection_lost(None)

    # Flow control (a :class:`~websocket_worker.flow.Reader` once open).

    def flow_pause(self) -> None:
        transport = self.transport
        if self.is_open and not self._closing and transport and not transport.is_closing():
            transport.pause_reading()

    def flow_resume(self) -> None:
        if self.core is not None:
            self._drain()
        transport = self.transport
        if transport is not None and not self.flow.paused and not transport.is_closing():
            transport.resume_reading()

    # asyncio.Protocol.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass
        limit = self.host.options.write_limit
        if limit is not None and limit < HIGH_WATER:
            transport.set_write_buffer_limits(high=limit)  # so that pause_writing comes in time
        timeout = self.host.options.handshake_timeout
        if timeout:
            loop = asyncio.get_running_loop()
            self._handshake_timer = loop.call_later(timeout, self._handshake_timed_out)
        request, head = self._preface
        self._preface = (b"", b"")
        if request:
            self._handshake(request, head)  # answered before any frame in head is read
        else:
            self._reader = RequestReader()
            if head:
                self.data_received(head)

    def data_received(self, data: bytes) -> None:
        core = self.core
        if core is not None:
            core.receive_data(data)
            self._drain()
            return
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

    def eof_received(self) -> bool | None:
        if self.core is not None:
            self.core.receive_eof()
            self._drain(force=True)
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self.finished:
            return
        self.finished = True
        self._cancel_timers()
        host = self.host
        core = self.core
        if core is not None:
            self.flow.discard(self)
            core.receive_eof()
            self._drain(force=True)  # what was read before the end, if over the window
            code = core.close_code if core.close_code is not None and not self._dropped else 1006
            reason = core.close_reason if code != 1006 else ""
            host.emit(["close", host.owner, self.sid, code, reason])
        host.session_finished(self)

    def pause_writing(self) -> None:
        self._writes_paused = True

    def resume_writing(self) -> None:
        self._writes_paused = False

    # Internals.

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
        self.core = core = WebSocketCore(
            max_size=host.options.max_size, extensions=answer.extensions
        )
        self.plain = not answer.extensions
        host.emit(["open", host.owner, self.sid, {"subprotocol": answer.subprotocol}])
        self.flow.add(self)  # paused at once when the flow is
        if rest:
            core.receive_data(rest)
            self._drain()

    def _drain(self, force: bool = False) -> None:
        """Take the core's events in order (while the flow runs) and write what it answers."""
        core = self.core
        assert core is not None
        flow = self.flow
        host = self.host
        emit = host.emit
        owner = host.owner
        sid = self.sid
        force = force or self._closing
        while force or not flow.paused:
            event = core.next_event()
            if event is None:
                break
            kind = type(event)
            if kind is str or kind is bytes:
                emit(["message", owner, sid, event])
                flow.count(len(event))  # bytes; characters for text
            elif kind is Failed:
                self._report_error(cast(Failed, event).text)
        self._flush()

    def _flush(self) -> None:
        """Write what the core wants sent (pongs, close, EOF); time the closing handshake."""
        core = self.core
        transport = self.transport
        if core is None or transport is None:
            return
        writes = core.data_to_send()
        if writes:
            self._write_all(writes)
        if core.state is not OPEN and self._closing_timer is None and not self.finished:
            loop = asyncio.get_running_loop()
            self._closing_timer = loop.call_later(CLOSING_TIMEOUT, self.abort)

    def _write_all(self, writes: list[bytes]) -> None:
        """Write ``writes`` in order, joined (a ping flood: thousands of pongs, one write);
        b"" means: send EOF there."""
        transport = self.transport
        assert transport is not None
        chunks: list[bytes] = []
        for data in writes:
            if data:
                chunks.append(data)
                continue
            if chunks:
                self._write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
                chunks = []
            self.write_out()  # what a batch queued goes before the EOF
            if transport.is_closing():
                continue
            if transport.can_write_eof():
                try:
                    transport.write_eof()
                except (OSError, RuntimeError):
                    transport.close()
            else:
                transport.close()
        if chunks:
            self._write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _report_error(self, text: str) -> None:
        if not self._error_reported:
            self._error_reported = True
            host = self.host
            host.emit(["error", host.owner, self.sid, text])

    def _write(self, data: bytes) -> None:
        """Write now, or, inside a :class:`WriteBatch`, once for the whole batch."""
        batch = self.host.batch
        if batch.active:
            if not self._out:
                batch.dirty.append(self)
            self._out.append(data)
            return
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if self._writes_paused and self._over_write_limit(transport):
                return
            transport.write(data)

    def write_out(self) -> None:
        """Write what a batch queued, in one piece."""
        out, self._out = self._out, []
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            if self._writes_paused and self._over_write_limit(transport):
                return
            transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _over_write_limit(self, transport: asyncio.Transport) -> bool:
        """Drop the session when what earlier writes left unsent is over ``write_limit``.

        Checked before each write, so one message larger than the limit still goes to a peer
        that reads; the next write finds out whether it did.
        """
        limit = self.host.options.write_limit
        if limit is None:
            return False
        queued = transport.get_write_buffer_size()
        if queued <= limit:
            return False
        self._dropped = True
        self._report_error(f"outgoing buffer over {limit} bytes: the peer is not reading")
        host = self.host
        text = f"{host.name}: a client stopped reading; dropped it after {queued} bytes queued"
        host.emit(["log", "warn", text])
        self.abort()
        return True

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if not self.opened:
            logger.debug("session %s: handshake timed out", self.sid)
            self.abort()

    def _cancel_handshake_timer(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_handshake_timer()
        if self._closing_timer is not None:
            self._closing_timer.cancel()
            self._closing_timer = None
