"""Event channel frame codec: 4-byte big-endian length + one MessagePack array (docs/protocol.md).

Pure code, no I/O: :func:`encode_frame` turns a frame into bytes and :class:`FrameDecoder` turns a
byte stream back into frames, keeping a partial frame for the next read.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

__all__ = [
    "MAX_FRAME_SIZE",
    "PROTOCOL_VERSION",
    "FrameDecoder",
    "LARGE_PAYLOAD",
    "FrameError",
    "encode_frame",
    "encode_pieces",
]

#: Version of docs/protocol.md implemented here; the bridge checks it against the ``hello`` event.
PROTOCOL_VERSION = 6

#: Largest frame body accepted (1 GiB); a longer length prefix is a protocol error.
MAX_FRAME_SIZE = 1 << 30

_LENGTH = struct.Struct(">I")


class FrameError(Exception):
    """A frame that breaks the protocol.

    The decoder has already dropped the bad frame. When ``fatal`` is true the stream cannot be
    resynchronised (the length prefix itself was bad) and the channel must be treated as broken.
    ``frames`` holds the good frames decoded before the bad one in the same
    :meth:`FrameDecoder.feed` call; they are still to be handled.
    """

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.frames: list[list[Any]] = []


def encode_frame(frame: list[Any]) -> bytes:
    """Serialize one frame: length prefix + MessagePack (str stays str, bytes stay bin)."""
    body: bytes = msgpack.packb(frame, use_bin_type=True)
    return _LENGTH.pack(len(body)) + body


#: Payload size from which a frame's last field travels as its own piece (see encode_pieces).
LARGE_PAYLOAD = 64 * 1024

_STR32 = struct.Struct(">BI")


def encode_pieces(frame: list[Any]) -> list[bytes]:
    """The bytes of :func:`encode_frame` as pieces to write one after another: everything up to
    the last field, then the last field's payload itself, not copied into a new buffer.

    For frames whose last field is a str or bytes of :data:`LARGE_PAYLOAD` bytes or more (a
    large message): MessagePack writes such a field as a 5-byte header (``str 32`` / ``bin 32``)
    and the raw bytes, so the frame needs no packing of the payload at all.
    """
    data = frame[-1]
    if not isinstance(data, (str, bytes)) or len(data) < LARGE_PAYLOAD or len(frame) > 15:
        return [encode_frame(frame)]
    payload = data.encode() if isinstance(data, str) else data
    head: bytes = msgpack.packb(frame[:-1], use_bin_type=True)
    marker = 0xDB if isinstance(data, str) else 0xC6
    header = bytes((0x90 | len(frame),)) + head[1:] + _STR32.pack(marker, len(payload))
    return [_LENGTH.pack(len(header) + len(payload)) + header, payload]


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"MessagePack extension type {code} is not allowed")


def _decode_body(body: bytes | memoryview) -> list[Any]:
    try:
        frame = msgpack.unpackb(body, raw=False, strict_map_key=False, ext_hook=_no_ext)
    except Exception as exc:  # msgpack raises several unrelated types (ValueError, ExtraData...)
        raise FrameError(f"undecodable frame ({type(exc).__name__}: {exc})") from exc
    if not isinstance(frame, list) or not frame:
        raise FrameError(f"frame is not a non-empty array but {type(frame).__name__}")
    if not isinstance(frame[0], str):
        raise FrameError(f"frame kind is not a string but {type(frame[0]).__name__}")
    return frame


class FrameDecoder:
    """Streaming decoder: feed it bytes as they arrive, get whole frames back.

    Reads that end inside a frame are kept as they are and joined once the frame is complete,
    so a large frame arriving in many reads is copied once, not once per read.
    """

    def __init__(self, max_size: int = MAX_FRAME_SIZE) -> None:
        self._max_size = max_size
        self._broken = False
        self._buf = b""  # from _pos on: the start of what is not decoded yet
        self._pos = 0
        self._more: list[bytes] = []  # reads after _buf, not joined yet
        self._more_len = 0
        self._need = 4  # bytes needed from _pos before decoding can go on

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not complete yet."""
        return len(self._buf) - self._pos + self._more_len

    def feed(self, data: bytes) -> list[list[Any]]:
        """Add ``data`` and return the frames it completes, in order.

        Raises :class:`FrameError` for a bad frame, after dropping it; call ``feed(b"")`` to go on
        with the bytes after it (unless the error is fatal: then every later call raises too).
        """
        if self._broken:
            raise FrameError("channel broken by an earlier bad length prefix", fatal=True)
        if data:
            if self._pos >= len(self._buf) and not self._more:
                self._buf, self._pos = data, 0
            else:
                self._more.append(data)
                self._more_len += len(data)
        frames: list[list[Any]] = []
        try:
            while True:
                buf, pos = self._buf, self._pos
                available = len(buf) - pos
                if available < self._need:
                    if not self._more or available + self._more_len < self._need:
                        break
                    self._gather()
                    continue
                (size,) = _LENGTH.unpack_from(buf, pos)
                if size > self._max_size:
                    self._broken = True
                    self._buf, self._pos, self._more, self._more_len = b"", 0, [], 0
                    raise FrameError(
                        f"frame length {size} exceeds the limit of {self._max_size} bytes",
                        fatal=True,
                    )
                if available < 4 + size:
                    self._need = 4 + size
                    continue
                end = pos + 4 + size
                self._pos = end
                self._need = 4
                frames.append(_decode_body(memoryview(buf)[pos + 4 : end]))
        except FrameError as exc:
            exc.frames = frames
            raise
        return frames

    def _gather(self) -> None:
        pieces: list[bytes | memoryview] = []
        if self._pos < len(self._buf):
            pieces.append(memoryview(self._buf)[self._pos :])
        pieces.extend(self._more)
        self._buf, self._pos = b"".join(pieces), 0
        self._more, self._more_len = [], 0
