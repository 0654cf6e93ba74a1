"""Sans-I/O WebSocket core: one connection after its opening handshake (RFC 6455, RFC 7692).

Bytes in (:meth:`WebSocketCore.receive_data`, :meth:`~WebSocketCore.receive_eof`), events out
(:meth:`~WebSocketCore.next_event`), bytes out (:meth:`~WebSocketCore.data_to_send`, and the
frames :meth:`~WebSocketCore.message` returns). No sockets, no asyncio, no clock: the shells
(:mod:`.session`, :mod:`.clients`) move the bytes and keep the timers.

One frame reader owns every rule and applies each at the first byte that decides it:

- the first two header bytes: RSV bits that no negotiated extension defines, reserved opcodes,
  control frames that are fragmented or longer than 125 bytes, the mask bit (a server takes only
  masked frames, a client only unmasked ones), a continuation with no message under way, a new
  message inside one;
- the payload length: the size limit, counting what the message already holds plus a fixed cost
  per fragment, so that a flood of empty fragments is bounded like one large message;
- the payload: UTF-8 of text (incrementally, fragment by fragment), close codes and reasons,
  permessage-deflate data.

A broken rule *fails* the connection: a close frame with 1002, 1007 or 1009 (a server then sends
EOF: it closes TCP first) and the rest of the input is discarded. Control frames may come between
the fragments of a message: a ping is answered, a close ends the connection normally.

Events: a whole message is returned as itself (``str`` for text, ``bytes`` for binary), so the hot
path makes no event object; everything else is a :class:`Ping`, :class:`Pong`, :class:`Closed` or
:class:`Failed`. Outgoing bytes from :meth:`~WebSocketCore.data_to_send` use websockets'
convention: an empty ``bytes`` means "send EOF here".
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Sequence
from typing import NamedTuple, Union

from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.extensions.base import Extension
from websockets.frames import Frame, Opcode

from .frames import (
    BINARY,
    CLOSE,
    CONT,
    FIN,
    MASK,
    PING,
    PONG,
    TEXT,
    apply_mask,
    build_frame,
    close_frame,
    control_frame,
    frame_header,
    message_frame,
    valid_close_code,
)

__all__ = [
    "CLOSED",
    "CLOSING",
    "FRAGMENT_COST",
    "OPEN",
    "Closed",
    "Event",
    "Failed",
    "Ping",
    "Pong",
    "WebSocketCore",
]

# Connection states.
OPEN = 0
CLOSING = 1  # our close frame is sent; the peer's is awaited
CLOSED = 2  # the closing handshake is over, or the connection failed: no frame in or out

#: Frames from this size on are joined alone from the reads that hold them (client side, where
#: the payload is not unmasked: one copy instead of two).
TAKE_ALONE = 256 * 1024

#: Bytes each fragment of a message counts against the size limit on top of its payload: what
#: holding and checking one more fragment costs. 4 MiB in 64-byte fragments (Autobahn 9.3.1)
#: counts 8 MiB; three million empty fragments count 183 MiB, over the default 100 MiB.
FRAGMENT_COST = 64

# Close codes the core sends when it fails a connection.
PROTOCOL_ERROR = 1002
INVALID_DATA = 1007
MESSAGE_TOO_BIG = 1009
NO_STATUS = 1005
ABNORMAL = 1006

_RSV = 0x70
_RSV1 = 0x40
_DATA_OPCODES = (CONT, TEXT, BINARY)
_CONTROL_OPCODES = (CLOSE, PING, PONG)
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


class Ping(NamedTuple):
    """The peer pinged (already answered with a pong unless closing)."""

    data: bytes


class Pong(NamedTuple):
    """The peer answered a ping (or sent an unsolicited pong)."""

    data: bytes


class Closed(NamedTuple):
    """The connection is over: a closing handshake (``code`` 1005 when the close frame had no
    status) or the peer's EOF without one (1006, ``clean`` false)."""

    code: int
    reason: str
    clean: bool


class Failed(NamedTuple):
    """The peer broke a rule: ``code``/``reason`` went out in our close frame; ``text`` says what
    happened, for an ``error`` event (never any payload)."""

    code: int
    reason: str
    text: str


Event = Union[str, bytes, Ping, Pong, Closed, Failed]


