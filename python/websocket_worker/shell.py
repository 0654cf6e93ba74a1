"""The asyncio shell around an open :class:`~websocket_worker.core.WebSocketCore`, shared by both
sides: listener sessions (:mod:`.session`) and client connections (:mod:`.client_session`).

It moves bytes between the transport and the core, and keeps what needs a clock or a transport:

- **events**: the core's messages become ``["message", owner, sid, data]`` events, its failures an
  ``error`` event (once);
- **flow control** (:mod:`.flow`): an open shell is a reader of the worker's
  :class:`~websocket_worker.flow.FlowControl`. Paused, it stops reading its transport and stops
  taking events from its core, whose buffer keeps the bytes already read (at most one read);
  they are delivered in order on resume, or before the end if the connection ends first. Once
  it closes, a shell reads and delivers regardless, so that the peer's close is seen;
- **writes**: inside a :class:`WriteBatch` each shell collects its frames and writes them at once;
  b"" from the core means EOF;
- **slow readers**: a shell whose transport holds more than ``write_limit`` unsent bytes when it
  is written to, and whose peer took (almost) nothing of them for a second, is dropped
  (``error``, a ``warn`` log, abort); a broadcast never waits;
- **the closing timeout**: once the closing handshake started, the peer has
  ``closing_timeout`` seconds to finish it and end TCP, then the connection is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar, cast

from .core import OPEN, Failed, WebSocketCore
from .flow import FlowControl
from .ipc import LARGE_PAYLOAD

__all__ = ["HIGH_WATER", "STALL_PROGRESS", "STALL_SECONDS", "Emit", "Shell", "WriteBatch"]

#: asyncio's (and uvloop's) default high-water mark of a transport's write buffer: above it the
#: transport calls ``pause_writing``, which is when the write limit is checked.
HIGH_WATER = 64 * 1024

#: Over ``write_limit``, a peer that takes less than STALL_PROGRESS bytes in STALL_SECONDS is
#: dropped: it is not reading (or is reading a few bytes a second to hold memory).
STALL_SECONDS = 1.0
STALL_PROGRESS = 64 * 1024

Emit = Callable[[list[Any]], None]


class WriteBatch:
    """Coalesces shell writes while a batch of commands is dispatched.

    The bridge coalesces its frames, so one read of the event channel often holds many ``send``
    commands for the same connection: inside a batch each shell collects its frames and writes
    them in one syscall when the batch ends, with no added latency.
    """

    def __init__(self) -> None:
        self.active = False
        self.dirty: list[Shell] = []

    def __enter__(self) -> WriteBatch:
        self.active = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.active = False
        dirty, self.dirty = self.dirty, []
        for shell in dirty:
            shell.write_out()


class Shell(asyncio.Protocol):
    """Base of both sides; subclasses do the opening handshake, then call :meth:`_open`."""

    # Thousands of these live at once: slots keep each a few hundred bytes smaller.
    __slots__ = (
        "_closing",
        "_closing_timer",
        "_dropped",
        "_error_reported",
        "_out",
        "_stall",
        "_writes_paused",
        "_written",
        "batch",
        "by",
        "core",
        "emit",
        "finished",
        "flow",
        "owner",
        "sid",
        "transport",
        "write_limit",
    )

    #: Seconds the peer has to finish a closing handshake (set by subclasses).
    closing_timeout: float
    #: The ``by`` of a ``close`` this side starts, and of one the peer starts (or no one knows
    #: who: the connection ended), as a listener session's or client connection's events say it.
    CLOSED_HERE: ClassVar[str]
    CLOSED_THERE: ClassVar[str]

    def __init__(self, owner: int, sid: str | None, emit: Emit, flow: FlowControl,
                 batch: WriteBatch, write_limit: int | None) -> None:  # fmt: skip
        #: Who the events are about: the owner (endpoint or client connection) and session id.
        self.owner = owner
        self.sid = sid
        #: Where events go (the event channel).
        self.emit = emit
        self.flow = flow
        self.batch = batch
        #: Unsent bytes above which the peer counts as not reading (None: no limit).
        self.write_limit = write_limit
        self.transport: asyncio.Transport | None = None
        #: The open connection's core (None until the handshake succeeded).
        self.core: WebSocketCore | None = None
        self.finished = False
        #: Who ended the connection, once known ("error", "heartbeat", "limit" or CLOSED_HERE).
        self.by: str | None = None
        self._closing = False  # we started the closing handshake: read regardless of the flow
        self._error_reported = False
        self._writes_paused = False  # the transport buffer is over its high-water mark
        self._written = 0  # bytes handed to the transport
        # Over the write limit: since when, bytes sent then, the timer that judges it again.
        self._stall: tuple[float, int, asyncio.TimerHandle] | None = None
        self._dropped = False  # dropped by us (not reading, no heartbeat): close 1006
        self._closing_timer: asyncio.TimerHandle | None = None
        self._out: list[bytes] | None = None  # frames a batch holds back (None while none)

    # Hooks.

    def describe_drop(self, queued: int) -> str:
        """The warning logged when the peer stopped reading."""
        raise NotImplementedError

    def warn(self, text: str) -> None:
        """Log a warning in Node-RED's log."""
        self.emit(["log", "warn", text])

    # Commands.

    @property
    def is_open(self) -> bool:
        core = self.core
        return core is not None and core.state is OPEN

    def send(self, data: str | bytes) -> None:
        """Send one message (str → text frame, bytes → binary frame); dropped unless open."""
        core = self.core
        if core is not None and core.state is OPEN:
            if len(data) < LARGE_PAYLOAD:
                self._write(core.message(data))
            else:
                for piece in core.message_pieces(data):
                    self._write(piece)

    @property
    def closed_by(self) -> str:
        """Who ended the connection, for the ``close`` event."""
        return self.by or self.CLOSED_THERE

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (a connection not open yet is dropped at once)."""
        if self.by is None and self.is_open:
            self.by = self.CLOSED_HERE
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

    def fail(self, text: str) -> None:
        """Drop the connection for ``text`` (an ``error`` event, then close 1006)."""
        if self.by is None:
            self.by = "error"
        self._dropped = True
        self._report_error(text)
        self.abort()

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
        limit = self.write_limit
        if limit is not None and limit < HIGH_WATER:
            transport.set_write_buffer_limits(high=limit)  # so that pause_writing comes in time

    def data_received(self, data: bytes) -> None:
        core = self.core
        if core is not None:
            core.receive_data(data)
            self._drain()
        else:
            self._handshake_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.finished:
            return
        self.finished = True
        self._stop_timers()
        self._ended(self._end(), exc)

    def eof_received(self) -> bool | None:
        if self.core is not None:
            self.core.receive_eof()
            self._drain(force=True)
        return None  # the transport closes itself

    def pause_writing(self) -> None:
        self._writes_paused = True

    def resume_writing(self) -> None:
        self._writes_paused = False
        self._clear_stall()

    # For subclasses.

    def _handshake_data(self, data: bytes) -> None:
        """Bytes that came before the connection opened: the side's handshake."""
        raise NotImplementedError

    def _stop_timers(self) -> None:
        """The connection is gone: cancel the side's own timers."""

    def _ended(self, closed: tuple[int, str] | None, exc: Exception | None) -> None:
        """Report the end: ``closed`` as :meth:`_end` returned it."""
        raise NotImplementedError

    def _open(self, core: WebSocketCore, rest: bytes) -> None:
        """The handshake succeeded: frames from now on, starting with ``rest``."""
        self.core = core
        self.flow.add(self)  # paused at once when the flow is
        if rest:
            core.receive_data(rest)
            self._drain()

    def _end(self) -> tuple[int, str] | None:
        """The transport is gone: deliver what was read, stop the timers. The close code and
        reason to report (1006 when we dropped it), or None when it never opened."""
        self._cancel_closing_timer()
        self._clear_stall()
        core = self.core
        if core is None:
            return None
        self.flow.discard(self)
        core.receive_eof()
        self._drain(force=True)  # what was read before the end, if over the window
        if self._dropped or core.close_code is None:
            return 1006, ""
        return core.close_code, core.close_reason

    def _drain(self, force: bool = False) -> None:
        """Take the core's events in order (while the flow runs) and write what it answers."""
        core = self.core
        assert core is not None
        flow = self.flow
        emit = self.emit
        owner = self.owner
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
            else:
                self._event(event)
        self._flush()

    def _event(self, event: object) -> None:
        """An event other than a message (ping, pong, close, failure)."""
        if type(event) is Failed:
            if self.by is None:
                self.by = "error"
            self._report_error(event.text)

    def _flush(self) -> None:
        """Write what the core wants sent (pongs, close, EOF); time the closing handshake."""
        core = self.core
        if core is None or self.transport is None:
            return
        writes = core.data_to_send()
        if writes:
            self._write_all(writes)
        if core.state is not OPEN and self._closing_timer is None and not self.finished:
            loop = asyncio.get_running_loop()
            self._closing_timer = loop.call_later(self.closing_timeout, self.abort)

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
            self.emit(["error", self.owner, self.sid, text])

    def _write(self, data: bytes) -> None:
        """Write now, or, inside a :class:`WriteBatch`, once for the whole batch."""
        batch = self.batch
        if batch.active:
            out = self._out
            if out is None:
                self._out = [data]
                batch.dirty.append(self)
            else:
                out.append(data)
            return
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if self._writes_paused and self._over_write_limit(transport):
                return
            self._written += len(data)
            transport.write(data)

    def write_out(self) -> None:
        """Write what a batch queued, in one piece."""
        out, self._out = self._out, None
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            if self._writes_paused and self._over_write_limit(transport):
                return
            self._written += sum(map(len, out))
            if len(out) == 1:
                transport.write(out[0])
            elif sum(map(len, out)) < LARGE_PAYLOAD:
                transport.write(b"".join(out))
            else:
                transport.writelines(out)  # large payloads as they are (uvloop: no copy)

    def _over_write_limit(self, transport: asyncio.Transport) -> bool:
        """Drop the connection when more than ``write_limit`` bytes wait unsent and the peer
        has taken less than :data:`STALL_PROGRESS` bytes of them for :data:`STALL_SECONDS`.

        Checked before each write, and again a stall period later while over the limit (no
        more writes may come). A peer that reads is never dropped, however large the messages
        or however many are in flight (several 16 MiB messages queue up to 64 MiB on a fast
        local link too); one that stopped reading, or reads a few bytes a second, is.
        """
        limit = self.write_limit
        if limit is None:
            return False
        queued = transport.get_write_buffer_size()
        if queued <= limit:
            self._clear_stall()
            return False
        sent = self._written - queued
        loop = asyncio.get_running_loop()
        now = loop.time()
        stall = self._stall
        if stall is None or sent - stall[1] >= STALL_PROGRESS:
            # (Again) over the limit, or the peer is taking data: judge it a period from now.
            if stall is not None:
                stall[2].cancel()
            timer = loop.call_later(STALL_SECONDS, self._stall_check)
            self._stall = (now, sent, timer)
            return False
        if now - stall[0] < STALL_SECONDS:
            return False
        self._clear_stall()
        self.warn(self.describe_drop(queued))
        self.fail(f"outgoing buffer over {limit} bytes: the peer is not reading")
        return True

    def _stall_check(self) -> None:
        """A stall period after the peer was found over the limit, whether or not we wrote."""
        stall = self._stall
        transport = self.transport
        if stall is None or transport is None or transport.is_closing() or self.finished:
            return
        if not self._over_write_limit(transport) and self._stall is stall:
            # Not judged yet (the timer fired a hair early): look again when it is due.
            loop = asyncio.get_running_loop()
            due = max(stall[0] + STALL_SECONDS - loop.time(), 0.001)
            self._stall = (stall[0], stall[1], loop.call_later(due, self._stall_check))

    def _clear_stall(self) -> None:
        if self._stall is not None:
            self._stall[2].cancel()
            self._stall = None

    def _cancel_closing_timer(self) -> None:
        if self._closing_timer is not None:
            self._closing_timer.cancel()
            self._closing_timer = None
