"""WebSocket frames on the wire (RFC 6455 section 5): constants and the frames the worker writes.

Pure functions over bytes, no state and no I/O; reading frames is :mod:`.core`'s job. Frames from
a server are unmasked; a client masks every frame with a fresh random key.
"""

from __future__ import annotations

import os
import struct

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

__all__ = [
    "BINARY",
    "FIN",
    "MASK",
    "CLOSE",
    "CONT",
    "PING",
    "PONG",
    "TEXT",
    "apply_mask",
    "build_frame",
    "close_frame",
    "close_payload",
    "control_frame",
    "frame_header",
    "message_frame",
    "valid_close_code",
]

# Opcodes.
CONT = 0x0
TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9
PONG = 0xA

FIN = 0x80
MASK = 0x80

_U16 = struct.Struct("!BBH")
_U64 = struct.Struct("!BBQ")
_CODE = struct.Struct("!H")


def frame_header(first: int, length: int, mask_bit: int = 0) -> bytes:
    """Header of a frame whose first byte is ``first`` (FIN, RSV, opcode) and payload ``length``.

    ``mask_bit`` is 0 (server) or :data:`MASK` (client: four key bytes follow the header).
    """
    if length < 126:
        return bytes((first, mask_bit | length))
    if length < 0x10000:
        return _U16.pack(first, mask_bit | 126, length)
    return _U64.pack(first, mask_bit | 127, length)


def message_frame(data: str | bytes, masked: bool = False) -> bytes:
    """One whole message as one final frame: str as text, bytes as binary."""
    if isinstance(data, str):
        payload, first = data.encode(), FIN | TEXT
    else:
        payload, first = data, FIN | BINARY
    if not masked:  # the hot path: every message a listener sends
        return frame_header(first, len(payload)) + payload
    return build_frame(first, payload, masked)


def control_frame(opcode: int, payload: bytes, masked: bool = False) -> bytes:
    """A ping, pong or close frame (payload at most 125 bytes)."""
    return build_frame(FIN | opcode, payload, masked)


def build_frame(first: int, payload: bytes, masked: bool) -> bytes:
    """A final frame: ``first`` (FIN, RSV, opcode), then the payload, masked for a client."""
    if not masked:
        return frame_header(first, len(payload)) + payload
    key = os.urandom(4)
    return frame_header(first, len(payload), MASK) + key + apply_mask(payload, key)


def close_payload(code: int, reason: str) -> bytes:
    """The payload of a close frame: nothing for 1005 (no status), else code + UTF-8 reason."""
    if code == 1005:
        return b""
    text = reason.encode()
    if len(text) > 123:  # the whole control payload is at most 125 bytes; cut between characters
        text = text[:123].decode(errors="ignore").encode()
    return _CODE.pack(code) + text


def close_frame(code: int, reason: str = "", masked: bool = False) -> bytes:
    return control_frame(CLOSE, close_payload(code, reason), masked)


def valid_close_code(code: int) -> bool:
    """A code a peer may send in a close frame (RFC 6455 7.4, the IANA registry, as ``ws``)."""
    return 1000 <= code <= 1014 and code not in (1004, 1005, 1006) or 3000 <= code <= 4999
