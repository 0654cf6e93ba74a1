"""Byte-proxy sessions: the same endpoint code behind stream_open / stream_data / stream_end."""

from __future__ import annotations

from typing import Any

from websockets.frames import Close, Opcode
from websockets.protocol import OPEN

from websocket_worker.endpoints import Endpoints
from websocket_worker.stream import STREAM_CHUNK

from .conftest import Events, SansIOClient, handshake_request, until


class Proxy:
    """Plays Node's part: a Sans-I/O client whose bytes travel as stream frames."""

    def __init__(self) -> None:
        self.chunks: list[int] = []
        self.client = SansIOClient("ws://localhost/ws")
        self.events = Events(hook=self._hook)
        self.registry = Endpoints(self.events)
        self.ended = False

    def _hook(self, frame: list[Any]) -> None:
        if frame[0] == "stream_data":
            self.chunks.append(len(frame[2]))
            self.client.receive(frame[2])
        elif frame[0] == "stream_end":
            self.ended = True

    def open(self, owner: int = 1, sid: str = "p1") -> None:
        request = self.client.outgoing()
        self.registry.stream_open(owner, sid, request, b"", ("192.0.2.7", 40001))

    def push(self, sid: str = "p1") -> None:
        self.registry.stream_data(sid, self.client.outgoing())


async def test_handshake_and_echo_over_stream_frames() -> None:
    """A proxied connection opens, its messages are events and replies come back as stream_data."""
    proxy = Proxy()
    proxy.registry.listen(1, {})
    proxy.open()
    assert proxy.client.response is not None and proxy.client.response.status_code == 101
    assert proxy.client.protocol.state is OPEN
    info = (await proxy.events.get("open", 1, "p1"))[3]
    assert info["subprotocol"] is None
    # The address Node read from the relayed socket (stream_open's peer).
    assert (info["remote_address"], info["remote_port"]) == ("192.0.2.7", 40001)
    proxy.client.protocol.send_text("über".encode())
    proxy.push()
    assert await proxy.events.get("message") == ["message", 1, "p1", "über"]
    proxy.registry.send(1, "p1", b"\x01\x02")
    proxy.registry.send(1, None, "all")
    frames = [(f.opcode, f.data) for f in proxy.client.frames]
    assert frames == [(Opcode.BINARY, b"\x01\x02"), (Opcode.TEXT, b"all")]


async def test_a_large_message_goes_to_node_in_bounded_chunks() -> None:
    """A 600 KiB reply is several stream_data events of at most STREAM_CHUNK bytes (Node writes
    each to its socket as it comes), and the peer gets the message whole."""
    proxy = Proxy()
    proxy.registry.listen(1, {})
    proxy.open()
    await proxy.events.get("open")
    payload = bytes(range(256)) * 2400
    proxy.chunks.clear()
    proxy.registry.send(1, "p1", payload)
    assert len(proxy.chunks) >= 3 and max(proxy.chunks) <= STREAM_CHUNK
    assert sum(proxy.chunks) == len(payload) + 10  # the frame's 10-byte header
    assert [(f.opcode, f.data) for f in proxy.client.frames] == [(Opcode.BINARY, payload)]
    # A small message still travels as one event, header and payload together.
    proxy.chunks.clear()
    proxy.registry.send(1, "p1", "small")
    assert proxy.chunks == [7]


async def test_head_bytes_follow_the_request() -> None:
    """Frames Node read past the request (head) are handled after the handshake."""
    proxy = Proxy()
    proxy.registry.listen(1, {})
    request = proxy.client.outgoing()
    proxy.client.receive(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + _accept(proxy.client) + b"\r\n\r\n"
    )
    proxy.client.protocol.send_text(b"early")
    head = proxy.client.outgoing()
    proxy.client = SansIOClient()  # discard: only the server's reply bytes matter below
    proxy.registry.stream_open(1, "p1", request, head)
    await proxy.events.get("open")
    assert await proxy.events.get("message") == ["message", 1, "p1", "early"]


def _accept(client: SansIOClient) -> bytes:
    from websockets.utils import accept_key

    return accept_key(client.request.headers["Sec-WebSocket-Key"]).encode()


async def test_client_close_ends_the_stream() -> None:
    """After a closing handshake the worker sends stream_end and reports the close."""
    proxy = Proxy()
    proxy.registry.listen(1, {})
    proxy.open()
    proxy.client.protocol.send_close(1000, "bye")
    proxy.push()
    assert await proxy.events.get("close") == ["close", 1, "p1", 1000, "bye", "client"]
    assert proxy.events.kinds()[-2:] == ["stream_end", "close"]
    assert Close.parse(proxy.client.frames[-1].data).code == 1000
    proxy.registry.stream_data("p1", b"late bytes are dropped")


async def test_stream_end_from_node_is_an_abnormal_close() -> None:
    """stream_end (the peer went away) reports close 1006 and sends nothing back."""
    proxy = Proxy()
    proxy.registry.listen(1, {})
    proxy.open()
    proxy.registry.stream_end("p1")
    assert await proxy.events.get("close") == ["close", 1, "p1", 1006, "", "client"]
    assert proxy.events.of("stream_end") == []


async def test_unlisten_closes_streams() -> None:
    """unlisten sends a 1001 close frame on proxied sessions, then ends them."""
    proxy = Proxy()
    proxy.registry.listen(1, {})
    proxy.open()
    proxy.registry.unlisten(1)
    await until(lambda: proxy.client.frames)
    assert Close.parse(proxy.client.frames[-1].data).code == 1001
    proxy.push()  # the client's close reply
    await proxy.events.get("closed", 1)
    assert proxy.ended
    assert proxy.events.kinds()[-2:] == ["close", "closed"]


async def test_stream_for_unknown_owner_gets_404() -> None:
    """A stream for an endpoint that does not exist gets a 404 and stream_end, no session."""
    events = Events()
    registry = Endpoints(events)
    registry.stream_open(9, "x", handshake_request(), b"")
    assert events.frames[0][:2] == ["stream_data", "x"]
    assert events.frames[0][2].startswith(b"HTTP/1.1 404 ")
    assert events.frames[1] == ["stream_end", "x"]
