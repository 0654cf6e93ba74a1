"""The dispatcher in process, and the worker as Node-RED runs it: a subprocess on fd 4 and 3."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Opcode

from websocket_worker.ipc import PROTOCOL_VERSION, FrameDecoder, encode_frame
from websocket_worker.worker import Worker

from .conftest import WAIT, Events, SansIOClient, accept, port_of, read_request, server_socket

PYTHON_DIR = Path(__file__).resolve().parents[1]


def test_hello_comes_first() -> None:
    """attach() emits hello before anything emitted earlier."""
    events = Events()
    worker = Worker()
    worker.log("info", "early")
    worker.attach(events)
    assert events.kinds() == ["hello", "log"]
    info = events.frames[0][1]
    assert info["protocol"] == PROTOCOL_VERSION == 1
    assert info["pid"] == os.getpid()
    assert {"python", "websockets"} <= set(info)


@pytest.mark.parametrize(
    ("frame", "level"),
    [
        (["teleport", 1], "warn"),
        (["listen", 1], "error"),  # missing options
        (["listen", "1", {}], "error"),  # owner not an int
        (["listen", True, {}], "error"),
        (["listen", 1, {"max_size": "big"}], "error"),
        (["send", 1, None, 3.5], "error"),
        (["stream_open", 1, "s", "text, not bin", b""], "error"),
        (["close_session", 1, "s", "1000", ""], "error"),
        (["connect", 1, {"url": 5}], "error"),
    ],
)
async def test_bad_commands_are_logged_and_dropped(frame: list[Any], level: str) -> None:
    """A bad or unknown command becomes a log event; the worker goes on."""
    events = Events()
    worker = Worker(events)
    worker.dispatch(frame)
    assert [f[:2] for f in events.frames] == [["log", level]]
    worker.dispatch(["unlisten", 1])
    await events.get("closed", 1)


async def test_invalid_close_code_is_a_bad_command() -> None:
    """close_session with a code WebSocket forbids is logged; the session stays open."""
    events = Events()
    worker = Worker(events)
    client = SansIOClient()
    worker.dispatch_many([["listen", 1, {}], ["stream_open", 1, "s", client.outgoing(), b""]])
    await events.get("open")
    worker.dispatch(["close_session", 1, "s", 1006, ""])
    log = await events.get("log")
    assert log[1] == "error" and "1006" in log[2]
    assert worker.endpoints.get(1).sessions["s"].is_open  # type: ignore[union-attr]


async def test_log_texts_hold_no_payload() -> None:
    """A failed command names the problem, never the data it carried."""
    events = Events()
    worker = Worker(events)
    worker.dispatch(["close_session", 1, "sid", 1000, b"SECRET-PAYLOAD"])
    worker.dispatch(["connect", 2, {"url": "ws://x/", "headers": [["Authorization", 7]]}])
    assert len(events.frames) == 2
    assert all("SECRET" not in f[2] and "Authorization" not in f[2] for f in events.frames)


# End to end: the real entry point in a subprocess.


class Bridge:
    """Node-RED's side of the worker: the fd-4 event channel and the fd-3 IPC channel."""

    def __init__(
        self, process: asyncio.subprocess.Process, events: socket.socket, ipc: socket.socket
    ) -> None:
        self.process = process
        self.ipc = ipc
        ipc.setblocking(False)
        self._ipc_buffer = b""
        self.decoder = FrameDecoder()
        self.frames: list[list[Any]] = []
        self._events = events
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(sock=self._events)

    def send(self, *frames: list[Any]) -> None:
        assert self._writer is not None
        self._writer.write(b"".join(encode_frame(frame) for frame in frames))

    async def next(self, kind: str) -> list[Any]:
        """The next event of ``kind``, skipping (but keeping) others."""
        assert self._reader is not None
        while True:
            for index, frame in enumerate(self.frames):
                if frame[0] == kind:
                    return self.frames.pop(index)
            data = await asyncio.wait_for(self._reader.read(65536), WAIT)
            assert data, f"worker closed the channel while waiting for {kind}"
            self.frames.extend(self.decoder.feed(data))

    async def ipc_reply(self) -> Any:
        """The next JSON line the worker wrote on fd 3."""
        loop = asyncio.get_running_loop()
        while b"\n" not in self._ipc_buffer:
            chunk = await asyncio.wait_for(loop.sock_recv(self.ipc, 4096), WAIT)
            assert chunk, "worker closed fd 3"
            self._ipc_buffer += chunk
        line, self._ipc_buffer = self._ipc_buffer.split(b"\n", 1)
        return json.loads(line)

    def close_channel(self) -> None:
        assert self._writer is not None
        if not self._writer.is_closing():
            self._writer.close()


