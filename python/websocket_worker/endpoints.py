"""Listener endpoints: which sessions belong to which endpoint, and every command about them.

An :class:`Endpoint` is one declared listener path (an ``owner``) with its options and sessions;
:class:`Endpoints` is the registry the dispatcher talks to. Sessions come in as handed-over sockets
(:meth:`Endpoints.adopt`) or as byte-proxy streams (:meth:`Endpoints.stream_open`); both run the
same :class:`~websocket_worker.session.ServerSession`. Every session reads under the worker's one
:class:`~websocket_worker.flow.FlowControl`.

An endpoint also owns what concerns all its sessions: the checks before a handshake completes
(:class:`~websocket_worker.auth.Gate`: origins, authentication, and here the connection limit),
and the heartbeat: one timer per endpoint pings every open session, rather than one per session.
With a backplane (backplane.py) an endpoint also publishes: its flow's broadcasts (``publish``),
replies and closes for sessions of other instances, and its count of open sessions; and it
delivers what comes from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any, cast

from websockets.extensions.base import ServerExtensionFactory
from websockets.extensions.permessage_deflate import enable_server_permessage_deflate
from websockets.http11 import Request

from .auth import TOKEN_PROTOCOL_PREFIX, Gate, Refusal, client_address
from .background import Background
from .backplane import Backplanes, Link
from .envelopes import node_of
from .flow import FlowControl
from .frames import message_frame
from .handshake import Answer, answer, select_subprotocol
from .options import EndpointOptions
from .session import ServerSession
from .shell import WriteBatch
from .stream import StreamTransport

__all__ = ["UNLISTEN_TIMEOUT", "Endpoint", "Endpoints"]

#: Seconds ``unlisten`` waits for sessions to finish their closing handshake before dropping them.
UNLISTEN_TIMEOUT = 2.0

NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

Emit = Callable[[list[Any]], None]
Log = Callable[[str, str], None]

logger = logging.getLogger("websocket_worker.endpoints")


class Endpoint:
    """One declared listener endpoint and its sessions, by sid; the
    :class:`~websocket_worker.session.SessionHost` of each."""

    def __init__(
        self,
        owner: int,
        options: EndpointOptions,
        emit: Emit,
        batch: WriteBatch | None = None,
        flow: FlowControl | None = None,
        log: Log | None = None,
    ) -> None:
        self.owner = owner
        self.emit = emit
        self.batch = batch if batch is not None else WriteBatch()
        self.flow = flow if flow is not None else FlowControl()
        self.sessions: dict[str, ServerSession] = {}
        #: Sessions whose handshake succeeded and that are not finished.
        self.open_count = 0
        self._log: Log = log or (lambda level, text: None)
        self._all_gone: asyncio.Future[None] | None = None
        self._heartbeat: asyncio.TimerHandle | None = None
        #: The backplane's link, when the endpoint has one and it could be made.
        self.backplane: Link | None = None
        self.configure(options)

    def configure(self, options: EndpointOptions) -> None:
        """Set the options used by sessions from now on (the heartbeat: for every session)."""
        self.options = options
        gated = options.auth is not None or options.origins is not None
        self._gate = Gate(options, self._log) if gated else None
        if self._gate is not None and self._gate.problem:
            self._log("error", f"{self.name}: every client is refused (503): {self._gate.problem}")
        strips = self._gate is not None and self._gate.strips_protocols
        skip = TOKEN_PROTOCOL_PREFIX if strips else ""
        self.select_subprotocol = select_subprotocol(options.subprotocols, skip)
        self._extensions: Sequence[ServerExtensionFactory] | None = (
            enable_server_permessage_deflate(None) if options.compression else None
        )
        self._stop_heartbeat()
        self._start_heartbeat()

    @property
    def name(self) -> str:
        """The endpoint in logs: its path."""
        return self.options.path or f"endpoint {self.owner}"

    def answer(self, request: bytes, peer: tuple[str, int] | None = None) -> Answer:
        options = self.options
        gate = self._gate
        limit = options.max_connections
        if gate is None and limit is None:
            result = answer(request, self.select_subprotocol, self._extensions)
        else:
            full = limit is not None and self.open_count >= limit

            def check(parsed: Request) -> Refusal | dict[str, Any] | None:
                if gate is None:
                    return Refusal(503, (), "connection limit reached") if full else None
                address = client_address(parsed, peer, options.trust_proxy)[0]
                return gate.check(parsed, address, full)

            result = answer(request, self.select_subprotocol, self._extensions, check)
        if result.status == 101:
            self.open_count += 1  # the session opens right after, in the same call
            self._count_changed()
        return result

    def new_session(self, sid: str, request: bytes = b"", head: bytes = b"") -> ServerSession:
        session = ServerSession(self, sid, request=request, head=head)
        self.sessions[sid] = session
        return session

    def session_finished(self, session: ServerSession) -> None:
        sid = session.sid
        if sid is not None and self.sessions.get(sid) is session:
            del self.sessions[sid]
            if session.opened:
                self.open_count -= 1
                self._count_changed()
        if not self.sessions and self._all_gone is not None and not self._all_gone.done():
            self._all_gone.set_result(None)

    def _count_changed(self) -> None:
        """With a backplane the other instances learn the count (coalesced, census.py)."""
        if self.backplane is not None:
            self.backplane.count_changed(self)

    def send(self, sid: str | None, data: str | bytes) -> None:
        """Send to one session, or to every open session when ``sid`` is None.

        A broadcast writes to each session's transport without waiting; a session over its
        ``write_limit`` is dropped on the way and the others still get the frame. With a
        backplane, a session of another node gets the reply through it.
        """
        if sid is not None:
            session = self.sessions.get(sid)
            if session is not None:
                session.send(data)
            elif self._remote(sid):
                assert self.backplane is not None
                self.backplane.reply(self.options.path, sid, data)
            return
        wire: bytes | None = None
        for session in list(self.sessions.values()):
            if not session.is_open:
                continue
            if not session.plain:
                session.send(data)  # compressed per session
                continue
            if wire is None:  # encoded once for every uncompressed session
                wire = message_frame(data)
            session.write_frame(wire)

    def publish(self, data: str | bytes) -> None:
        """A broadcast of this instance: to every local session, and published once."""
        self.send(None, data)
        if self.backplane is not None:
            self.backplane.broadcast(self.options.path, data)

    def _remote(self, sid: str) -> bool:
        """Whether ``sid`` names a session of another node of the backplane."""
        link = self.backplane
        return link is not None and node_of(sid) not in ("", link.node)

    # What comes through the backplane (backplane.Subscriber).

    def remote_send(self, sid: str | None, data: str | bytes) -> bool:
        if sid is None:
            self.send(None, data)
            return True
        session = self.sessions.get(sid)
        if session is None or not session.is_open:
            return False
        session.send(data)
        return True

    def remote_close(self, sid: str, code: int, reason: str) -> bool:
        session = self.sessions.get(sid)
        if session is None or not session.opened:
            return False
        session.close(code, reason)
        return True

    def close_session(self, sid: str | None, code: int, reason: str) -> None:
        """Close one session, or every open session when ``sid`` is None."""
        if sid is not None:
            session = self.sessions.get(sid)
            if session is not None:
                session.close(code, reason)
            elif self._remote(sid):
                assert self.backplane is not None
                self.backplane.close_session(self.options.path, sid, code, reason)
            return
        for session in list(self.sessions.values()):
            if session.opened:
                session.close(code, reason)

    # The heartbeat.

    def _start_heartbeat(self) -> None:
        interval = self.options.heartbeat
        if interval:
            loop = asyncio.get_running_loop()
            self._heartbeat = loop.call_later(interval, self._beat)

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None

    def _beat(self) -> None:
        """Every session: dropped if its last ping went unanswered, else pinged. While the flow
        is paused sessions are not read, so their pongs cannot be seen: none is judged then."""
        self._heartbeat = None
        judge = not self.flow.paused
        with self.batch:
            for session in list(self.sessions.values()):
                session.beat(judge)
        self._start_heartbeat()

    async def close(self, timeout: float = UNLISTEN_TIMEOUT) -> None:
        """Close every session with 1001; after ``timeout`` drop those still there."""
        self._stop_heartbeat()
        for session in list(self.sessions.values()):
            session.close(1001, "going away")
        if self.sessions:
            self._all_gone = asyncio.get_running_loop().create_future()
            await asyncio.wait({self._all_gone}, timeout=timeout)
        for session in list(self.sessions.values()):
            session.abort()


class _NotFound(asyncio.Protocol):
    """Answers a socket for an endpoint that does not exist (any more) with 404 and hangs up."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        transport.write(NOT_FOUND)
        transport.close()


