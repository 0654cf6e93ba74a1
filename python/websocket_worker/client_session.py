"""One attempt of a client connection: the opening handshake by websockets' Sans-I/O
``ClientProtocol`` (public API only), then the shared :class:`~websocket_worker.shell.Shell`
around the connection's core, with core's heartbeat.

:attr:`ClientSession.opened` completes when the handshake did (or fails with why it did not);
:attr:`ClientSession.ended` when the transport is gone, with the close code and reason to report.
The session emits ``open`` (before any message; with the URL and the server's response
headers), ``message`` and ``error`` events; ``close`` is its connection's, after the attempt,
with :attr:`ClientSession.closed_by`: who ended it (:data:`CLOSED_BY`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
from websockets.http11 import USER_AGENT, Response
from websockets.protocol import OPEN as HANDSHAKE_DONE
from websockets.typing import Subprotocol
from websockets.uri import WebSocketURI

from .core import Ping, Pong, WebSocketCore
from .flow import FlowControl
from .handshake import RequestReader
from .options import ClientOptions
from .shell import Emit, Shell, WriteBatch

__all__ = ["CLOSED_BY", "CLOSING_TIMEOUT", "ClientSession", "HandshakeRejected", "safe_url"]

Log = Callable[[str, str], None]

#: Seconds the server has to answer our close and end TCP (or to end TCP after its close).
CLOSING_TIMEOUT = 1.5

#: The ``by`` of a client connection's ``close``, from this side's point of view as a listener
#: session's: the client (this side: a flow's action, a new URL, the node stopping), the server
#: (its close frame, or its connection ended), the heartbeat (no pong by the next ping), or an
#: error (the worker failed it, or the attempt failed; ``error`` came first).
CLOSED_BY = ("client", "server", "heartbeat", "error")

#: Response headers never passed on to flows.
HIDDEN_RESPONSE_HEADERS = frozenset(("set-cookie", "set-cookie2"))


def url_without_credentials(url: str) -> str:
    """``url`` as connect events show it: without ``user:password@``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def safe_url(url: str) -> str:
    """``url`` for a log: scheme, host, port and path; no credentials, query or fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "client connection"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class HandshakeRejected(Exception):
    """The server answered the upgrade with another HTTP status than 101."""

    def __init__(self, status: int) -> None:
        super().__init__(f"server rejected WebSocket connection: HTTP {status}")
        self.status = status


class ClientSession(Shell):
    """The connection of one attempt; see the module docstring."""

    __slots__ = (
        "_awaiting_pong",
        "_handshake",
        "_heartbeat",
        "_log",
        "_options",
        "_reader",
        "_uri",
        "ended",
        "opened",
        "subprotocol",
    )

    closing_timeout = CLOSING_TIMEOUT
    CLOSED_HERE = "client"
    CLOSED_THERE = "server"

    def __init__(self, owner: int, uri: WebSocketURI, options: ClientOptions, emit: Emit,
                 flow: FlowControl, batch: WriteBatch, log: Log) -> None:  # fmt: skip
        super().__init__(owner, None, emit, flow, batch, options.write_limit)
        self._log = log
        self._uri = uri
        self._options = options
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.opened.add_done_callback(_retrieve)  # an attempt given up on may never await it
        self.ended: asyncio.Future[tuple[int, str]] = loop.create_future()
        self.subprotocol: str | None = None
        self._handshake: ClientProtocol | None = None
        self._reader = RequestReader()  # reads the response head as it reads a request
        self._heartbeat: asyncio.TimerHandle | None = None
        self._awaiting_pong = False

    def describe_drop(self, queued: int) -> str:
        return (f"{safe_url(self._options.url)}: the server stopped reading; dropped the "
                f"connection after {queued} bytes queued")  # fmt: skip

    def warn(self, text: str) -> None:
        self._log("warn", text)

    # asyncio.Protocol.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        options = self._options
        protocol = ClientProtocol(
            self._uri,
            extensions=enable_client_permessage_deflate(None) if options.compression else None,
            subprotocols=[Subprotocol(name) for name in options.subprotocols] or None,
            max_size=options.max_size,
        )
        request = protocol.connect()
        user_agent = USER_AGENT
        for name, value in options.headers:
            if name.lower() == "user-agent":
                user_agent = value
            else:
                request.headers[name] = value
        request.headers["User-Agent"] = user_agent
        protocol.send_request(request)
        self._handshake = protocol
        self._write_all(protocol.data_to_send())

    def _handshake_data(self, data: bytes) -> None:
        if self._handshake is None or self.opened.done():
            return
        try:
            found = self._reader.feed(data)
        except ValueError:
            self._refused(ValueError("invalid HTTP response: too long"))
            return
        if found is not None:
            self._response(*found)

    def _stop_timers(self) -> None:
        self._stop_heartbeat()

    def _ended(self, closed: tuple[int, str] | None, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("connection closed during handshake"))
        if not self.ended.done():
            self.ended.set_result(closed or (1006, ""))

    # The handshake.

    def _response(self, head: bytes, rest: bytes) -> None:
        protocol = self._handshake
        assert protocol is not None
        self._handshake = None
        status_line = head.split(b"\r\n", 1)[0].split(b" ", 2)
        status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
        if status != 101:
            invalid = ValueError("invalid HTTP response")
            self._refused(HandshakeRejected(status) if status else invalid)
            return
        protocol.receive_data(head)
        response = next((e for e in protocol.events_received() if isinstance(e, Response)), None)
        if protocol.state is not HANDSHAKE_DONE or response is None:
            self._refused(protocol.handshake_exc or ValueError("invalid HTTP response"))
            return
        self.subprotocol = protocol.subprotocol
        core = WebSocketCore(
            client=True, max_size=self._options.max_size, extensions=protocol.extensions
        )
        self.opened.set_result(None)
        # Reported here, before the frames that came with the response are delivered.
        headers: dict[str, str] = {}
        for name, value in response.headers.raw_items():
            key = name.lower()
            if key not in HIDDEN_RESPONSE_HEADERS:
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
        url = url_without_credentials(self._options.url)
        self.emit(["open", self.owner, None,
                   {"subprotocol": self.subprotocol, "url": url, "headers": headers}])  # fmt: skip
        self._start_heartbeat()
        self._open(core, rest)

    def _refused(self, exc: BaseException) -> None:
        self._handshake = None
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    # Heartbeat, as core's ``hb``: a ping every interval; no ping or pong since the last one → drop.

    def _event(self, event: object) -> None:
        kind = type(event)
        if kind is Ping or kind is Pong:
            self._awaiting_pong = False
            return
        super()._event(event)

    def _start_heartbeat(self) -> None:
        interval = self._options.heartbeat
        if interval:
            self._heartbeat = asyncio.get_running_loop().call_later(interval, self._beat)

    def _beat(self) -> None:
        self._heartbeat = None
        if self.finished or not self.is_open:
            return
        if self.flow.paused:
            self._awaiting_pong = False  # not reading: a pong may be waiting unread
        elif self._awaiting_pong:
            self.by = "heartbeat"
            self.fail("timeout")
            return
        else:
            self._awaiting_pong = True
            assert self.core is not None
            self.core.ping()
            self._flush()
        self._start_heartbeat()

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
