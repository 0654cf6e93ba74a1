"""Listener endpoints: sessions on real accepted TCP sockets, driven by websockets clients."""

from __future__ import annotations

import asyncio
import gc
import socket
import types
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from .conftest import MS, WAIT, Harness, SansIOClient, accept, handshake_request, read_request


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    harness = Harness()
    harness.registry.listen(1, {"path": "/ws"})
    yield harness
    await harness.close()


async def test_listen_is_answered_with_listening(harness: Harness) -> None:
    """Each listen (also one updating options) is answered with listening: sockets handed over
    on fd 3 travel apart from the commands, so Node waits for it; a bad listen gets none."""
    assert harness.events.frames == [["listening", 1]]
    harness.registry.listen(1, {"max_size": 10})
    with pytest.raises(ValueError):
        harness.registry.listen(2, {"max_size": -1})
    assert harness.events.frames == [["listening", 1], ["listening", 1]]


async def test_handshake_emits_open(harness: Harness) -> None:
    """A WebSocket handshake on an adopted socket succeeds and reports open with the sid, the
    client's address and port (the adopted socket's peer), path, query and its headers."""
    ws = await harness.connect(sid="a1", additional_headers={"X-Test": "yes"})
    assert ws.subprotocol is None
    opened = await harness.events.get("open")
    assert opened[:3] == ["open", 1, "a1"]
    info = opened[3]
    assert info["subprotocol"] is None and info["user"] is None
    local = ws.transport.get_extra_info("sockname")
    assert (info["remote_address"], info["remote_port"]) == (local[0], local[1])
    assert (info["path"], info["query"]) == ("/ws", "")
    assert info["headers"]["x-test"] == "yes"
    assert info["headers"]["upgrade"] == "websocket"


async def test_echo_text_and_binary(harness: Harness) -> None:
    """Text arrives as str and binary as bytes; replies keep their type."""
    harness.echo = True
    ws = await harness.connect()
    await ws.send("héllo")
    assert await harness.events.get("message") == ["message", 1, "s1", "héllo"]
    assert await asyncio.wait_for(ws.recv(), WAIT) == "héllo"
    await ws.send(b"\x00\x01")
    assert await harness.events.get("message") == ["message", 1, "s1", b"\x00\x01"]
    assert await asyncio.wait_for(ws.recv(), WAIT) == b"\x00\x01"


async def test_fragmented_messages_are_reassembled(harness: Harness) -> None:
    """A message sent in fragments is reported once, whole."""
    ws = await harness.connect()
    await ws.send(["frag", "ment", "ed"])
    await ws.send([b"ab", b"cd"])
    assert (await harness.events.get("message"))[3] == "fragmented"
    assert (await harness.events.get("message"))[3] == b"abcd"


async def test_ping_is_answered(harness: Harness) -> None:
    """The server side answers pings on its own."""
    ws = await harness.connect()
    pong = await ws.ping()
    await asyncio.wait_for(pong, WAIT)


async def test_invalid_utf8_closes_with_1007(harness: Harness) -> None:
    """A text message that is not UTF-8 fails the connection with 1007 and reports an error."""
    ws = await harness.connect()
    await ws.send(b"\xff\xfe", text=True)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), WAIT)
    assert ws.close_code == 1007
    error = await harness.events.get("error")
    assert error[:3] == ["error", 1, "s1"] and "UTF-8" in error[3]
    await harness.events.get("close", 1, "s1")
    assert harness.events.of("message") == []


async def test_oversize_message_closes_with_1009(harness: Harness) -> None:
    """A message over max_size fails the connection with 1009, also across fragments."""
    harness.registry.listen(2, {"max_size": 10})
    ws = await harness.connect(owner=2)
    await ws.send(["12345", "67890", "x"])
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), WAIT)
    assert ws.close_code == 1009
    assert "too big" in (await harness.events.get("error"))[3]
    await harness.events.get("close", 2)


