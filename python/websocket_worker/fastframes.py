"""The WebSocket frames that make up nearly all traffic, read and written without websockets.

A listener session (:mod:`.session`) reads whole, unfragmented, masked text and binary frames of a
connection without extensions straight from its buffer, and writes its messages the same way;
every other frame (control frames, fragments, anything malformed or over the size limit) still
goes to websockets' Sans-I/O protocol, whole, so websockets keeps the connection's state and all
the checks. Pure functions over bytes, no I/O.
"""

from __future__ import annotations

import struct

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

__all__ = ["BINARY", "TEXT", "apply_mask", "frame_header", "message_frame", "scan_frame"]

#: First byte of a final text / binary frame with no RSV bits: the only ones read here.
TEXT = 0x81
BINARY = 0x82

_U16 = struct.Struct("!BBH")
_U64 = struct.Struct("!BBQ")


def frame_header(first: int, length: int) -> bytes:
    """Header of an unmasked (server to client) frame whose first byte is ``first``."""
    if length < 126:
        return bytes((first, length))
    if length < 0x10000:
        return _U16.pack(first, 126, length)
    return _U64.pack(first, 127, length)


def message_frame(data: str | bytes) -> bytes:
    """One message as an unmasked frame: str as text, bytes as binary."""
    if isinstance(data, str):
        payload, first = data.encode(), TEXT
    else:
        payload, first = data, BINARY
    return frame_header(first, len(payload)) + payload


def scan_frame(buffer: bytes | bytearray, offset: int, end: int) -> tuple[int, int, int] | None:
    """Locate the frame at ``buffer[offset:end]``.

    Returns ``(first byte, payload start, payload length)`` (the 4 mask bytes sit just before the
    payload start), ``(first byte, -1, payload length)`` for an unmasked frame, or None while the
    header itself is incomplete.
    """
    if end - offset < 2:
        return None
    first = buffer[offset]
    second = buffer[offset + 1]
    length = second & 0x7F
    start = offset + 2
    if length == 126:
        if end - start < 2:
            return None
        length = (buffer[start] << 8) | buffer[start + 1]
        start += 2
    elif length == 127:
        if end - start < 8:
            return None
        length = int.from_bytes(buffer[start : start + 8], "big")
        start += 8
    if not second & 0x80:
        return first, -1, length
    return first, start + 4, length
