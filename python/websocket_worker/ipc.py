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
    "FrameError",
    "encode_frame",
]

#: Version of docs/protocol.md implemented here; the bridge checks it against the ``hello`` event.
PROTOCOL_VERSION = 2

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


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"MessagePack extension type {code} is not allowed")


def _decode_body(body: bytes) -> list[Any]:
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
    """Streaming decoder: feed it bytes as they arrive, get whole frames back."""

    def __init__(self, max_size: int = MAX_FRAME_SIZE) -> None:
        self._buffer = bytearray()
        self._max_size = max_size
        self._broken = False

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not complete yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[list[Any]]:
        """Add ``data`` and return the frames it completes, in order.

        Raises :class:`FrameError` for a bad frame, after dropping it; call ``feed(b"")`` to go on
        with the bytes after it (unless the error is fatal: then every later call raises too).
        """
        if self._broken:
            raise FrameError("channel broken by an earlier bad length prefix", fatal=True)
        buffer = self._buffer
        buffer += data
        frames: list[list[Any]] = []
        offset = 0
        end = len(buffer)
        try:
            while end - offset >= 4:
                (size,) = _LENGTH.unpack_from(buffer, offset)
                if size > self._max_size:
                    self._broken = True
                    raise FrameError(
                        f"frame length {size} exceeds the limit of {self._max_size} bytes",
                        fatal=True,
                    )
                if end - offset - 4 < size:
                    break
                start = offset + 4
                offset = start + size
                frames.append(_decode_body(bytes(buffer[start:offset])))
        except FrameError as exc:
            exc.frames = frames
            raise
        finally:
            if self._broken:
                buffer.clear()
            elif offset:
                del buffer[:offset]
        return frames