async def test_client_close_is_reported_once(harness: Harness) -> None:
    """A normal close from the client reports close with its code and reason, once (a second
    session closed after it is reported after it, and alone)."""
    ws = await harness.connect()
    await ws.close(4000, "bye")
    assert await harness.events.get("close") == ["close", 1, "s1", 4000, "bye", "client"]
    later = await harness.connect(sid="s2")
    await later.close(1000)
    await harness.events.get("close", 1, "s2")
    assert [event[2] for event in harness.events.of("close")] == ["s1", "s2"]
    assert harness.endpoint(1).sessions == {}


async def test_dropped_connection_reports_1006(harness: Harness) -> None:
    """A client vanishing without a closing handshake is reported as 1006."""
    ws = await harness.connect()
    ws.transport.abort()
    assert await harness.events.get("close") == ["close", 1, "s1", 1006, "", "client"]


async def test_close_session(harness: Harness) -> None:
    """close_session closes one session with the given code and reason."""
    ws = await harness.connect()
    harness.registry.close_session(1, "s1", 4001, "done")
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), WAIT)
    assert (ws.close_code, ws.close_reason) == (4001, "done")
    assert (await harness.events.get("close"))[:4] == ["close", 1, "s1", 4001]


async def test_reply_reaches_only_its_session(harness: Harness) -> None:
    """A send with a sid reaches that session only."""
    ws1 = await harness.connect(sid="s1")
    ws2 = await harness.connect(sid="s2")
    harness.registry.send(1, "s1", "only you")
    harness.registry.send(1, None, "everyone")
    assert await asyncio.wait_for(ws1.recv(), WAIT) == "only you"
    assert await asyncio.wait_for(ws2.recv(), WAIT) == "everyone"
    assert await asyncio.wait_for(ws1.recv(), WAIT) == "everyone"


async def test_broadcast_skips_closed_sessions(harness: Harness) -> None:
    """A broadcast reaches every open session, and none that is closing or gone."""
    clients = [await harness.connect(sid=f"s{n}") for n in range(4)]
    await clients[0].close()
    await harness.events.get("close", 1, "s0")
    harness.registry.close_session(1, "s1", 1000, "")  # closing: must not get the broadcast
    harness.registry.send(1, None, b"to all")
    for ws in clients[2:]:
        assert await asyncio.wait_for(ws.recv(), WAIT) == b"to all"
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(clients[1].recv(), WAIT)


async def test_send_to_unknown_session_or_owner_is_dropped(harness: Harness) -> None:
    """Sends for a sid or owner that does not exist are dropped without error."""
    harness.registry.send(1, "nobody", "x")
    harness.registry.send(99, None, "x")
    harness.registry.close_session(1, "nobody", 1000, "")
    assert harness.events.without("listening") == []


async def test_subprotocol_first_offered(harness: Harness) -> None:
    """Without a list the client's first offered subprotocol is chosen, like ws."""
    ws = await harness.connect(subprotocols=["second", "first"])
    assert ws.subprotocol == "second"
    assert (await harness.events.get("open"))[3]["subprotocol"] == "second"


async def test_subprotocol_from_list(harness: Harness) -> None:
    """With a list the first of ours the client offers is chosen; none shared → none."""
    harness.registry.listen(3, {"subprotocols": ["mqtt", "json"]})
    ws = await harness.connect(owner=3, sid="a", subprotocols=["xml", "json"])
    assert ws.subprotocol == "json"
    ws = await harness.connect(owner=3, sid="b")
    assert ws.subprotocol is None


async def test_unlisten_closes_sessions_with_1001(harness: Harness) -> None:
    """unlisten closes every session with 1001 and ends with closed, after their close events."""
    clients = [await harness.connect(sid=f"s{n}") for n in range(2)]
    harness.registry.unlisten(1)
    for ws in clients:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), WAIT)
        assert (ws.close_code, ws.close_reason) == (1001, "going away")
    await harness.events.get("closed", 1)
    assert harness.events.kinds()[-3:] == ["close", "close", "closed"]
    assert 1 not in harness.registry