@pytest.fixture
async def bridge() -> AsyncIterator[Bridge]:
    ours, theirs = socket.socketpair()
    node_ipc, worker_ipc = socket.socketpair()
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "websocket_worker",
        "--events-fd",
        str(theirs.fileno()),
        "--handoff-fd",
        str(worker_ipc.fileno()),
        pass_fds=(theirs.fileno(), worker_ipc.fileno()),
        stdin=subprocess.DEVNULL,
        env=env,
    )
    theirs.close()
    worker_ipc.close()
    bridge = Bridge(process, ours, node_ipc)
    await bridge.start()
    yield bridge
    bridge.close_channel()
    if process.returncode is None:
        process.kill()
        await process.wait()
    node_ipc.close()


async def test_worker_end_to_end(bridge: Bridge) -> None:
    """hello first; byte-proxied and handed-over sessions echo; a client connects; EOF on fd 4
    ends the worker with exit code 0."""
    hello = await bridge.next("hello")
    assert hello[1]["protocol"] == PROTOCOL_VERSION
    assert hello[1]["pid"] == bridge.process.pid

    # Listener over the byte proxy: handshake, a message in, a reply out.
    client = SansIOClient("ws://localhost/ws")
    bridge.send(["listen", 1, {"path": "/ws"}], ["stream_open", 1, "s1", client.outgoing(), b""])
    client.receive((await bridge.next("stream_data"))[2])
    assert client.response is not None and client.response.status_code == 101
    assert await bridge.next("open") == ["open", 1, "s1", {"subprotocol": None}]
    client.protocol.send_text(b"ping me")
    bridge.send(["stream_data", "s1", client.outgoing()], ["send", 1, "s1", "pong you"])
    assert await bridge.next("message") == ["message", 1, "s1", "ping me"]
    client.receive((await bridge.next("stream_data"))[2])
    assert [(f.opcode, f.data) for f in client.frames] == [(Opcode.TEXT, b"pong you")]

    # A bad frame is logged and the worker goes on.
    bridge.send(["no_such_command"])
    assert (await bridge.next("log"))[1] == "warn"

    # A client connection to a local server.
    async def greet(ws: ServerConnection) -> None:
        await ws.send("hi from server")
        await ws.wait_closed()

    async with serve(greet, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        bridge.send(["connect", 2, {"url": f"ws://127.0.0.1:{port}/"}])
        assert await bridge.next("open") == ["open", 2, None, {"subprotocol": None}]
        assert await bridge.next("message") == ["message", 2, None, "hi from server"]
        bridge.send(["disconnect", 2])
        assert (await bridge.next("close"))[:4] == ["close", 2, None, 1000]
        assert await bridge.next("closed") == ["closed", 2]

    # Socket handoff on fd 3: Node reads the upgrade request, then sends the socket itself.
    listener = server_socket()
    bridge.send(["listen", 3, {"path": "/h"}])
    url = f"ws://127.0.0.1:{port_of(listener)}/h"
    client_task = asyncio.ensure_future(connect(url, open_timeout=WAIT))
    conn = await accept(listener)
    request, head = await read_request(conn)
    meta = {"e": 3, "s": "h1", "r": request.decode("latin-1"), "h": base64.b64encode(head).decode()}
    message = {"cmd": "NODE_HANDLE", "type": "net.Socket", "msg": meta, "key": "6::::0"}
    socket.send_fds(bridge.ipc, [json.dumps(message).encode() + b"\n"], [conn.fileno()])
    conn.close()
    listener.close()
    assert await bridge.ipc_reply() == {"cmd": "NODE_HANDLE_ACK"}
    async with await asyncio.wait_for(client_task, WAIT) as ws:
        assert await bridge.next("open") == ["open", 3, "h1", {"subprotocol": None}]
        await ws.send(b"handed over")
        assert await bridge.next("message") == ["message", 3, "h1", b"handed over"]
        bridge.send(["send", 3, None, "broadcast"])
        assert await asyncio.wait_for(ws.recv(), WAIT) == "broadcast"
    assert (await bridge.next("close"))[:4] == ["close", 3, "h1", 1000]

    # The IPC channel answers Node's socket-list queries.
    bridge.ipc.sendall(b'{"cmd":"NODE_SOCKET_GET_COUNT","key":"k"}\n')
    assert await bridge.ipc_reply() == {"cmd": "NODE_SOCKET_COUNT", "key": "k", "count": 0}

    # Node-RED goes away: the worker exits 0.
    bridge.close_channel()
    assert await asyncio.wait_for(bridge.process.wait(), WAIT) == 0


async def test_worker_exits_0_on_sigterm(bridge: Bridge) -> None:
    """SIGTERM makes the worker close what is open and exit 0."""
    await bridge.next("hello")
    bridge.process.terminate()
    assert await asyncio.wait_for(bridge.process.wait(), WAIT) == 0


def test_version_flag() -> None:
    """--version prints the protocol and library versions and exits 0."""
    result = subprocess.run(
        [sys.executable, "-m", "websocket_worker", "--version"],
        env=dict(os.environ, PYTHONPATH=str(PYTHON_DIR)),
        capture_output=True,
        text=True,
        timeout=WAIT * 4,
    )
    assert result.returncode == 0
    assert f"protocol {PROTOCOL_VERSION}" in result.stdout and "websockets" in result.stdout
