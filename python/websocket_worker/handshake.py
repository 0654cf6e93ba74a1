"""The server's opening handshake, by websockets' Sans-I/O ``ServerProtocol`` (public API only).

:class:`RequestReader` collects the HTTP upgrade request from the bytes of a connection and keeps
whatever follows it (the first frames) for the :class:`~websocket_worker.core.WebSocketCore`.
:func:`answer` hands the request alone to a fresh ``ServerProtocol``, which checks it, negotiates
the subprotocol and permessage-deflate and writes the response. The protocol object is dropped
with the handshake: an open connection holds only its core.
"""

from __future__ import annotations

import http
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from websockets.extensions.base import Extension, ServerExtensionFactory
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from .auth import Refusal

__all__ = [
    "MAX_REQUEST_BYTES",
    "Answer",
    "Check",
    "RequestReader",
    "SelectSubprotocol",
    "answer",
    "select_subprotocol",
]

#: Longest upgrade request read (websockets allows 8 KiB a line): past it, 431.
MAX_REQUEST_BYTES = 64 * 1024

BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Connection: close\r\nContent-Length: 0\r\n\r\n"
)

SelectSubprotocol = Callable[[ServerProtocol, Sequence[Subprotocol]], "Subprotocol | None"]

#: The endpoint's checks of a request websockets would accept (:class:`~.auth.Gate`): a
#: refusal, or the client's identity (None without authentication).
Check = Callable[[Request], "Refusal | dict[str, Any] | None"]


def select_subprotocol(available: Sequence[str] | None, skip: str = "") -> SelectSubprotocol:
    """Subprotocol choice: the client's first offer (``None``, like ``ws``) or ours in order.

    With a list and no common subprotocol the handshake goes on without one, as ``ws`` does.
    Offers starting with ``skip`` (a token: see :mod:`.auth`) are never chosen.
    """
    if skip:
        choose = select_subprotocol(available)

        def without_tokens(
            protocol: ServerProtocol, offered: Sequence[Subprotocol]
        ) -> Subprotocol | None:
            return choose(protocol, [name for name in offered if not name.startswith(skip)])

        return without_tokens
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


class RequestReader:
    """Accumulates bytes until the end of the HTTP request head (a blank line)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> tuple[bytes, bytes] | None:
        """``(request, rest)`` once the request is complete, else None.

        Raises ValueError when the request grows past :data:`MAX_REQUEST_BYTES`.
        """
        buffer = self._buffer
        start = max(len(buffer) - 3, 0)
        buffer += data
        end = buffer.find(b"\r\n\r\n", start)
        if end < 0:
            if len(buffer) > MAX_REQUEST_BYTES:
                raise ValueError("request too large")
            return None
        end += 4
        request, rest = bytes(buffer[:end]), bytes(buffer[end:])
        buffer.clear()
        return request, rest


class Answer(NamedTuple):
    """What became of an upgrade request."""

    #: The HTTP status sent (101: open).
    status: int
    #: Bytes to write, in order; b"" means: send EOF (the request was refused).
    writes: list[bytes]
    #: The request as websockets parsed it (None when it was not HTTP).
    request: Request | None
    subprotocol: str | None
    extensions: list[Extension]
    #: Why it was refused, for a debug log (never a header value).
    refusal: str
    #: Who the client is (authentication), else None.
    user: dict[str, Any] | None = None


def answer(
    request: bytes,
    select: SelectSubprotocol,
    extensions: Sequence[ServerExtensionFactory] | None,
    check: Check | None = None,
) -> Answer:
    """Answer one complete upgrade request; ``check`` runs once websockets would accept it."""
    protocol = ServerProtocol(extensions=extensions, select_subprotocol=select)
    protocol.receive_data(request)
    events = protocol.events_received()
    parsed = events[0] if events and isinstance(events[0], Request) else None
    if parsed is None:
        # Not HTTP at all: websockets only hangs up; say 400 first.
        return Answer(400, [BAD_REQUEST, b""], None, None, [], "not an HTTP request")
    response = protocol.accept(parsed)
    user = None
    if check is not None and response.status_code == 101:
        verdict = check(parsed)
        if isinstance(verdict, Refusal):
            status = http.HTTPStatus(verdict.status)
            response = protocol.reject(status, f"{status.phrase}\n")
            for name, value in verdict.headers:
                response.headers[name] = value
            protocol.send_response(response)
            return Answer(status.value, protocol.data_to_send(), parsed, None, [], verdict.why)
        user = verdict
    protocol.send_response(response)
    writes = protocol.data_to_send()
    if response.status_code != 101:
        exc = protocol.handshake_exc
        refusal = f"{type(exc).__name__}: {exc}" if exc is not None else "refused"
        return Answer(response.status_code, writes, parsed, None, [], refusal)
    return Answer(101, writes, parsed, protocol.subprotocol, list(protocol.extensions), "", user)