class Endpoints:
    """Registry of endpoints by owner, plus the byte-proxy streams by sid."""

    def __init__(
        self,
        emit: Emit,
        log: Log | None = None,
        flow: FlowControl | None = None,
        batch: WriteBatch | None = None,
    ) -> None:
        self._emit = emit
        self._log = log or (lambda level, text: None)
        #: The worker's flow control, shared by every session.
        self.flow = flow if flow is not None else FlowControl()
        self._endpoints: dict[int, Endpoint] = {}
        self._streams: dict[str, StreamTransport] = {}
        self._background = Background()
        #: Enter it around a run of commands to write each session's frames at once.
        self.batch = batch if batch is not None else WriteBatch()
        #: The links to other instances of endpoints with a backplane.
        self.backplanes = Backplanes(emit, self._log, self.batch)

    def __contains__(self, owner: object) -> bool:
        return owner in self._endpoints

    def get(self, owner: int) -> Endpoint | None:
        return self._endpoints.get(owner)

    # Endpoint commands.

    def listen(self, owner: int, options: Any) -> None:
        """Declare an endpoint (a second ``listen`` for the same owner updates its options).

        Answered with ``["listening", owner]``: sockets handed over on fd 3 travel apart from
        the commands, so Node hands over the endpoint's sockets only after that.
        """
        parsed = EndpointOptions.from_dict(options)
        endpoint = self._endpoints.get(owner)
        if endpoint is None:
            endpoint = Endpoint(owner, parsed, self._emit, self.batch, self.flow, self._log)
            self._endpoints[owner] = endpoint
        else:
            endpoint.configure(parsed)  # sessions already there keep theirs
        self.backplanes.attach(endpoint, parsed.path, parsed.backplane)
        endpoint.backplane = self.backplanes.link_of(endpoint)
        self._emit(["listening", owner])

    def unlisten(self, owner: int) -> None:
        """Forget the endpoint, close its sessions with 1001, then emit ``closed``."""
        endpoint = self._endpoints.pop(owner, None)
        if endpoint is None:
            self._emit(["closed", owner])
            return
        self.backplanes.detach(endpoint)
        endpoint.backplane = None
        self._background.spawn(self._unlisten(endpoint))

    async def _unlisten(self, endpoint: Endpoint) -> None:
        try:
            await endpoint.close()
        finally:
            self._emit(["closed", endpoint.owner])

    def send(self, owner: int, sid: str | None, data: str | bytes) -> None:
        endpoint = self._endpoints.get(owner)
        if endpoint is not None:
            endpoint.send(sid, data)

    def publish(self, owner: int, data: str | bytes) -> None:
        endpoint = self._endpoints.get(owner)
        if endpoint is not None:
            endpoint.publish(data)

    def close_session(self, owner: int, sid: str | None, code: int, reason: str) -> None:
        endpoint = self._endpoints.get(owner)
        if endpoint is not None:
            endpoint.close_session(sid, code, reason)

    # Sessions arriving.

    def adopt(
        self,
        owner: int,
        sid: str,
        sock: socket.socket,
        request: bytes = b"",
        head: bytes = b"",
    ) -> None:
        """Run a session on an accepted socket; ``request`` + ``head`` are fed in first.

        Without ``request`` the HTTP request is read from the socket itself.
        """
        endpoint = self._endpoints.get(owner)
        protocol: asyncio.Protocol
        if endpoint is None or sid in endpoint.sessions:
            self._log("debug", f"socket for unknown endpoint {owner} or duplicate session: 404")
            protocol = _NotFound()
        else:
            protocol = endpoint.new_session(sid, request, head)
        self._background.spawn(self._connect(sock, protocol))

    async def _connect(self, sock: socket.socket, protocol: asyncio.Protocol) -> None:
        loop = asyncio.get_running_loop()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio only sets it when sock.proto says TCP, which accepted sockets may not.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await loop.connect_accepted_socket(lambda: protocol, sock)
        except (OSError, ValueError) as exc:
            sock.close()
            self._log("warn", f"cannot adopt a socket: {exc}")
            if isinstance(protocol, ServerSession):
                protocol.connection_lost(None)

    def stream_open(self, owner: int, sid: str, request: bytes, head: bytes,
                    peer: tuple[str, int] | None = None) -> None:  # fmt: skip
        """Start a byte-proxy session (``stream_open``); ``peer``: the client's address in Node."""
        endpoint = self._endpoints.get(owner)
        if endpoint is None or sid in self._streams or sid in endpoint.sessions:
            self._log("debug", f"stream for unknown endpoint {owner} or duplicate session: 404")
            self._emit(["stream_data", sid, NOT_FOUND])
            self._emit(["stream_end", sid])
            return
        session = endpoint.new_session(sid, request, head)
        transport = StreamTransport(sid, session, self._emit, self._stream_lost, peer)
        self._streams[sid] = transport
        transport.start()

    def stream_data(self, sid: str, data: bytes) -> None:
        transport = self._streams.get(sid)
        if transport is not None:
            transport.feed(data)

    def stream_end(self, sid: str) -> None:
        transport = self._streams.get(sid)
        if transport is not None:
            transport.peer_closed()

    def _stream_lost(self, transport: StreamTransport) -> None:
        if self._streams.get(transport.sid) is transport:
            del self._streams[transport.sid]

    # Lifetime.

    def drop_streams(self) -> None:
        """End every byte-proxy session at once (the event channel carrying them is gone)."""
        for transport in list(self._streams.values()):
            transport.peer_closed()

    async def aclose(self, timeout: float = UNLISTEN_TIMEOUT) -> None:
        """Close every endpoint (worker shutdown), bounded by ``timeout``."""
        endpoints = list(self._endpoints.values())
        self._endpoints.clear()
        for endpoint in endpoints:
            endpoint.backplane = None
        if endpoints:
            await asyncio.gather(*(endpoint.close(timeout) for endpoint in endpoints))
        await self.backplanes.aclose()
        await self._background.finish(timeout)  # an unlisten under way