class WebSocketCore:
    """One open WebSocket connection, either side; see the module docstring."""

    # Thousands of idle connections: every slot counts.
    __slots__ = (
        "_buf",
        "_eof",
        "_extensions",
        "_frag",
        "_frag_cost",
        "_frag_text",
        "_mask_bit",
        "_more",
        "_more_len",
        "_need",
        "_out",
        "_pos",
        "_utf8",
        "client",
        "close_code",
        "close_reason",
        "close_received",
        "close_sent",
        "max_size",
        "state",
    )

    def __init__(
        self,
        *,
        client: bool = False,
        max_size: int | None = None,
        extensions: Sequence[Extension] = (),
    ) -> None:
        self.client = client
        #: Largest message in bytes (None: no limit).
        self.max_size = max_size
        self.state = OPEN
        #: Set once CLOSED: the code and reason of the closing handshake (the peer's, else ours
        #: when we failed the connection), 1006 when it ended without one.
        self.close_code: int | None = None
        self.close_reason = ""
        #: Whether a close frame went out / came in.
        self.close_sent = False
        self.close_received = False
        self._extensions = tuple(extensions)
        # A server reads masked frames (mask bit set), a client unmasked ones.
        self._mask_bit = 0 if client else MASK
        # Input: _buf from _pos on, then the reads in _more (joined once there is enough for the
        # next step: a large frame arriving in many reads is copied once, not once per read).
        self._buf = b""
        self._pos = 0
        self._more: list[bytes] | None = None  # None, not [], while empty: less per connection
        self._more_len = 0
        self._need = 2  # bytes to have from _pos before parsing again
        self._eof = False
        self._frag: bytearray | None = None  # a fragmented message under way
        self._frag_text = False
        self._frag_cost = 0
        self._utf8: codecs.IncrementalDecoder | None = None
        self._out: list[bytes] | None = None

    # Input.

    def receive_data(self, data: bytes) -> None:
        """Take bytes from the peer; :meth:`next_event` parses them."""
        if self.state is CLOSED or self._eof:
            return  # discarded
        if self._pos >= len(self._buf) and not self._more:
            self._buf = data  # nothing left over: parse straight from the read, no copy
            self._pos = 0
            return
        more = self._more
        if more is None:
            self._more = [data]
        else:
            more.append(data)
        self._more_len += len(data)

    def receive_eof(self) -> None:
        """The peer closed its side of TCP."""
        self._eof = True

    def next_event(self) -> Event | None:
        """The next event, or None until more bytes (or EOF) arrive."""
        while True:
            buf = self._buf
            pos = self._pos
            available = len(buf) - pos
            if available < self._need:
                if not self._more or available + self._more_len < self._need:
                    return self._starved()
                if not (self.client and self._need >= TAKE_ALONE):
                    self._gather()
                    continue
                # A large unmasked payload is joined alone, below: the header is in _buf.
            first = buf[pos]
            second = buf[pos + 1]
            # A whole text or binary frame outside a fragmented message, no RSV bits, the mask
            # bit right: nearly all traffic, and no header rule can fail. Anything else is checked.
            if not (
                (first == 0x81 or first == 0x82)
                and second & MASK == self._mask_bit
                and self._frag is None
            ):
                failed = self._check_header(first, second)
                if failed is not None:
                    return failed
            length = second & 0x7F
            header = 2
            if length == 126:
                header = 4
                if available < 4:
                    self._need = 4
                    continue
                length = (buf[pos + 2] << 8) | buf[pos + 3]
            elif length == 127:
                header = 10
                if available < 10:
                    self._need = 10
                    continue
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                if length >> 63:
                    return self._fail(PROTOCOL_ERROR, "payload length over 2**63")
            opcode = first & 0x0F
            max_size = self.max_size
            if opcode < CLOSE and max_size is not None:
                held = 0 if self._frag is None else self._frag_cost + FRAGMENT_COST
                if held + length > max_size:
                    return self._too_big()
            if self.client:
                start = pos + header
                end = start + length
                if len(buf) >= end:
                    payload = buf[start:end]
                elif len(buf) + self._more_len >= end and end - pos >= TAKE_ALONE:
                    payload = self._take(start, end)  # one copy, not a join and then a slice
                    end = 0  # _take made the rest the new buffer
                else:
                    self._need = end - pos
                    continue
            else:
                start = pos + header + 4
                end = start + length
                if len(buf) < end:
                    self._need = end - pos
                    continue
                key = buf[start - 4 : start]
                # A memoryview saves copying a large payload; a small one is cheaper to slice.
                data = buf[start:end] if length < 4096 else memoryview(buf)[start:end]
                payload = apply_mask(data, key)
            self._pos = end
            self._need = 2
            if first == 0x81 and not self._extensions:
                try:
                    return str(payload, "utf-8")
                except UnicodeDecodeError:
                    return self._invalid_utf8()
            if first == 0x82 and not self._extensions:
                return payload
            if opcode < CLOSE:
                event = self._data_frame(opcode, payload, first & FIN, first & _RSV1)
            else:
                event = self._control_frame(opcode, payload)
            if event is not None:
                return event

    def _gather(self) -> None:
        """Join what is left of the buffer with the reads since, in one copy."""
        pieces: list[bytes | memoryview] = []
        if self._pos < len(self._buf):
            pieces.append(memoryview(self._buf)[self._pos :])
        pieces.extend(self._more or ())
        self._buf = b"".join(pieces)
        self._pos = 0
        self._more = None
        self._more_len = 0

    def _take(self, start: int, end: int) -> bytes:
        """``_buf[start:end]`` where ``end`` lies in the reads in ``_more``: joined in one copy;
        what follows it becomes the buffer."""
        pieces: list[bytes | memoryview] = [memoryview(self._buf)[start:]]
        missing = end - len(self._buf)
        more = self._more or []
        rest: list[bytes | memoryview] = []
        for index, chunk in enumerate(more):
            if len(chunk) < missing:
                pieces.append(chunk)
                missing -= len(chunk)
                continue
            pieces.append(memoryview(chunk)[:missing])
            if missing < len(chunk):
                rest.append(memoryview(chunk)[missing:])
            rest.extend(more[index + 1 :])
            break
        payload = b"".join(pieces)
        self._buf = b"".join(rest)
        self._more, self._more_len = None, 0
        return payload

    def _starved(self) -> Event | None:
        """Not enough bytes for the next step: wait, or end (EOF). Once closed, the buffers are
        empty and input is discarded."""
        if self._eof and self.state is not CLOSED:
            return self._abnormal_end()
        return None

    def _check_header(self, first: int, second: int) -> Failed | None:
        """The rules the first two bytes of a frame decide."""
        opcode = first & 0x0F
        if first & _RSV and not (
            first & _RSV == _RSV1 and self._extensions and opcode in (TEXT, BINARY)
        ):
            return self._fail(PROTOCOL_ERROR, "reserved bits must be 0")
        if opcode in _DATA_OPCODES:
            if opcode == CONT:
                if self._frag is None:
                    return self._fail(PROTOCOL_ERROR, "continuation frame without a message")
            elif self._frag is not None:
                return self._fail(PROTOCOL_ERROR, "new message inside a fragmented message")
        elif opcode in _CONTROL_OPCODES:
            if not first & FIN:
                return self._fail(PROTOCOL_ERROR, "fragmented control frame")
            if second & 0x7F > 125:
                return self._fail(PROTOCOL_ERROR, "control frame longer than 125 bytes")
        else:
            return self._fail(PROTOCOL_ERROR, f"reserved opcode {opcode}")
        if second & MASK != self._mask_bit:
            if self.client:
                return self._fail(PROTOCOL_ERROR, "masked frame from the server")
            return self._fail(PROTOCOL_ERROR, "unmasked frame from the client")
        return None

    # Output.

    def message(self, data: str | bytes) -> bytes:
        """The frame(s) of one message to write, or b"" when no message may be sent any more."""
        if self.state is not OPEN:
            return b""
        if not self._extensions:
            return message_frame(data, masked=self.client)
        if isinstance(data, str):
            frame = Frame(Opcode.TEXT, data.encode())
        else:
            frame = Frame(Opcode.BINARY, data)
        for extension in self._extensions:
            frame = extension.encode(frame)
        first = FIN | int(frame.opcode) | (_RSV1 if frame.rsv1 else 0)
        return build_frame(first, bytes(frame.data), self.client)

    def message_pieces(self, data: str | bytes) -> list[bytes]:
        """Like :meth:`message`, but a large payload is returned as its own piece after the
        header, not copied behind it (for a transport that writes pieces as they are)."""
        if self.state is not OPEN:
            return []
        if self._extensions:
            return [self.message(data)]
        if isinstance(data, str):
            payload, first = data.encode(), FIN | TEXT
        else:
            payload, first = data, FIN | BINARY
        if not self.client:
            return [frame_header(first, len(payload)), payload]
        key = os.urandom(4)
        return [frame_header(first, len(payload), MASK) + key, apply_mask(payload, key)]

    def ping(self, data: bytes = b"") -> None:
        if self.state is OPEN:
            self._queue(control_frame(PING, data, masked=self.client))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (nothing once it has started)."""
        if self.state is OPEN:
            self._send_close(code, reason)
            self.state = CLOSING

    def data_to_send(self) -> list[bytes]:
        """Bytes the core wants written (pongs, close frames); b"" means: send EOF now."""
        out = self._out
        if out is None:
            return []
        self._out = None
        return out

    def _queue(self, data: bytes) -> None:
        if self._out is None:
            self._out = [data]
        else:
            self._out.append(data)

    @property
    def partial(self) -> int:
        """Bytes read but not yet parsed into an event (a frame or message still arriving)."""
        held = len(self._buf) - self._pos + self._more_len
        return held + (len(self._frag) if self._frag is not None else 0)

    # Internals.

    def _data_frame(self, opcode: int, payload: bytes, fin: int, rsv1: int) -> Event | None:
        if self._extensions:
            try:
                payload = self._decode(opcode, payload, fin, rsv1)
            except PayloadTooBig:
                return self._too_big()
            except ProtocolError as exc:
                return self._fail(PROTOCOL_ERROR, str(exc))
        if opcode != CONT:
            text = opcode == TEXT
            if fin:
                if not text:
                    return payload
                try:
                    return str(payload, "utf-8")
                except UnicodeDecodeError:
                    return self._invalid_utf8()
            self._frag = bytearray(payload)
            self._frag_text = text
            self._frag_cost = len(payload)
            if text:
                self._utf8 = _Utf8Decoder()
        else:
            frag = self._frag
            assert frag is not None  # checked on the header
            frag += payload
            self._frag_cost += len(payload) + FRAGMENT_COST
        utf8 = self._utf8
        if utf8 is not None:
            try:
                utf8.decode(payload, final=bool(fin))
            except UnicodeDecodeError:
                return self._invalid_utf8()
        if not fin:
            return None
        whole = bytes(self._frag or b"")
        text = self._frag_text
        self._frag = self._utf8 = None
        self._frag_cost = 0
        return str(whole, "utf-8") if text else whole

    def _decode(self, opcode: int, payload: bytes, fin: int, rsv1: int) -> bytes:
        """Run a data frame through the extensions (permessage-deflate), last negotiated first."""
        limit = self.max_size
        if limit is not None and self._frag is not None:
            limit = max(limit - len(self._frag), 0)
        frame = Frame(Opcode(opcode), payload, bool(fin), bool(rsv1))
        for extension in reversed(self._extensions):
            frame = extension.decode(frame, max_size=limit)
        return bytes(frame.data)

    def _control_frame(self, opcode: int, payload: bytes) -> Event | None:
        if opcode == PING:
            if self.state is OPEN:
                self._queue(control_frame(PONG, payload, masked=self.client))
            return Ping(payload)
        if opcode == PONG:
            return Pong(payload)
        # Close.
        if len(payload) == 0:
            code, reason = NO_STATUS, ""
        elif len(payload) == 1:
            return self._fail(PROTOCOL_ERROR, "close frame too short")
        else:
            code = (payload[0] << 8) | payload[1]
            if not valid_close_code(code):
                return self._fail(PROTOCOL_ERROR, f"invalid close code {code}")
            try:
                reason = str(payload[2:], "utf-8")
            except UnicodeDecodeError:
                return self._fail(INVALID_DATA, "invalid UTF-8", "invalid UTF-8 in a close reason")
        self.close_received = True
        if self.state is OPEN:
            # Echo the peer's close (RFC 6455 5.5.1); a message under way is abandoned.
            self._queue(control_frame(CLOSE, payload, masked=self.client))
            self.close_sent = True
        self._end(code, reason)
        return Closed(code, reason, True)

    def _send_close(self, code: int, reason: str) -> None:
        self._queue(close_frame(code, reason, masked=self.client))
        self.close_sent = True

    def _fail(self, code: int, reason: str, text: str | None = None) -> Failed:
        if self.state is OPEN:
            self._send_close(code, reason)
        self._end(code, reason)
        detail = text if text is not None else f"protocol error: {reason}"
        return Failed(code, reason, f"{detail} ({code})")

    def _too_big(self) -> Failed:
        text = f"message too big: over {self.max_size} bytes"
        return self._fail(MESSAGE_TOO_BIG, "message too big", text)

    def _invalid_utf8(self) -> Failed:
        return self._fail(INVALID_DATA, "invalid UTF-8", "invalid UTF-8 in a text message")

    def _abnormal_end(self) -> Closed:
        self._end(ABNORMAL, "")
        return Closed(ABNORMAL, "", False)

    def _end(self, code: int, reason: str) -> None:
        self.state = CLOSED
        self.close_code = code
        self.close_reason = reason
        self._buf, self._pos = b"", 0
        self._more, self._more_len = None, 0
        self._frag = self._utf8 = None
        if not self.client and not self._eof:
            self._queue(b"")  # a server closes TCP first (RFC 6455 7.1.1)
