"""One listener connection: an asyncio protocol driving websockets' Sans-I/O ``ServerProtocol``.

Bytes in go to ``protocol.receive_data``; the handshake request is answered at once, frames are
reassembled into whole messages here (no coroutine per message) and reported as events; whatever
the protocol wants to send is flushed to the transport after every step. Once open after a request
handed over alone and without extensions, the session reads whole simple data frames itself and
frames its own messages (:mod:`.fastframes`); websockets still gets every other frame, whole.

A session reports ``open`` once the handshake succeeded and then exactly one ``close``; a session
that never opened reports nothing.

Flow control (:mod:`.flow`): an open session is a reader of the worker's
:class:`~websocket_worker.flow.FlowControl`. Paused, it stops reading its transport and holds the
frames it had already parsed (a read can hold thousands), delivering them in order on resume, or
before its ``close`` if the connection ends first. Slow readers: a session whose transport holds
more than ``write_limit`` unsent bytes when it is written to again is dropped (``error``, a
``warn`` log, close 1006); it never makes a broadcast wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.extensions.base import ServerExtensionFactory
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import CLOSED, CONNECTING, OPEN, Event, Protocol
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from .fastframes import BINARY, TEXT, apply_mask, message_frame, scan_frame

if TYPE_CHECKING:
    from .endpoints import Endpoint

__all__ = ["CLOSE_TIMEOUT", "ServerSession", "WriteBatch", "select_subprotocol"]

#: Seconds a session waits for the peer to close TCP after the closing handshake.
CLOSE_TIMEOUT = 10.0
#: asyncio's (and uvloop's) default high-water mark of a transport's write buffer: above it the
#: transport calls ``pause_writing``, which is when the write limit is checked.
HIGH_WATER = 64 * 1024

BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

logger = logging.getLogger("websocket_worker.session")

SelectSubprotocol = Callable[[ServerProtocol, Sequence[Subprotocol]], "Subprotocol | None"]


def select_subprotocol(available: Sequence[str] | None) -> SelectSubprotocol:
    """Subprotocol choice: the client's first offer (``None``, like ``ws``) or ours in order.

    With a list and no common subprotocol the handshake goes on without one, as ``ws`` does.
    """
    if available is None:

        def first_offered(
            protocol: ServerProtocol, offered: Sequence[Subprotocol]
        ) -> Subprotocol | None:
            return offered[0] if offered else None

        return first_offered

    ours = [Subprotocol(name) for name in available]

    def first_shared(
        protocol: ServerProtocol, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        for name in ours:
            if name in offered:
                return name
        return None

    return first_shared


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


class ServerSession(asyncio.Protocol):
    """A WebSocket server connection of one endpoint, identified by ``sid``."""

    # Thousands of these live at once: slots keep each a few hundred bytes smaller.
    __slots__ = (
        "_close_timer",
        "_dropped",
        "_error_reported",
        "_failed",
        "_fragments",
        "_fragments_text",
        "_handshake_timer",
        "_framing",
        "_held",
        "_max_size",
        "_out",
        "_partial",
        "_preface",
        "_request_alone",
        "_response_sent",
        "_writes_paused",
        "endpoint",
        "finished",
        "flow",
        "opened",
        "plain",
        "protocol",
        "sid",
        "transport",
        "write_limit",
    )

    def __init__(
        self,
        endpoint: Endpoint,
        sid: str,
        *,
        request: bytes = b"",
        head: bytes = b"",
        extensions: Sequence[ServerExtensionFactory] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.sid = sid
        options = endpoint.options
        self.protocol = ServerProtocol(
            extensions=extensions,
            select_subprotocol=endpoint.select_subprotocol,
            max_size=options.max_size,
        )
        self.transport: asyncio.Transport | None = None
        self.flow = endpoint.flow
        self.write_limit = options.write_limit
        self.opened = False
        self.finished = False
        self._preface = (request, head)
        self._request_alone = False  # the bytes being parsed are exactly the HTTP request
        # Once open without extensions: whole simple data frames are read here (_frames_received)
        # and only other frames go to websockets, always whole; _partial holds an incomplete one.
        self._framing = False
        self.plain = False  # open without extensions: messages are framed here (send)
        self._partial = bytearray()
        self._max_size = options.max_size
        self._response_sent = False
        self._error_reported = False
        self._failed = False  # the connection was failed: ignore the frames after
        self._held: list[Event] = []  # parsed while the flow was paused
        self._writes_paused = False  # the transport buffer is over its high-water mark
        self._dropped = False  # for not reading: close 1006 whatever the protocol says
        self._fragments: list[bytes] | None = None
        self._fragments_text = False
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._out: list[bytes] = []

    # Commands.

    @property
    def is_open(self) -> bool:
        return self.protocol.state is OPEN

    def send(self, data: str | bytes) -> None:
        """Send one message (str → text frame, bytes → binary frame); dropped unless open."""
        if self.protocol.state is not OPEN:
            return
        if self.plain:
            self._write(message_frame(data))
            return
        if isinstance(data, str):
            self.protocol.send_text(data.encode())
        else:
            self.protocol.send_binary(data)
        self._flush()

    def write_frame(self, wire: bytes) -> None:
        """Write an already serialized unmasked frame (a broadcast to a ``plain`` session)."""
        if self.protocol.state is OPEN:
            self._write(wire)

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (an unopened session is dropped at once)."""
        state = self.protocol.state
        if state is OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
            transport = self.transport
            if transport is not None and not transport.is_closing():
                # Read the peer's close even while the flow is paused (messages before it are
                # held): unlisten must not wait for an ack.
                transport.resume_reading()
        elif state is CONNECTING and self.transport is not None:
            self.transport.abort()

    def abort(self) -> None:
        """Drop the connection now and report it closed (idempotent)."""
        if self.transport is not None:
            self.transport.abort()
        self.connection_lost(None)

    # Flow control (a :class:`~websocket_worker.flow.Reader` once open).

    def flow_pause(self) -> None:
        transport = self.transport
        if self.protocol.state is OPEN and transport is not None and not transport.is_closing():
            transport.pause_reading()  # not while closing: the peer's close must be read

    def flow_resume(self) -> None:
        if self._held:
            held, self._held = self._held, []
            self._handle(held)
            if not self._held:
                self._report_parser_error()
            self._flush()
        transport = self.transport
        if transport is not None and not self.flow.paused and not transport.is_closing():
            transport.resume_reading()

    # asyncio.Protocol.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass
        limit = self.write_limit
        if limit is not None and limit < HIGH_WATER:
            transport.set_write_buffer_limits(high=limit)  # so that pause_writing comes in time
        timeout = self.endpoint.options.handshake_timeout
        if timeout:
            loop = asyncio.get_running_loop()
            self._handshake_timer = loop.call_later(timeout, self._handshake_timed_out)
        request, head = self._preface
        self._preface = (b"", b"")
        # The request alone first: the handshake is answered before any frame in ``head``.
        if request:
            self._request_alone = True
            self.data_received(request)
            self._request_alone = False
        if head and not self.finished:
            self.data_received(head)

    def data_received(self, data: bytes) -> None:
        if self._framing:
            self._frames_received(data)
            return
        self.protocol.receive_data(data)
        self._process_events()

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._process_events()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.receive_eof()  # idempotent; makes the state CLOSED
        self._finish()

    def pause_writing(self) -> None:
        self._writes_paused = True

    def resume_writing(self) -> None:
        self._writes_paused = False

    # Internals.

    def _process_events(self) -> None:
        events = self.protocol.events_received()
        if self._held:
            self._held.extend(events)  # behind what is already held, in order
        elif events:
            self._handle(events)
        if not self._held:
            self._report_parser_error()  # after the messages before the bad frame
        self._flush()

    def _frames_received(self, data: bytes) -> None:
        """Deliver whole simple data frames at once; hand every other frame to websockets, whole.

        Simple: final text or binary, masked, no RSV bits, within ``max_size``, read while the
        flow runs, nothing held and no fragmented message under way. An unmasked or oversized
        frame ends the framing here: websockets gets the rest and fails the connection as it
        always did.
        """
        partial = self._partial
        buffer: bytes | bytearray
        if partial:
            partial += data
            buffer = partial
        else:
            buffer = data
        end = len(buffer)
        offset = 0
        max_size = self._max_size
        flow = self.flow
        while offset < end:
            found = scan_frame(buffer, offset, end)
            if found is None:
                break
            first, start, length = found
            if start < 0 or (max_size is not None and length > max_size):
                self._stop_framing(buffer[offset:])
                return
            frame_end = start + length
            if frame_end > end:
                break
            if (
                first in (TEXT, BINARY)
                and self._fragments is None
                and not self._held
                and not flow.paused
            ):
                payload = apply_mask(buffer[start:frame_end], buffer[start - 4 : start])
                offset = frame_end
                if not self._deliver(first == TEXT, payload):
                    self._failed = True
                    self._stop_framing(buffer[offset:])
                    return
                continue
            self.protocol.receive_data(bytes(buffer[offset:frame_end]))
            offset = frame_end
            self._process_events()
            if self.protocol.state is not OPEN:
                self._stop_framing(buffer[offset:])
                return
        if buffer is partial:
            del partial[:offset]
        elif offset < end:
            partial += buffer[offset:]

    def _stop_framing(self, rest: bytes | bytearray) -> None:
        """From here on websockets reads everything (it was fed whole frames, so it is in step)."""
        self._framing = False
        rest = bytes(rest)
        self._partial = bytearray()
        if rest:
            self.protocol.receive_data(rest)
        self._process_events()

    def _handle(self, events: list[Event], force: bool = False) -> None:
        """Handle parsed events in order; while the flow is paused, hold the frames left."""
        flow = self.flow
        for index, event in enumerate(events):
            if isinstance(event, Frame):
                if self._failed:
                    continue
                if flow.paused and not force:
                    self._held = events[index:]
                    return
                if not self._on_frame(event):
                    self._failed = True
            elif isinstance(event, Request):
                self._handshake(event)

    def _handshake(self, request: Request) -> None:
        protocol = self.protocol
        response = protocol.accept(request)
        protocol.send_response(response)
        self._response_sent = True
        if response.status_code == 101:
            self.opened = True
            self._cancel_handshake_timer()
            self.plain = not protocol.extensions
            if self._request_alone and self._release_request():
                self._framing = self.plain
            self.endpoint.emit(
                ["open", self.endpoint.owner, self.sid, {"subprotocol": protocol.subprotocol}]
            )
            self.flow.add(self)  # paused at once when the flow is
        else:
            logger.debug("session %s: handshake rejected (%d)", self.sid, response.status_code)

    def _release_request(self) -> bool:
        """Let the parsed request go: a fresh frame parser in place of websockets' own.

        ``ServerProtocol.parse`` keeps the ``Request`` (headers and all, about 2.5 KiB) as a local
        of its generator for the whole connection. Fed the request bytes alone, that generator now
        waits at a frame boundary with nothing buffered, exactly where the base class's parser
        starts, so swapping in ``Protocol.parse`` changes nothing but the memory held. True when
        done: websockets' parser now stands at a frame boundary.
        """
        protocol = self.protocol
        if protocol.reader.buffer:
            return False
        parser = Protocol.parse(protocol)
        next(parser)
        protocol.parser = parser
        return True

    def _on_frame(self, frame: Frame) -> bool:
        """Handle one data or control frame; False when the connection was failed."""
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                return self._deliver(opcode is Opcode.TEXT, frame.data)
            self._fragments = [bytes(frame.data)]
            self._fragments_text = opcode is Opcode.TEXT
        elif opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), None
                return self._deliver(self._fragments_text, data)
        return True  # ping (answered by the protocol), pong, close

    def _deliver(self, text: bool, data: Any) -> bool:
        message: str | bytes
        if text:
            try:
                message = str(data, "utf-8")
            except UnicodeDecodeError:
                self.protocol.fail(CloseCode.INVALID_DATA, "invalid UTF-8")
                self._report_error("invalid UTF-8 in a text message (1007)")
                return False
        else:
            message = data if type(data) is bytes else bytes(data)
        self.endpoint.emit(["message", self.endpoint.owner, self.sid, message])
        self.flow.count(len(data))  # payload bytes: UTF-8 bytes for text
        return True

    def _report_parser_error(self) -> None:
        exc = self.protocol.parser_exc
        if exc is None or self._error_reported or not self.opened:
            return
        if isinstance(exc, PayloadTooBig):
            self._report_error(f"message too big (1009): {exc}")
        elif isinstance(exc, ProtocolError):
            self._report_error(f"protocol error (1002): {exc}")

    def _report_error(self, text: str) -> None:
        if not self._error_reported:
            self._error_reported = True
            self.endpoint.emit(["error", self.endpoint.owner, self.sid, text])

    def _write(self, data: bytes) -> None:
        """Write now, or, inside a :class:`WriteBatch`, once for the whole batch."""
        batch = self.endpoint.batch
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
        limit = self.write_limit
        if limit is None:
            return False
        queued = transport.get_write_buffer_size()
        if queued <= limit:
            return False
        self._dropped = True
        self._report_error(f"outgoing buffer over {limit} bytes: the peer is not reading")
        endpoint = self.endpoint
        text = f"{endpoint.name}: a client stopped reading; dropped it after {queued} bytes queued"
        endpoint.emit(["log", "warn", text])
        self.abort()
        return True

    def _flush(self) -> None:
        """Move what the protocol wants to send to the transport (EOF and close included)."""
        transport = self.transport
        if transport is None:
            return
        writes = self.protocol.data_to_send()
        if writes and not writes[0] and not self._response_sent:
            # The request was not HTTP at all: websockets only hangs up; answer 400 first.
            self._response_sent = True
            self._write(BAD_REQUEST)
        chunks: list[bytes] = []
        for data in writes:
            if data:
                chunks.append(data)  # a ping flood: thousands of pongs, one write
                continue
            if chunks:
                self._write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
                chunks = []
            self.write_out()  # what was queued goes before the EOF
            if transport.can_write_eof():
                try:
                    transport.write_eof()
                except (OSError, RuntimeError):
                    transport.close()
            else:
                transport.close()
        if chunks:
            self._write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if self.protocol.state is CLOSED:
            self.write_out()
            transport.close()
        elif self._close_timer is None and self.protocol.close_expected():
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(CLOSE_TIMEOUT, self.abort)

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if not self.opened:
            logger.debug("session %s: handshake timed out", self.sid)
            self.abort()

    def _cancel_handshake_timer(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self._cancel_handshake_timer()
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self.opened:
            self.flow.discard(self)
            if self._held:  # read before the end: delivered, if over the window
                held, self._held = self._held, []
                self._handle(held, force=True)
                self._report_parser_error()
            protocol = self.protocol
            if self._dropped:
                code, reason = int(CloseCode.ABNORMAL_CLOSURE), ""
            else:
                code = int(protocol.close_code or CloseCode.ABNORMAL_CLOSURE)
                reason = protocol.close_reason or ""
            self.endpoint.emit(["close", self.endpoint.owner, self.sid, code, reason])
        self.endpoint.session_finished(self)
