"""Socket handoff on fd 3, simulating Node's IPC channel exactly (JSON lines + SCM_RIGHTS)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from websocket_worker.endpoints import Endpoints
from websocket_worker.handoff import Adopt, HandoffParser, HandoffReader, Note, Reply

from .conftest import WAIT, Events, accept, port_of, read_request, server_socket, until


def line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def handle_line(owner: int, sid: str, request: bytes, head: bytes = b"") -> bytes:
    head64 = base64.b64encode(head).decode()
    meta = {"e": owner, "s": sid, "r": request.decode("latin-1"), "h": head64}
    return line({"cmd": "NODE_HANDLE", "type": "net.Socket", "msg": meta, "key": "6::::1880"})


# The pure parser.


def test_parser_acks_a_handle_and_returns_the_socket() -> None:
    """A NODE_HANDLE line with an fd is acked and yields the fd with its decoded meta."""
    r, w = os.pipe()
    os.close(w)
    actions = HandoffParser().feed(handle_line(3, "ab", b"GET / HTTP/1.1\r\n\r\n", b"\x81"), [r])
    assert actions[0] == Reply({"cmd": "NODE_HANDLE_ACK"})
    assert actions[1] == Adopt(r, 3, "ab", b"GET / HTTP/1.1\r\n\r\n", b"\x81")
    os.close(r)


def test_parser_keeps_partial_lines_and_fd_fifo() -> None:
    """Fds queue in order; lines may be split across reads or share one read."""
    parser = HandoffParser()
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(2)]
    data = handle_line(1, "a", b"A\r\n\r\n") + handle_line(1, "b", b"B\r\n\r\n")
    first = parser.feed(data[:10], fds)
    assert first == [] and parser.pending_fds == 2
    actions = parser.feed(data[10:])
    adopted = [a for a in actions if isinstance(a, Adopt)]
    assert [(a.fd, a.sid) for a in adopted] == [(fds[0], "a"), (fds[1], "b")]
    for fd in fds:
        os.close(fd)


def test_parser_nacks_a_handle_without_fd() -> None:
    """NODE_HANDLE without an fd is answered NODE_HANDLE_NACK."""
    actions = HandoffParser().feed(handle_line(1, "a", b"x"))
    assert actions[0] == Reply({"cmd": "NODE_HANDLE_NACK"})


def test_parser_answers_socket_list_queries() -> None:
    """NOTIFY_CLOSE → ALL_CLOSED and GET_COUNT → COUNT 0, with the same key."""
    actions = HandoffParser().feed(
        line({"cmd": "NODE_SOCKET_NOTIFY_CLOSE", "key": "k1"})
        + line({"cmd": "NODE_SOCKET_GET_COUNT", "key": "k2"})
    )
    assert actions == [
        Reply({"cmd": "NODE_SOCKET_ALL_CLOSED", "key": "k1"}),
        Reply({"cmd": "NODE_SOCKET_COUNT", "key": "k2", "count": 0}),
    ]


def test_parser_ignores_other_lines() -> None:
    """User messages and non-JSON lines are ignored (only logged)."""
    actions = HandoffParser().feed(line({"hello": 1}) + b"not json\n" + line({"cmd": "NODE_X"}))
    assert all(isinstance(action, Note) for action in actions)


def test_parser_bad_meta_closes_the_fd() -> None:
    """A handle whose meta is malformed is acked (Node must not resend) and its fd closed."""
    fd = os.open(os.devnull, os.O_RDONLY)
    message = {"cmd": "NODE_HANDLE", "type": "net.Socket", "msg": {"e": "x"}}
    actions = HandoffParser().feed(line(message), [fd])
    assert actions[0] == Reply({"cmd": "NODE_HANDLE_ACK"})
    assert isinstance(actions[1], Note) and actions[1].level == "error"
    with pytest.raises(OSError):
        os.fstat(fd)


# The reader, on a real socketpair with real TCP sockets.


class Node:
    """The Node end of the IPC channel plus a TCP listener standing for Node-RED's HTTP server."""

    def __init__(self) -> None:
        self.sock, worker_sock = socket.socketpair()
        self.sock.setblocking(False)
        self.logs: list[tuple[str, str]] = []
        self.events = Events(hook=self._echo)
        self.registry = Endpoints(self.events)
        self.registry.listen(1, {})
        self.reader = HandoffReader(
            worker_sock, self.registry.adopt, lambda level, text: self.logs.append((level, text))
        )
        self.listener = server_socket()
        self._received = b""

    def _echo(self, frame: list[Any]) -> None:
        if frame[0] == "message":
            self.registry.send(frame[1], frame[2], frame[3])

    async def upgrade(self) -> tuple[socket.socket, bytes, bytes]:
        """Accept a TCP connection and read its HTTP request, as Node's 'upgrade' does."""
        conn = await accept(self.listener)
        request, head = await read_request(conn)
        return conn, request, head

    async def reply(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        while b"\n" not in self._received:
            chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), WAIT)
            assert chunk, "worker closed the channel"
            self._received += chunk
        first, self._received = self._received.split(b"\n", 1)
        return json.loads(first)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.reader.close()
        self.sock.close()
        self.listener.close()


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    node = Node()
    yield node
    await node.registry.aclose(timeout=0.1)
    node.close()