async def test_unlisten_is_bounded(harness: Harness) -> None:
    """A session that never answers the close is dropped when unlisten's bound runs out."""
    harness.registry.listen(4, {})
    request = handshake_request("/ws")
    reader, writer = await asyncio.open_connection(*harness.listener.getsockname())
    harness.registry.adopt(4, "mute", await accept(harness.listener))
    writer.write(request)
    await harness.events.get("open", 4, "mute")
    task = asyncio.ensure_future(harness.endpoint(4).close(timeout=50 * MS))
    await asyncio.wait_for(task, WAIT)
    assert await harness.events.get("close", 4, "mute") == ["close", 4, "mute", 1006, "", "server"]
    writer.close()


async def test_unlisten_unknown_owner_still_answers(harness: Harness) -> None:
    """unlisten of an owner that does not exist answers closed at once."""
    harness.registry.unlisten(42)
    assert harness.events.without("listening") == [["closed", 42]]


async def test_non_websocket_request_gets_4xx(harness: Harness) -> None:
    """A plain HTTP request gets an HTTP error (426) and no event."""
    response = await harness.raw(1, "h", b"GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 426 ")
    assert harness.events.without("listening") == []


async def test_garbage_request_gets_400(harness: Harness) -> None:
    """Bytes that are not HTTP at all get 400 Bad Request and no event."""
    response = await harness.raw(1, "g", b"\x16\x03\x01garbage\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 400 ")
    assert harness.events.without("listening") == []


async def test_unknown_owner_gets_404(harness: Harness) -> None:
    """A socket for an endpoint that is gone is answered 404, with no event."""
    with pytest.raises(InvalidStatus) as info:
        await harness.connect(owner=77)
    assert info.value.response.status_code == 404
    assert harness.events.without("listening") == []


async def test_handshake_timeout(harness: Harness) -> None:
    """A connection that sends no handshake within handshake_timeout is dropped silently."""
    harness.registry.listen(5, {"handshake_timeout": 50 * MS})
    reader, writer = await asyncio.open_connection(*harness.listener.getsockname())
    harness.registry.adopt(5, "slow", await accept(harness.listener))
    assert await asyncio.wait_for(reader.read(), WAIT) == b""
    writer.close()
    assert harness.events.without("listening") == []
    assert harness.endpoint(5).sessions == {}


async def test_request_and_head_are_fed_first(harness: Harness) -> None:
    """adopt() feeds the request Node already read (and bytes after it) before the socket."""
    harness.echo = True
    client = asyncio.ensure_future(connect(harness.url, open_timeout=WAIT, compression=None))
    conn = await accept(harness.listener)
    request, head = await read_request(conn)
    harness.registry.adopt(1, "h1", conn, request, head)
    ws = await asyncio.wait_for(client, WAIT)
    harness.clients.append(ws)
    await ws.send("after handoff")
    assert await asyncio.wait_for(ws.recv(), WAIT) == "after handoff"


def reachable(root: object, kinds: tuple[type, ...], skip: tuple[object, ...]) -> list[object]:
    """Objects of ``kinds`` that ``root`` refers to, directly or not (not through ``skip``)."""
    seen = {id(item) for item in skip}
    found: list[object] = []
    todo = [root]
    while todo:
        item = todo.pop()
        if id(item) in seen or isinstance(item, (type, types.ModuleType)):
            continue
        seen.add(id(item))
        if isinstance(item, kinds):
            found.append(item)
        todo.extend(gc.get_referents(item))
    return found


async def test_session_lets_the_parsed_request_go(harness: Harness) -> None:
    """An open session holds nothing of its handshake (websockets' protocol would keep the
    Request, headers and all, for the connection's life), and frames in ``head``, split ones
    and later ones still arrive in order."""
    request = SansIOClient("ws://localhost/ws").outgoing()

    def client_frame(opcode: Opcode, data: bytes) -> bytes:
        return Frame(opcode, data).serialize(mask=True)

    frames = client_frame(Opcode.TEXT, b"in head") + client_frame(Opcode.BINARY, b"\x00split\xff")
    cut = len(frames) - 3  # the second frame's end comes with the socket, later
    node_end, worker_end = socket.socketpair()
    worker_end.setblocking(False)
    with node_end:
        harness.registry.adopt(1, "r1", worker_end, request, frames[:cut])
        await harness.events.get("open", 1, "r1")
        session = harness.endpoint(1).sessions["r1"]
        assert not reachable(session, (Request, ServerProtocol), skip=(harness.endpoint(1),))
        node_end.sendall(frames[cut:] + client_frame(Opcode.TEXT, b"after"))
        got = [(await harness.events.get("message", 1, "r1"))[3] for _ in range(3)]
        assert got == ["in head", b"\x00split\xff", "after"]


