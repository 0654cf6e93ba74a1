"""Backpressure both ways (protocol v2): flow control of message events until Node acknowledges
them, with TCP pushing back on senders; and slow readers dropped at their write_limit."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection
from websockets.frames import Opcode

from websocket_worker import shell
from websocket_worker.clients import Clients
from websocket_worker.endpoints import Endpoints
from websocket_worker.flow import FlowControl
from websocket_worker.options import DEFAULT_FLOW_WINDOW, DEFAULT_FLOW_WINDOW_BYTES
from websocket_worker.worker import Worker

from .conftest import (
    MS,
    WAIT,
    Acknowledger,
    Events,
    Harness,
    SansIOClient,
    accept,
    handshake_request,
    until,
)
from .test_clients import complete_handshake, handshake_then_stall, options, remote, tcp_server

#: A client connection's state changes, left out where a test follows its data.
STATES = ("client_state",)


def numbered(n: int, size: int) -> str:
    """Message ``n`` of a run: its number first, padded to ``size`` characters."""
    return f"{n:06d}".ljust(size, "x")


def numbers(events: Events, sid: str | None = None) -> list[int]:
    """The numbers of the messages reported (of session ``sid``, if given), in order."""
    return [
        int(frame[3][:6])
        for frame in events.of("message")
        if sid is None or frame[2] == sid
    ]  # fmt: skip


class Blast:
    """Sends ``count`` numbered messages as fast as the connection takes them."""

    def __init__(self, ws: ClientConnection | ServerConnection, count: int, size: int) -> None:
        self.ws = ws
        self.sent = 0
        self.task = asyncio.ensure_future(self._run(count, size))

    async def _run(self, count: int, size: int) -> None:
        for n in range(count):
            await self.ws.send(numbered(n, size))
            self.sent = n + 1

    async def assert_blocked(self) -> None:
        """The sender gets stuck: its socket buffer holds data and, for a while, no message
        goes out (the kernel's buffers may first grow)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            before = self.sent
            await asyncio.sleep(30 * MS)
            assert not self.task.done(), "every message went out"
            if self.sent == before and self.ws.transport.get_write_buffer_size() > 0:
                return
            assert loop.time() < deadline, "the sender never got stuck"


@asynccontextmanager
async def harnessed(flow: FlowControl, **listen: Any) -> AsyncIterator[Harness]:
    """A harness whose endpoint 1 (path /ws) reads under ``flow``; nothing is acked until
    ``harness.acks.start()``."""
    harness = Harness(flow)
    harness.registry.listen(1, {"path": "/ws", **listen})
    try:
        yield harness
    finally:
        await harness.close()


class Recorder:
    """A flow-control reader that only notes what it was told."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def flow_pause(self) -> None:
        self.calls.append("pause")

    def flow_resume(self) -> None:
        self.calls.append("resume")


# Flow control: the accounting.


def test_accounting_pauses_over_a_window_and_resumes_under_half() -> None:
    """Over flow_window messages, or flow_window_bytes bytes not counting the newest message,
    outstanding every reader is paused; acks resume them once both counts are under half their
    window (bytes again without the newest message)."""
    flow = FlowControl(window=4, window_bytes=100)
    reader = Recorder()
    flow.add(reader)
    for _ in range(4):
        flow.count(10)
    assert not flow.paused  # 4 outstanding: not more than the window
    flow.count(10)
    assert flow.paused and reader.calls == ["pause"]
    assert flow.ack(3) == 0 and flow.paused  # 2 left: not under half of 4
    flow.ack(1)
    assert not flow.paused and reader.calls == ["pause", "resume"]
    assert (flow.outstanding, flow.outstanding_bytes) == (1, 10)

    flow.count(91)  # 101 bytes, but 10 before the newest: under the byte window
    assert not flow.paused
    flow.count(5)  # 101 before the newest: over
    assert flow.paused
    flow.ack(1)  # the 10: 91 before the newest, not under half of 100
    assert flow.paused
    flow.ack(1)  # the 91: the newest (5) alone is left
    assert not flow.paused and flow.outstanding_bytes == 5
    flow.count(200)  # one message larger than the window: the next may still be read
    assert not flow.paused
    flow.ack(2)
    flow.count(7)

    late = Recorder()
    flow.configure({"flow_window": 1})  # 1 outstanding: not over
    flow.count(1)
    assert flow.paused
    flow.add(late)  # a reader arriving while paused starts paused
    assert late.calls == ["pause"]
    flow.configure({"flow_window": 10})  # re-evaluated at once
    assert not flow.paused and late.calls == ["pause", "resume"]
    assert flow.ack(5) == 3  # only 2 were outstanding
    assert (flow.outstanding, flow.outstanding_bytes) == (0, 0)


def test_resume_takes_turns() -> None:
    """When what one reader held crosses the window again while resuming, the readers that
    resume did not reach go first next time (no session starves)."""
    flow = FlowControl(window=2)
    order: list[str] = []

    class Holding:
        def __init__(self, name: str, held: int) -> None:
            self.name, self.held = name, held

        def flow_pause(self) -> None:
            pass

        def flow_resume(self) -> None:
            order.append(self.name)
            for _ in range(self.held):
                flow.count(1)
            self.held = 0

    for reader in (Holding("a", 0), Holding("b", 3), Holding("c", 0), Holding("d", 0)):
        flow.add(reader)
    for _ in range(3):
        flow.count(1)
    flow.ack(3)  # b's three held messages pause the flow again
    assert order == ["a", "b"] and flow.paused
    flow.ack(3)
    assert order == ["a", "b", "c", "d", "a", "b"] and not flow.paused


async def test_configure_and_ack_commands() -> None:
    """configure sets the windows (defaults 1000 / 8 MiB); bad configure or ack commands are
    logged, and an ack for more than is outstanding is a warning."""
    events = Events()
    worker = Worker(events)
    assert (worker.flow.window, worker.flow.window_bytes) == (1000, 8 * 1024 * 1024)
    assert (DEFAULT_FLOW_WINDOW, DEFAULT_FLOW_WINDOW_BYTES) == (1000, 8 * 1024 * 1024)
    worker.dispatch(["configure", {"flow_window": 5, "flow_window_bytes": 4096}])
    assert (worker.flow.window, worker.flow.window_bytes) == (5, 4096)
    assert events.frames == []
    for bad in (
        ["configure", {"flow_window": 0}],
        ["configure", {"flow_window_bytes": "big"}],
        ["configure", [5]],
        ["ack", -1],
        ["ack", "1"],
        ["ack", True],
    ):
        worker.dispatch(bad)
    assert [frame[:2] for frame in events.frames] == [["log", "error"]] * 6
    worker.dispatch(["ack", 2])
    assert events.frames[-1][:2] == ["log", "warn"]
    assert (worker.flow.window, worker.flow.window_bytes) == (5, 4096)


# Flow control on real sockets.


async def test_message_window_stops_reading_and_tcp_pushes_back() -> None:
    """A client blasting messages gets flow_window + 1 through, then its socket backs up; acks
    let the rest through in order, none lost."""
    window, count = 100, 5000
    async with harnessed(FlowControl(window=window)) as harness:
        ws = await harness.connect()
        sender = Blast(ws, count, 2000)  # 10 MB: more than TCP holds
        await until(lambda: len(harness.events.of("message")) > window)
        await sender.assert_blocked()  # TCP pushback
        assert len(harness.events.of("message")) == window + 1
        harness.acks.start()
        await asyncio.wait_for(sender.task, WAIT)
        await until(lambda: len(harness.events.of("message")) == count)
        assert numbers(harness.events) == list(range(count))
        assert harness.flow.outstanding == 0 and not harness.flow.paused


async def test_byte_window_stops_reading_likewise() -> None:
    """Over flow_window_bytes of unacknowledged payload, not counting the newest message,
    reading stops too; then all arrives."""
    window_bytes, size, count = 64 * 1024, 4096, 2000
    async with harnessed(FlowControl(window=10**6, window_bytes=window_bytes)) as harness:
        ws = await harness.connect()
        sender = Blast(ws, count, size)  # 8 MB
        await until(lambda: harness.flow.paused)
        await sender.assert_blocked()
        assert len(harness.events.of("message")) == window_bytes // size + 2
        assert harness.flow.outstanding_bytes == window_bytes + 2 * size
        harness.acks.start()
        await asyncio.wait_for(sender.task, WAIT)
        await until(lambda: len(harness.events.of("message")) == count)
        assert numbers(harness.events) == list(range(count))


async def test_pause_stops_every_session_and_new_ones_start_paused() -> None:
    """While paused no session is read, not even one that opens meanwhile (its handshake still
    completes; a relayed one gets stream_pause); after acks their messages arrive."""
    async with harnessed(FlowControl(window=10)) as harness:
        busy = await harness.connect(sid="busy")
        quiet = await harness.connect(sid="quiet")
        for n in range(11):
            await busy.send(numbered(n, 10))
        await until(lambda: harness.flow.paused)
        await quiet.send("from quiet")
        late = await harness.connect(sid="late")
        assert await harness.events.get("open", 1, "late")
        await late.send("from late")
        relayed = SansIOClient("ws://localhost/ws")
        harness.registry.stream_open(1, "relayed", relayed.outgoing(), b"")
        assert await harness.events.get("open", 1, "relayed")
        assert harness.events.of("stream_pause") == [["stream_pause", "relayed"]]
        await asyncio.sleep(20 * MS)
        assert numbers(harness.events) == list(range(11))
        harness.acks.start()
        assert (await harness.events.get("message", 1, "quiet"))[3] == "from quiet"
        assert (await harness.events.get("message", 1, "late"))[3] == "from late"
        assert ["stream_resume", "relayed"] in harness.events.frames


def relayed_session(flow: FlowControl) -> tuple[SansIOClient, Events, Endpoints]:
    """A session relayed as bytes (``stream_open`` "p1") whose outgoing bytes reach ``client``."""
    client = SansIOClient("ws://localhost/ws")

    def relay(frame: list[Any]) -> None:
        if frame[0] == "stream_data":
            client.receive(frame[2])

    events = Events(hook=relay)
    registry = Endpoints(events, flow=flow)
    registry.listen(1, {})
    registry.stream_open(1, "p1", client.outgoing(), b"")
    return client, events, registry


async def test_relayed_session_gets_stream_pause_and_resume() -> None:
    """A relayed session asks Node to pause its socket, still takes the bytes already in
    flight, and delivers their messages, then answers their ping, in order after the resume."""
    flow = FlowControl(window=10)
    client, events, registry = relayed_session(flow)
    await events.get("open")
    for n in range(12):
        client.protocol.send_text(numbered(n, 8).encode())
    registry.stream_data("p1", client.outgoing())
    assert events.kinds()[-12:] == ["message"] * 11 + ["stream_pause"]
    for n in range(12, 15):  # in flight when Node paused its socket
        client.protocol.send_text(numbered(n, 8).encode())
        registry.stream_data("p1", client.outgoing())
    client.protocol.send_ping(b"ping")
    registry.stream_data("p1", client.outgoing())
    assert len(events.of("message")) == 11
    assert client.frames == []  # nothing is parsed while paused, the ping neither
    flow.ack(11)
    assert numbers(events) == list(range(15))
    assert [f.opcode for f in client.frames] == [Opcode.PONG]
    assert events.kinds()[-1] == "stream_resume"
    registry.stream_end("p1")
    await events.get("close", 1, "p1")


async def test_paused_session_delivers_what_it_read_before_its_close() -> None:
    """Messages read before a paused session's peer went away are reported before its close."""
    flow = FlowControl(window=1)
    client, events, registry = relayed_session(flow)
    for n in range(5):
        client.protocol.send_text(numbered(n, 8).encode())
    registry.stream_data("p1", client.outgoing())
    assert numbers(events) == [0, 1]
    registry.stream_end("p1")
    await events.get("close", 1, "p1")
    assert numbers(events) == list(range(5))
    assert events.kinds()[-1] == "close"


async def test_client_connection_pauses_and_resumes() -> None:
    """A client connection stops taking messages while paused, so the server's socket backs
    up; acks let the rest through in order, none lost."""
    window, count = 50, 4000
    flow = FlowControl(window=window)
    acks = Acknowledger(flow)
    events = Events(hook=acks)
    registry = Clients(events, flow)
    senders: list[Blast] = []

    async def stream(ws: ServerConnection) -> None:
        senders.append(Blast(ws, count, 2000))  # 8 MB
        await ws.wait_closed()

    try:
        async with remote(stream) as url:
            registry.connect(1, options(url))
            await until(lambda: len(events.of("message")) > window)
            await senders[0].assert_blocked()
            assert events.kinds(skip=STATES) == ["open"] + ["message"] * (window + 1)
            acks.start()
            await until(lambda: len(events.of("message")) == count)
            assert numbers(events) == list(range(count))
            kinds = events.kinds(skip=STATES)
            assert kinds[0] == "open" and set(kinds[1:]) == {"message"}
    finally:
        await registry.aclose(timeout=0.5)


async def test_heartbeat_does_not_time_out_while_paused() -> None:
    """Pongs that cannot be read while the flow is paused do not count as a heartbeat
    timeout; the heartbeat goes on after the pause."""
    flow = FlowControl(window=5)
    acks = Acknowledger(flow)
    events = Events(hook=acks)
    registry = Clients(events, flow)

    async def send_twenty(ws: ServerConnection) -> None:
        for n in range(20):
            await ws.send(numbered(n, 10))
        await ws.wait_closed()

    try:
        async with remote(send_twenty) as url:
            registry.connect(1, options(url, heartbeat=50 * MS))
            await until(lambda: flow.paused)
            await asyncio.sleep(400 * MS)  # eight heartbeats, each a timeout if counted
            assert events.kinds(skip=STATES) == ["open"] + ["message"] * 6
            acks.start()
            await until(lambda: len(events.of("message")) == 20)
            await asyncio.sleep(100 * MS)
            assert numbers(events) == list(range(20))
            assert events.of("error") == []
    finally:
        await registry.aclose(timeout=0.5)


# Slow readers.


@pytest.fixture
def short_stall(monkeypatch: pytest.MonkeyPatch) -> float:
    """A peer over the write limit counts as stalled after 50 ms without progress (1 s)."""
    monkeypatch.setattr(shell, "STALL_SECONDS", 0.05)
    return 0.05


async def small_buffered_session(
    harness: Harness, sid: str, rcvbuf: int, request: bytes | None = None
) -> socket.socket:
    """A raw client socket with a small receive buffer, its server side adopted as ``sid`` with
    a small send buffer (unsent bytes stay in the worker's transport), ``request`` (a plain
    handshake by default) sent; open."""
    loop = asyncio.get_running_loop()
    peer = socket.socket()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    peer.setblocking(False)
    await loop.sock_connect(peer, harness.listener.getsockname())
    conn = await accept(harness.listener)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    harness.registry.adopt(1, sid, conn)
    await loop.sock_sendall(peer, request or handshake_request("/ws"))
    await harness.events.get("open", 1, sid)
    return peer


async def test_slow_session_is_dropped_and_broadcast_goes_on(short_stall: float) -> None:
    """A session whose peer stopped reading is dropped at write_limit (error, warn log, close
    1006) while a broadcast keeps serving the others without waiting."""
    limit = 64 * 1024
    async with harnessed(FlowControl(), write_limit=limit) as harness:
        harness.acks.start()
        fast = await harness.connect(sid="fast")
        loop = asyncio.get_running_loop()
        with await small_buffered_session(harness, "slow", 4096):  # then never reads
            sent = 0
            deadline = loop.time() + WAIT
            while not harness.events.of("error") and loop.time() < deadline:
                payload = bytes([sent % 256]) * (32 * 1024)
                harness.registry.send(1, None, payload)
                sent += 1
                assert await asyncio.wait_for(fast.recv(), WAIT) == payload
            assert await harness.events.get("error") == [
                "error", 1, "slow", f"outgoing buffer over {limit} bytes: the peer is not reading",
            ]  # fmt: skip
            close = await harness.events.get("close", 1, "slow")
            assert close == ["close", 1, "slow", 1006, "", "error"]
            (log,) = harness.events.of("log")
            assert log[1] == "warn"
            assert log[2].startswith("/ws: a client stopped reading; dropped it")
            harness.registry.send(1, None, "after the drop")
            assert await asyncio.wait_for(fast.recv(), WAIT) == "after the drop"
            assert list(harness.endpoint(1).sessions) == ["fast"]


async def test_message_larger_than_write_limit_reaches_a_reading_peer() -> None:
    """write_limit judges what earlier writes left unsent: one message larger than it goes out
    to a peer that reads, again and again."""
    async with harnessed(FlowControl(), write_limit=16 * 1024) as harness:
        harness.acks.start()
        ws = await harness.connect(max_size=None)
        for n in range(3):
            payload = bytes([n]) * (1024 * 1024)
            harness.registry.send(1, "s1", payload)
            assert await asyncio.wait_for(ws.recv(), WAIT) == payload
        assert harness.events.of("error") == [] and harness.events.of("close") == []


async def test_several_large_messages_in_flight_to_a_reading_peer_are_not_dropped(
    short_stall: float,
) -> None:
    """Messages each four times write_limit, written back to back while the peer reads them
    (slowly, 64 KiB a read with pauses): the unsent bytes stay far over the limit, but the peer
    keeps taking them, so nothing is dropped. (Core queues them too.)"""
    limit = 256 * 1024
    async with harnessed(FlowControl(), write_limit=limit) as harness:
        harness.acks.start()
        loop = asyncio.get_running_loop()
        client = SansIOClient("ws://localhost/ws", max_size=None)
        with await small_buffered_session(harness, "r", 65536, client.outgoing()) as reader:
            payloads = [bytes([n]) * (4 * limit) for n in range(4)]

            async def read_slowly() -> None:
                while len(client.frames) < len(payloads):
                    data = await asyncio.wait_for(loop.sock_recv(reader, 65536), WAIT)
                    assert data, f"dropped after {len(client.frames)} messages"
                    client.receive(data)
                    await asyncio.sleep(short_stall / 10)

            reading = asyncio.ensure_future(read_slowly())
            for payload in payloads:
                harness.registry.send(1, "r", payload)
                await asyncio.sleep(short_stall / 5)
            await reading
            assert [frame.data for frame in client.frames] == payloads
            assert harness.events.of("error") == [] and harness.events.of("close") == []


async def test_a_peer_taking_a_few_bytes_at_a_time_is_dropped(short_stall: float) -> None:
    """A peer that reads, but only a few bytes now and then, cannot hold more than write_limit
    in the worker for long: taking less than 64 KiB in a stall period counts as not reading."""
    limit = 64 * 1024
    async with harnessed(FlowControl(), write_limit=limit) as harness:
        harness.acks.start()
        loop = asyncio.get_running_loop()
        with await small_buffered_session(harness, "t", 4096) as trickle:
            deadline = loop.time() + WAIT
            while not harness.events.of("error") and loop.time() < deadline:
                harness.registry.send(1, "t", b"\x00" * (32 * 1024))
                with contextlib.suppress(BlockingIOError):
                    trickle.recv(16)  # a few bytes a turn
                await asyncio.sleep(short_stall / 10)
            assert (await harness.events.get("error", 1, "t"))[3].startswith("outgoing buffer over")
            close = await harness.events.get("close", 1, "t")
            assert close == ["close", 1, "t", 1006, "", "error"]


async def test_slow_server_drops_the_client_connection_which_reconnects(
    short_stall: float,
) -> None:
    """A client connection whose server stopped reading is dropped at write_limit (error, warn
    log naming the URL without credentials or query, close 1006) and reconnects."""
    attempts: list[int] = []

    async def stall_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        attempts.append(len(attempts))
        if len(attempts) == 1:
            await handshake_then_stall(reader, writer)
        else:
            await complete_handshake(reader, writer)
            await writer.wait_closed()

    limit = 64 * 1024
    events = Events()
    logs: list[tuple[str, str]] = []
    registry = Clients(events, log=lambda level, text: logs.append((level, text)))
    try:
        async with tcp_server(stall_first) as port:
            url = f"ws://user:pw@127.0.0.1:{port}/feed?token=t0k"
            registry.connect(1, options(url, write_limit=limit))
            await events.get("open")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT
            while not events.of("error") and loop.time() < deadline:
                registry.send(1, b"\x00" * (64 * 1024))
                await asyncio.sleep(short_stall / 10)
            error = f"outgoing buffer over {limit} bytes: the peer is not reading"
            assert await events.get("error") == ["error", 1, None, error]
            assert await events.get("close") == ["close", 1, None, 1006, "", "error"]
            await events.get("open")
            assert events.kinds(skip=STATES)[:4] == ["open", "error", "close", "open"]
            assert len(logs) == 1 and logs[0][0] == "warn"
            assert logs[0][1].startswith(f"ws://127.0.0.1:{port}/feed: the server stopped reading")
    finally:
        await registry.aclose(timeout=0.5)


async def test_write_limit_zero_is_off_and_bad_values_are_rejected() -> None:
    """write_limit 0 means no limit; a negative or non-integer one is a bad option."""
    registry = Endpoints(Events())
    registry.listen(1, {"write_limit": 0})
    endpoint = registry.get(1)
    assert endpoint is not None and endpoint.options.write_limit is None
    registry.listen(2, {})
    endpoint = registry.get(2)
    assert endpoint is not None and endpoint.options.write_limit == 16 * 1024 * 1024
    for bad in (-1, 1.5, "1"):
        with pytest.raises(ValueError):
            registry.listen(3, {"write_limit": bad})


async def test_unlisten_while_paused_still_closes_cleanly() -> None:
    """Closing handshakes are read even while paused: unlisten ends with 1001 at once, after
    the messages already read."""
    async with harnessed(FlowControl(window=1)) as harness:
        ws = await harness.connect()
        for n in range(5):
            await ws.send(numbered(n, 10))
        await until(lambda: harness.flow.paused)
        harness.registry.unlisten(1)
        await asyncio.wait_for(ws.wait_closed(), WAIT)
        assert (ws.close_code, ws.close_reason) == (1001, "going away")
        close = await harness.events.get("close", 1, "s1")
        assert close == ["close", 1, "s1", 1001, "going away", "server"]
        await harness.events.get("closed", 1)
        assert numbers(harness.events) == list(range(5))
        assert harness.events.kinds()[-2:] == ["close", "closed"]


async def test_disconnect_while_paused_still_closes_cleanly() -> None:
    """disconnect reads the server's close even while paused (with websockets' queue full):
    close 1000 then closed at once, the messages already sent reported before."""
    flow = FlowControl(window=1)
    events = Events()
    registry = Clients(events, flow)

    async def send_hundred(ws: ServerConnection) -> None:
        for n in range(100):
            await ws.send(numbered(n, 10))
        await ws.wait_closed()

    async with remote(send_hundred) as url:
        registry.connect(1, options(url))
        await until(lambda: flow.paused)
        registry.disconnect(1)
        await asyncio.wait_for(events.get("closed", 1), 1.0)  # under the close timeout
    assert (await events.get("close"))[:4] == ["close", 1, None, 1000]
    assert numbers(events) == list(range(100))
    assert events.kinds()[-2:] == ["close", "closed"]