async def test_handed_over_socket_completes_handshake_and_echoes(node: Node) -> None:
    """A socket sent like child.send(meta, socket) is acked, then serves the WebSocket."""
    url = f"ws://127.0.0.1:{port_of(node.listener)}/ws"
    client = asyncio.ensure_future(connect(url, open_timeout=WAIT))
    conn, request, head = await node.upgrade()
    socket.send_fds(node.sock, [handle_line(1, "h1", request, head)], [conn.fileno()])
    conn.close()  # Node closes its handle once it is sent
    assert await node.reply() == {"cmd": "NODE_HANDLE_ACK"}
    async with await asyncio.wait_for(client, WAIT) as ws:
        await node.events.get("open", 1, "h1")
        for n in range(5):
            await ws.send(f"echo {n}")
            assert await asyncio.wait_for(ws.recv(), WAIT) == f"echo {n}"


async def test_two_lines_in_one_read(node: Node) -> None:
    """A read carrying a query line and then a handle line answers both, in order."""
    url = f"ws://127.0.0.1:{port_of(node.listener)}/ws"
    client = asyncio.ensure_future(connect(url, open_timeout=WAIT))
    conn, request, head = await node.upgrade()
    data = line({"cmd": "NODE_SOCKET_GET_COUNT", "key": "k"}) + handle_line(1, "h2", request)
    socket.send_fds(node.sock, [data], [conn.fileno()])
    conn.close()
    assert await node.reply() == {"cmd": "NODE_SOCKET_COUNT", "key": "k", "count": 0}
    assert await node.reply() == {"cmd": "NODE_HANDLE_ACK"}
    async with await asyncio.wait_for(client, WAIT) as ws:
        await ws.send(b"ok")
        assert await asyncio.wait_for(ws.recv(), WAIT) == b"ok"


async def test_nack_without_fd(node: Node) -> None:
    """A NODE_HANDLE line that came without an fd is answered NODE_HANDLE_NACK."""
    node.sock.send(handle_line(1, "h3", b"GET / HTTP/1.1\r\n\r\n"))
    assert await node.reply() == {"cmd": "NODE_HANDLE_NACK"}


async def test_socket_list_queries(node: Node) -> None:
    """server.close() bookkeeping: NOTIFY_CLOSE and GET_COUNT are answered with the same key."""
    node.sock.send(line({"cmd": "NODE_SOCKET_NOTIFY_CLOSE", "key": "6::::1880"}))
    assert await node.reply() == {"cmd": "NODE_SOCKET_ALL_CLOSED", "key": "6::::1880"}
    node.sock.send(line({"cmd": "NODE_SOCKET_GET_COUNT", "key": "6::::1880"}))
    assert await node.reply() == {"cmd": "NODE_SOCKET_COUNT", "key": "6::::1880", "count": 0}


async def test_eof_is_quiet(node: Node) -> None:
    """When Node closes the IPC channel the reader stops without an error."""
    node.sock.close()
    await until(lambda: node.reader.closed)
    assert all(level == "debug" for level, _ in node.logs)
