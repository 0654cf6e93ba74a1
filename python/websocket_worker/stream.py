"""Byte-proxy transport: a session's socket stand-in when Node pipes the bytes (fallback path).

Writes become ``["stream_data", sid, bytes]`` events of at most :data:`STREAM_CHUNK` bytes (Node
writes each to its socket as it arrives, not after a whole 16 MiB message crossed the channel),
closing becomes ``["stream_end", sid]``;
``stream_data`` / ``stream_end`` commands are fed back in. The same :class:`ServerSession` runs on
top of it as on a handed-over socket.

Flow control: ``pause_reading`` / ``resume_reading`` become ``["stream_pause", sid]`` /
``["stream_resume", sid]`` for Node to pause its socket. Bytes already on their way when Node
paused still arrive as ``stream_data`` and are fed to the session, which holds their messages until
the flow resumes. Node's socket buffers what it writes; here nothing is queued, so
``get_write_buffer_size`` is always 0 and a relayed session is never over its ``write_limit``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["STREAM_CHUNK", "StreamTransport"]

STREAM_CHUNK = 256 * 1024

Emit = Callable[[list[Any]], None]


class StreamTransport(asyncio.Transport):
    """An ``asyncio.Transport`` whose other end is a socket in Node, reached via the channel."""

    def __init__(
        self,
        sid: str,
        protocol: asyncio.Protocol,
        emit: Emit,
        on_lost: Callable[[StreamTransport], None] | None = None,
        peer: tuple[str, int] | None = None,
    ) -> None:
        super().__init__({"peername": peer, "sockname": None})
        self.sid = sid
        self._protocol = protocol
        self._emit = emit
        self._on_lost = on_lost
        self._closing = False
        self._lost = False
        self._paused = False
        self._loop = asyncio.get_running_loop()

    # Node's side.

    def start(self) -> None:
        """Attach the protocol (``connection_made``)."""
        self._protocol.connection_made(self)

    def feed(self, data: bytes) -> None:
        """Bytes the proxied peer sent."""
        if not self._lost:
            self._protocol.data_received(data)

    def peer_closed(self) -> None:
        """The proxied peer went away (``stream_end`` from Node): no ``stream_end`` back."""
        self._closing = True
        self._connection_lost()

    # asyncio.Transport.

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        if len(data) <= STREAM_CHUNK:
            self._emit(["stream_data", self.sid, bytes(data)])
            return
        view = memoryview(data)
        for start in range(0, len(view), STREAM_CHUNK):
            self._emit(["stream_data", self.sid, bytes(view[start : start + STREAM_CHUNK])])

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        pieces = list(list_of_data)
        if sum(len(piece) for piece in pieces) <= STREAM_CHUNK:
            self.write(b"".join(pieces))  # a frame's header and payload in one event
        else:
            for piece in pieces:
                self.write(piece)

    def can_write_eof(self) -> bool:
        return False  # a byte proxy cannot half-close: the session closes instead

    def write_eof(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._emit(["stream_end", self.sid])
        self._loop.call_soon(self._connection_lost)

    def abort(self) -> None:
        self.close()

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._protocol = protocol

    def is_reading(self) -> bool:
        return not self._closing and not self._paused

    def pause_reading(self) -> None:
        if not self._closing and not self._paused:
            self._paused = True
            self._emit(["stream_pause", self.sid])

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            if not self._closing:
                self._emit(["stream_resume", self.sid])

    def get_write_buffer_size(self) -> int:
        return 0  # what Node's socket has not sent yet is Node's to bound

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def _connection_lost(self) -> None:
        if self._lost:
            return
        self._lost = True
        if self._on_lost is not None:
            self._on_lost(self)
        self._protocol.connection_lost(None)
