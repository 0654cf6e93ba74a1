"""The dispatcher in process, and the worker as Node-RED runs it: a subprocess on fd 4 and 3."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
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
from websockets.frames import Frame, Opcode

from websocket_worker.ipc import PROTOCOL_VERSION, FrameDecoder, encode_frame
from websocket_worker.worker import Worker

from .conftest import (
    WAIT,
    Events,
    SansIOClient,
    accept,
    free_port,
    handshake_request,
    port_of,
    read_request,
    server_socket,
)
from .test_clients import handshake_then_stall, tcp_server

PYTHON_DIR = Path(__file__).resolve().parents[1]


def test_hello_comes_first() -> None:
    """attach() emits hello before anything emitted earlier."""
    events = Events()
    worker = Worker()
    worker.log("info", "early")
    worker.attach(events)
    assert events.kinds() == ["hello", "log"]
    info = events.frames[0][1]
    assert info["protocol"] == PROTOCOL_VERSION == 6
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
        (["stream_open", 1, "s", "text, not bin", b"", None], "error"),
        (["stream_open", 1, "s", b"", b"", ["host"]], "error"),
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


async def test_listen_is_answered_once_with_listening() -> None:
    """The dispatcher answers each good listen with exactly one listening, a bad one with a log."""
    events = Events()
    worker = Worker(events)
    worker.dispatch(["listen", 1, {"path": "/a"}])
    worker.dispatch(["listen", 2, {"path": "/b", "write_limit": -1}])
    assert events.frames[0] == ["listening", 1]
    assert [frame[:2] for frame in events.frames[1:]] == [["log", "error"]]


async def test_invalid_close_code_is_a_bad_command() -> None:
    """close_session with a code WebSocket forbids is logged; the session stays open."""
    events = Events()
    worker = Worker(events)
    client = SansIOClient()
    worker.dispatch_many([["listen", 1, {}], ["stream_open", 1, "s", client.outgoing(), b"", None]])
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


SECRETS = ("SECRET-HEADER", "SECRET-PASS", "SECRET-QUERY", "SECRET-PAYLOAD")


async def test_no_log_or_error_holds_a_secret(caplog: pytest.LogCaptureFixture) -> None:
    """Through rejected, invalid, refused, proxied and dropped client connections carrying an
    Authorization header, and sessions failing on secret payloads, no log or error text (events
    or the worker's own logging) holds a header value, URL credential or query, or payload."""
    caplog.set_level(logging.DEBUG, logger="websocket_worker")
    caplog.set_level(logging.WARNING)  # what reaches stderr of the real worker
    events = Events()
    worker = Worker(events)
    headers = [["Authorization", "Bearer SECRET-HEADER"], ["X-Api-Key", "SECRET-HEADER"]]

    def connect_to(owner: int, url: str, **options: Any) -> None:
        options = {"headers": headers, "reconnect_delay": 60, "handshake_timeout": WAIT, **options}
        worker.dispatch(["connect", owner, {"url": url, **options}])

    async def echo_rejection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")  # the proxy or server repeats it all
        status = (
            b"407 Proxy Authentication Required"
            if request.startswith(b"CONNECT")
            else b"401 Unauthorized"
        )
        writer.write(b"HTTP/1.1 " + status + b"\r\nX-Echo: " + request.replace(b"\r\n", b" ")
                     + b"\r\nContent-Length: %d\r\n\r\n" % len(request) + request)  # fmt: skip
        await writer.drain()
        writer.close()

    async def bad_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: SECRET-HEADER\r\n\r\n"
        )
        await writer.wait_closed()

    credentials = "user:SECRET-PASS@"
    query = "?token=SECRET-QUERY"
    async with tcp_server(echo_rejection) as rejecting, tcp_server(bad_accept) as invalid:
        async with tcp_server(handshake_then_stall) as stalling:
            connect_to(10, f"ws://{credentials}127.0.0.1:{rejecting}/a{query}")
            connect_to(11, f"ws://{credentials}127.0.0.1:{invalid}/b{query}")
            connect_to(12, f"ws://{credentials}127.0.0.1:{free_port()}/c{query}")
            connect_to(13, f"ws://{credentials}127.0.0.1:SECRET-QUERY/d")
            connect_to(
                14, f"ws://127.0.0.1:{free_port()}/e{query}",
                proxy=f"http://{credentials}127.0.0.1:{rejecting}",
            )  # fmt: skip
            connect_to(15, f"ws://{credentials}127.0.0.1:{stalling}/f{query}", write_limit=1024)
            await events.get("open", 15)
            for _ in range(10_000):  # until the stalled server's connection is dropped
                if ["close", 15, None, 1006, "", "error"] in events.frames:
                    break
                worker.dispatch(["send", 15, None, "SECRET-PAYLOAD" * 10_000])
                await asyncio.sleep(0)
            for owner in range(10, 16):
                await events.get("close", owner)

        # Sessions failing on secret payloads: invalid UTF-8, too big, a bad close frame.
        worker.dispatch(["listen", 1, {"path": "/ws", "max_size": 64}])
        for sid, frame in (
            ("utf8", Frame(Opcode.TEXT, b"SECRET-PAYLOAD\xff")),
            ("size", Frame(Opcode.TEXT, b"SECRET-PAYLOAD" * 10)),
            ("close", Frame(Opcode.CLOSE, b"\x03\xe7SECRET-PAYLOAD")),  # code 999
        ):
            client = SansIOClient("ws://localhost/ws")
            worker.dispatch(["stream_open", 1, sid, client.outgoing(), b"", None])
            worker.dispatch(["stream_data", sid, frame.serialize(mask=True)])
            await events.get("close", 1, sid)

        # A session whose peer stopped reading, dropped while a secret is broadcast.
        worker.dispatch(["listen", 2, {"path": "/slow", "write_limit": 1024}])
        listener = server_socket()
        peer = socket.create_connection(listener.getsockname())
        peer.setblocking(False)
        worker.endpoints.adopt(2, "slow", await accept(listener))
        peer.sendall(handshake_request("/slow"))
        await events.get("open", 2, "slow")
        for _ in range(10_000):  # until the session is dropped
            if ["close", 2, "slow", 1006, "", "error"] in events.frames:
                break
            worker.dispatch(["send", 2, None, b"SECRET-PAYLOAD" * 10_000])
            await asyncio.sleep(0)
        peer.close()
        listener.close()

    # Bad commands carrying secrets.
    for bad in (
        ["send", "1", None, "SECRET-PAYLOAD"],
        ["send", 1, 7, "SECRET-PAYLOAD"],
        ["stream_data", 5, b"SECRET-PAYLOAD"],
        ["configure", {"flow_window": "SECRET-PAYLOAD"}],
        ["connect", 20, {"url": "ws://x/", "headers": headers, "heartbeat": "SECRET-PAYLOAD"}],
        ["listen", 21, {"path": "/x", "subprotocols": "SECRET-PAYLOAD"}],
    ):
        worker.dispatch(bad)

    errors = [frame[3] for frame in events.of("error")]
    logs = [frame[2] for frame in events.of("log")]
    assert len(errors) == 6 + 3 + 1 and len(logs) == 2 + 6
    texts = errors + logs + [record.getMessage() for record in caplog.records]
    texts += [record.exc_text or "" for record in caplog.records]
    leaks = [text for text in texts if any(secret in text for secret in SECRETS)]
    assert leaks == []
    await worker.aclose()


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
        stderr=subprocess.PIPE,
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
    """hello first; byte-proxied and handed-over sessions echo under a one-message flow window
    acked as the bridge does; a client connects; EOF on fd 4 ends the worker with exit code 0."""
    hello = await bridge.next("hello")
    assert hello[1]["protocol"] == PROTOCOL_VERSION
    assert hello[1]["pid"] == bridge.process.pid
    # Flow control as the bridge does it: a window of one message, each acked once delivered.
    bridge.send(["configure", {"flow_window": 1, "flow_window_bytes": 1 << 20}])

    # Listener over the byte proxy: handshake, a message in, a reply out.
    client = SansIOClient("ws://localhost/ws")
    bridge.send(["listen", 1, {"path": "/ws"}],
                ["stream_open", 1, "s1", client.outgoing(), b"", ["192.0.2.1", 4242]])  # fmt: skip
    client.receive((await bridge.next("stream_data"))[2])
    assert client.response is not None and client.response.status_code == 101
    opened = await bridge.next("open")
    assert opened[:3] == ["open", 1, "s1"]
    assert opened[3]["remote_address"] == "192.0.2.1" and opened[3]["remote_port"] == 4242
    client.protocol.send_text(b"ping me")
    bridge.send(["stream_data", "s1", client.outgoing()], ["send", 1, "s1", "pong you"])
    assert await bridge.next("message") == ["message", 1, "s1", "ping me"]
    bridge.send(["ack", 1])
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
        state = await bridge.next("client_state")
        assert state == ["client_state", 2, "connecting", {"actions": 0, "attempt": 1}]
        opened = await bridge.next("open")
        assert opened[:3] == ["open", 2, None] and opened[3]["url"] == f"ws://127.0.0.1:{port}/"
        assert await bridge.next("message") == ["message", 2, None, "hi from server"]
        bridge.send(["ack", 1])
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
        opened = await bridge.next("open")
        assert opened[:3] == ["open", 3, "h1"]
        # The peer of the adopted socket: the client's own end.
        local = ws.transport.get_extra_info("sockname")
        assert (opened[3]["remote_address"], opened[3]["remote_port"]) == (local[0], local[1])
        await ws.send(b"handed over")
        assert await bridge.next("message") == ["message", 3, "h1", b"handed over"]
        bridge.send(["ack", 1])
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


async def test_sigterm_during_an_unlisten_ends_it_cleanly(bridge: Bridge) -> None:
    """SIGTERM while an unlisten waits for a peer that never answers its close: the worker
    still exits 0, with nothing on stderr (no task left pending when its loop closes)."""
    await bridge.next("hello")
    bridge.send(["listen", 1, {"path": "/ws"}])
    await bridge.next("listening")
    client = SansIOClient("ws://localhost/ws")
    bridge.send(["stream_open", 1, "p1", client.outgoing(), b"", None])
    await bridge.next("open")
    bridge.send(["unlisten", 1])  # the relayed peer never answers the close: 2 s to wait
    await bridge.next("stream_data")  # the close frame went out
    bridge.process.terminate()
    assert await asyncio.wait_for(bridge.process.wait(), WAIT) == 0
    assert bridge.process.stderr is not None
    assert (await bridge.process.stderr.read()).decode() == ""


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
