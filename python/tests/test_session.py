"""A listener session on a real socket: every way the bytes can arrive gives the same messages,
in order; broken frames get their close code and an error event; what it sends is what websockets
would send. (The frame rules themselves are tested byte by byte in test_core.py.)"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest
from websockets.frames import Frame, Opcode

from .conftest import WAIT, Harness, SansIOClient


def client_frame(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=True)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    harness = Harness()
    harness.registry.listen(1, {"path": "/ws", "max_size": 100_000})
    yield harness
    await harness.close()


async def handed_over(harness: Harness, sid: str) -> tuple[socket.socket, SansIOClient]:
    """A session on a socketpair, opened with the request alone (as Node hands it over)."""
    client = SansIOClient("ws://localhost/ws")
    node_end, worker_end = socket.socketpair()
    worker_end.setblocking(False)
    node_end.setblocking(False)
    harness.registry.adopt(1, sid, worker_end, client.outgoing(), b"")
    await harness.events.get("open", 1, sid)
    client.receive(await read_some(node_end))
    assert client.response is not None and client.response.status_code == 101
    return node_end, client


async def read_some(sock: socket.socket) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 65536), WAIT)


async def messages(harness: Harness, sid: str, count: int) -> list[str | bytes]:
    return [(await harness.events.get("message", 1, sid))[3] for _ in range(count)]


MIXED = [
    (client_frame(Opcode.TEXT, b"short"), "short"),
    (client_frame(Opcode.BINARY, b"\x00" * 200), b"\x00" * 200),  # 16-bit length
    (client_frame(Opcode.PING, b"are you there"), None),
    (client_frame(Opcode.TEXT, ("é" * 40_000).encode()), "é" * 40_000),  # 64-bit length
    (
        client_frame(Opcode.TEXT, b"frag", fin=False) + client_frame(Opcode.CONT, b"mented"),
        "fragmented",
    ),
    (client_frame(Opcode.BINARY, b""), b""),
    (client_frame(Opcode.TEXT, b"last"), "last"),
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1000, 1 << 20], ids=lambda chunk: f"{chunk}B")
async def test_same_messages_however_the_bytes_arrive(harness: Harness, chunk: int) -> None:
    sid = f"c{chunk}"
    node_end, client = await handed_over(harness, sid)
    with node_end:
        wire = b"".join(frame for frame, _ in MIXED)
        # Every split of the big frame's edges, but its middle in 4 KiB pieces (time).
        big = max((frame for frame, _ in MIXED), key=len)
        big_middle = range(wire.index(big) + 16, wire.index(big) + len(big) - 16)
        at = 0
        while at < len(wire):
            step = min(4096, big_middle.stop - at) if at in big_middle else chunk
            node_end.sendall(wire[at : at + step])
            at += step
            if chunk < 8:
                await asyncio.sleep(0)  # let the session read what came so far
        expected = [message for _, message in MIXED if message is not None]
        assert await messages(harness, sid, len(expected)) == expected
        pong = Frame(Opcode.PONG, b"are you there").serialize(mask=False)
        reply = b""
        while pong not in reply:  # the ping was answered
            reply += await read_some(node_end)


async def close_code_sent(node_end: socket.socket, client: SansIOClient) -> int:
    """Read until the server's close frame; its code."""
    while not any(frame.opcode is Opcode.CLOSE for frame in client.frames):
        data = await read_some(node_end)
        assert data, "connection ended without a close frame"
        client.receive(data)
    close = next(frame for frame in client.frames if frame.opcode is Opcode.CLOSE)
    code: int = struct.unpack("!H", close.data[:2])[0]
    return code


async def test_invalid_utf8_fails_with_1007_and_nothing_after_it_is_delivered(
    harness: Harness,
) -> None:
    node_end, client = await handed_over(harness, "u")
    with node_end:
        node_end.send(
            client_frame(Opcode.TEXT, b"fine")
            + client_frame(Opcode.TEXT, b"\xff\xfe")
            + client_frame(Opcode.TEXT, b"after")
        )
        assert await messages(harness, "u", 1) == ["fine"]
        assert await close_code_sent(node_end, client) == 1007
        assert "1007" in (await harness.events.get("error", 1, "u"))[3]
    await harness.events.get("close", 1, "u")
    assert [frame[3] for frame in harness.events.of("message")] == ["fine"]


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (client_frame(Opcode.BINARY, b"x" * 100_001), 1009),  # over max_size
        (Frame(Opcode.TEXT, b"unmasked").serialize(mask=False), 1002),
        (bytes([0x80 | 0x40 | 0x1, 0x80 | 1]) + b"mask" + b"x", 1002),  # RSV1, no extension
        (client_frame(Opcode.CONT, b"no start"), 1002),
        (client_frame(Opcode.TEXT, b"a", fin=False) + client_frame(Opcode.TEXT, b"b"), 1002),
    ],
    ids=["oversized", "unmasked", "rsv1", "lone-continuation", "data-inside-fragments"],
)
async def test_broken_frames_fail_the_session_after_the_messages_before_them(
    harness: Harness, wire: bytes, code: int
) -> None:
    node_end, client = await handed_over(harness, "bad")
    with node_end:
        node_end.sendall(client_frame(Opcode.TEXT, b"before") + wire)
        assert await messages(harness, "bad", 1) == ["before"]
        assert await close_code_sent(node_end, client) == code
        assert str(code) in (await harness.events.get("error", 1, "bad"))[3]
    await harness.events.get("close", 1, "bad")


async def test_close_frame_is_answered_and_reported(harness: Harness) -> None:
    node_end, client = await handed_over(harness, "bye")
    with node_end:
        node_end.send(
            client_frame(Opcode.TEXT, b"one")
            + client_frame(Opcode.CLOSE, struct.pack("!H", 1000) + b"done")
            + client_frame(Opcode.TEXT, b"after close")
        )
        assert await messages(harness, "bye", 1) == ["one"]
        assert await close_code_sent(node_end, client) == 1000
    close = await harness.events.get("close", 1, "bye")
    assert close[3:] == [1000, "done", "client"]
    assert [frame[3] for frame in harness.events.of("message")] == ["one"]


async def test_send_frames_as_websockets_would(harness: Harness) -> None:
    node_end, client = await handed_over(harness, "out")
    with node_end:
        payloads: list[str | bytes] = ["hi", b"\x01\x02", "é" * 100, b"z" * 70_000]
        for payload in payloads:
            harness.registry.send(1, "out", payload)
        wire = b""
        while len(client.frames) < len(payloads):
            chunk = await read_some(node_end)
            wire += chunk
            client.receive(chunk)
        got = [f.data.decode() if f.opcode is Opcode.TEXT else f.data for f in client.frames]
        assert got == payloads

        def websockets_frame(payload: str | bytes) -> bytes:
            if isinstance(payload, str):
                return Frame(Opcode.TEXT, payload.encode()).serialize(mask=False)
            return Frame(Opcode.BINARY, payload).serialize(mask=False)

        assert wire == b"".join(websockets_frame(payload) for payload in payloads)