async def test_compression(harness: Harness) -> None:
    """With compression on, deflate is negotiated; broadcast serves deflate and plain clients."""
    harness.registry.listen(6, {"compression": True})
    harness.echo = True
    deflate = await harness.connect(owner=6, sid="d", compression="deflate")
    plain = await harness.connect(owner=6, sid="p")
    assert deflate.protocol.extensions and not plain.protocol.extensions
    await deflate.send("z" * 1000)
    assert await asyncio.wait_for(deflate.recv(), WAIT) == "z" * 1000
    harness.registry.send(6, None, "both")
    assert await asyncio.wait_for(deflate.recv(), WAIT) == "both"
    assert await asyncio.wait_for(plain.recv(), WAIT) == "both"


async def test_batched_sends_keep_their_order(harness: Harness) -> None:
    """Inside a write batch (one channel read) replies and broadcasts arrive whole and in order."""
    ws1 = await harness.connect(sid="s1")
    ws2 = await harness.connect(sid="s2")
    with harness.registry.batch:
        for n in range(50):
            harness.registry.send(1, "s1", f"one {n}")
            harness.registry.send(1, None, f"all {n}")
        harness.registry.close_session(1, "s2", 4002, "after the batch")
    expected1 = [text for n in range(50) for text in (f"one {n}", f"all {n}")]
    assert [await asyncio.wait_for(ws1.recv(), WAIT) for _ in expected1] == expected1
    assert [await asyncio.wait_for(ws2.recv(), WAIT) for _ in range(50)] == [
        f"all {n}" for n in range(50)
    ]
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws2.recv(), WAIT)
    assert ws2.close_code == 4002


async def test_adopted_tcp_socket_gets_nodelay(harness: Harness) -> None:
    """Adopted TCP sockets send small frames at once (TCP_NODELAY), whatever their proto field."""
    client = asyncio.ensure_future(connect(harness.url, open_timeout=WAIT, compression=None))
    conn = await accept(harness.listener)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    harness.registry.adopt(1, "n1", conn)
    harness.clients.append(await asyncio.wait_for(client, WAIT))
    assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


async def test_ping_flood_is_answered_and_other_sessions_keep_working(harness: Harness) -> None:
    """10,000 pings in one burst are all answered, in order, and another session meanwhile
    goes on echoing; pings are not messages (nothing reported, nothing to acknowledge)."""
    harness.echo = True
    other = await harness.connect(sid="other")
    client = SansIOClient("ws://localhost/ws")
    reader, writer = await asyncio.open_connection(*harness.listener.getsockname())
    await harness.accept(1, "flood")
    writer.write(client.outgoing())
    while client.response is None:
        client.receive(await asyncio.wait_for(reader.read(65536), WAIT))
    for n in range(10_000):
        client.protocol.send_ping(b"%d" % n)
    writer.write(client.outgoing())
    await other.send("still here")
    assert await asyncio.wait_for(other.recv(), WAIT) == "still here"
    while len(client.frames) < 10_000:
        data = await asyncio.wait_for(reader.read(65536), WAIT)
        assert data, "the session closed"
        client.receive(data)
    assert [frame.data for frame in client.frames] == [b"%d" % n for n in range(10_000)]
    assert {frame.opcode for frame in client.frames} == {Opcode.PONG}
    assert [frame[2] for frame in harness.events.of("message")] == ["other"]
    assert harness.flow.outstanding == 0
    writer.close()
