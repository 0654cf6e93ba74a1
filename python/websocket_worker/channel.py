"""The event channel (fd 4): an asyncio protocol that reads command frames and writes events.

Incoming bytes go through :class:`~websocket_worker.ipc.FrameDecoder` and each frame to the
dispatcher callback. Outgoing frames are coalesced: :meth:`EventChannel.send` only encodes and
queues, and one write per event-loop iteration flushes everything queued so far. A large payload
(a 16 MiB message) is queued as its own piece and never copied into a joined buffer.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, cast

from .ipc import LARGE_PAYLOAD, FrameDecoder, FrameError, encode_frame, encode_pieces

__all__ = ["EventChannel", "open_channel"]

#: Called with the frames of one read, in order (often many: the bridge coalesces too).
Dispatch = Callable[[list[list[Any]]], None]
OnError = Callable[[FrameError], None]


class EventChannel(asyncio.Protocol):
    """One end of the event channel."""

    def __init__(self, dispatch: Dispatch, on_error: OnError | None = None) -> None:
        self._dispatch = dispatch
        self._on_error = on_error
        self._decoder = FrameDecoder()
        self._transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._pending_large = False  # a large payload is queued as its own piece
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self._loop.create_future()

    # Outgoing.

    def send(self, frame: list[Any]) -> None:
        """Queue one frame; it is written with the others at the end of this loop iteration."""
        if self.closed.done():
            return
        data = frame[-1]
        if (type(data) is bytes or type(data) is str) and len(data) >= LARGE_PAYLOAD:
            self._pending.extend(encode_pieces(frame))
            self._pending_large = True
        else:
            self._pending.append(encode_frame(frame))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        large, self._pending_large = self._pending_large, False
        transport = self._transport
        if transport is None or transport.is_closing() or not pending:
            return
        if large:
            transport.writelines(pending)  # uvloop writes the pieces as they are: no copy
        else:
            transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        """Flush what is queued and close the channel."""
        if self._transport is not None and not self._transport.is_closing():
            self._flush()
            self._transport.close()

    # asyncio.Protocol.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        chunk = data
        while True:
            try:
                frames = self._decoder.feed(chunk)
            except FrameError as exc:
                if exc.frames:
                    self._dispatch(exc.frames)
                if self._on_error is not None:
                    self._on_error(exc)
                if exc.fatal:
                    self.close()
                    return
                chunk = b""
                continue
            if frames:
                self._dispatch(frames)
            return

    def eof_received(self) -> bool:
        return False  # Node-RED went away: let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self._pending.clear()
        if not self.closed.done():
            self.closed.set_result(None)


async def open_channel(
    fd: int, dispatch: Dispatch, on_error: OnError | None = None
) -> EventChannel:
    """Wrap the inherited socket ``fd`` (an AF_UNIX socketpair end) as an :class:`EventChannel`."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    _, channel = await loop.connect_accepted_socket(lambda: EventChannel(dispatch, on_error), sock)
    return channel
