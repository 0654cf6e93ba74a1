"""Client connections under the flow's control (``client_action``): automatic connect off,
connect with new options, disconnect, reconnect, the reconnect policies, giving up, and the
``client_state`` events that answer each action — against real local websockets servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

from websocket_worker.clients import JITTER, Clients, reconnect_delay
from websocket_worker.options import ClientOptions

from .conftest import MS, WAIT, Events, free_port, until
from .test_clients import remote, tcp_server


class Server:
    """A websockets server handler that records each connection's path, Origin and close code."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.origins: list[str | None] = []
        self.codes: list[int | None] = []
        self.times: list[float] = []

    async def __call__(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.times.append(asyncio.get_running_loop().time())
        self.paths.append(ws.request.path)
        self.origins.append(ws.request.headers.get("Origin"))
        await ws.wait_closed()
        self.codes.append(ws.close_code)


def options(url: str, **kwargs: Any) -> dict[str, Any]:
    return {"url": url, "reconnect_delay": 20 * MS, "handshake_timeout": WAIT, **kwargs}


async def answer(events: Events, actions: int) -> list[Any]:
    """The state and info of the ``client_state`` that answers the ``actions``-th action."""
    await until(lambda: any(f[3]["actions"] == actions for f in events.of("client_state")))
    return next(f for f in events.of("client_state") if f[3]["actions"] == actions)[2:]


@asynccontextmanager
async def connected(registry: Clients, events: Events, **kwargs: Any) -> AsyncIterator[Server]:
    """Client connection 1 open to a recording server (options: ``kwargs``); yields the server."""
    server = Server()
    async with remote(server) as url:
        registry.connect(1, options(url, **kwargs))
        await events.get("open", 1)
        yield server


def states(events: Events) -> list[str]:
    return [frame[2] for frame in events.of("client_state")]


async def test_auto_off_waits_for_connect(clients: tuple[Clients, Events]) -> None:
    """With auto off nothing connects until a connect action; the action is answered."""
    registry, events = clients
    server = Server()
    async with remote(server) as url:
        registry.connect(1, options(url, auto=False))
        assert await events.get("client_state", 1) == ["client_state", 1, "idle", {"actions": 0}]
        await asyncio.sleep(100 * MS)
        assert server.paths == [] and events.kinds() == ["client_state"]
        registry.action(1, "connect", None)
        assert await answer(events, 1) == ["connecting", {"actions": 1, "attempt": 1}]
        await events.get("open", 1)
        await until(lambda: server.paths == ["/"])


async def test_connect_with_a_new_url_moves_the_connection(clients: tuple[Clients, Events]) -> None:
    """connect with new options closes the open connection (1000, by the client) and opens the
    new URL at once; the open event says which URL."""
    registry, events = clients
    first, second = Server(), Server()
    async with remote(first) as url_a, remote(second) as url_b:
        registry.connect(1, options(url_a, reconnect_delay=10))
        await events.get("open", 1)
        registry.action(1, "connect", options(url_b + "moved", reconnect_delay=10))
        assert await answer(events, 1) == ["connecting", {"actions": 1, "attempt": 1}]
        assert await events.get("close", 1) == ["close", 1, None, 1000, "", "client"]
        opened = await events.get("open", 1)
        assert opened[3]["url"] == url_b + "moved"
        await until(lambda: first.codes == [1000] and second.paths == ["/moved"])
        assert events.kinds().count("error") == 0


async def test_connect_while_open_with_nothing_new_keeps_it(
    clients: tuple[Clients, Events],
) -> None:
    registry, events = clients
    async with connected(registry, events) as server:
        registry.action(1, "connect", None)
        assert await answer(events, 1) == ["connecting", {"actions": 1, "attempt": 1}]
        await asyncio.sleep(50 * MS)
        assert server.codes == [] and len(server.paths) == 1
        assert [f[0] for f in events.frames] == ["client_state", "open", "client_state"]


async def test_disconnect_holds_until_connect(clients: tuple[Clients, Events]) -> None:
    """disconnect closes with 1000 and nothing reconnects during many reconnect delays; a later
    connect opens again."""
    registry, events = clients
    async with connected(registry, events) as server:
        registry.action(1, "disconnect", None)
        assert await answer(events, 1) == ["idle", {"actions": 1}]
        assert await events.get("close", 1) == ["close", 1, None, 1000, "", "client"]
        await asyncio.sleep(10 * 20 * MS)  # ten reconnect delays
        assert len(server.paths) == 1 and server.codes == [1000]
        registry.action(1, "connect", None)
        await events.get("open", 1)
        await until(lambda: len(server.paths) == 2)


async def test_disconnect_during_the_handshake_reports_nothing_more(
    clients: tuple[Clients, Events],
) -> None:
    """An attempt given up by disconnect before it opened reports neither error nor close."""
    registry, events = clients

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers the handshake

    async with tcp_server(silent) as port:
        registry.connect(1, options(f"ws://127.0.0.1:{port}/"))
        await events.get("client_state", 1)  # connecting
        await asyncio.sleep(20 * MS)
        registry.action(1, "disconnect", None)
        await answer(events, 1)
        await asyncio.sleep(50 * MS)
        assert states(events) == ["connecting", "idle"]
        assert events.kinds() == ["client_state", "client_state"]


async def test_reconnect_closes_and_connects_at_once(clients: tuple[Clients, Events]) -> None:
    registry, events = clients
    async with connected(registry, events, reconnect_delay=10) as server:  # a retry: 10 s
        registry.action(1, "reconnect", None)
        await events.get("close", 1)
        await events.get("open", 1, timeout=WAIT)
        await until(lambda: len(server.paths) == 2 and server.codes == [1000])
        assert events.of("close")[0][5] == "client"


@pytest.mark.parametrize(
    ("wait", "expected"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (50, 10.0)]
)
def test_backoff_steps(wait: int, expected: float) -> None:
    policy = ClientOptions.from_dict(
        {"url": "ws://x/", "reconnect_policy": "backoff", "reconnect_delay": 1,
         "reconnect_max_delay": 10, "reconnect_factor": 2}  # fmt: skip
    )
    assert reconnect_delay(policy, wait, lambda: 0.0) == expected
    assert reconnect_delay(policy, wait, lambda: 1.0) == pytest.approx(expected * (1 - JITTER))


def test_fixed_delay_has_no_jitter() -> None:
    policy = ClientOptions.from_dict({"url": "ws://x/", "reconnect_delay": 3})
    assert {reconnect_delay(policy, wait, lambda: 0.9) for wait in (1, 2, 9)} == {3.0}


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"reconnect_policy": "random"}, "reconnect_policy must be one of fixed, backoff"),
        ({"reconnect_delay": 5, "reconnect_max_delay": 1}, "reconnect_max_delay must be >="),
        ({"reconnect_factor": 0.5}, "reconnect_factor"),
        ({"reconnect_attempts": 1.5}, "reconnect_attempts"),
        ({"auto": "yes"}, "auto"),
    ],
)
def test_bad_policy_options(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        ClientOptions.from_dict({"url": "ws://x/", **fields})


async def test_backoff_waits_grow_then_give_up(clients: tuple[Clients, Events]) -> None:
    """Against a closed port: waits of 1, 2, 4, 4 units (jitter drawn at its maximum here would
    shorten them; the states say the delays), then it gives up after 5 failed attempts and a
    connect starts again from the first delay."""
    registry, events = clients
    unit = 20 * MS
    policy = {"reconnect_policy": "backoff", "reconnect_delay": unit,
              "reconnect_max_delay": 4 * unit, "reconnect_factor": 2,
              "reconnect_attempts": 5}  # fmt: skip
    registry.connect(1, options(f"ws://127.0.0.1:{free_port()}/", **policy))
    await until(lambda: "idle" in states(events), timeout=WAIT)
    waits = [frame[3] for frame in events.of("client_state") if frame[2] == "waiting"]
    delays = [info["delay"] for info in waits]
    assert [info["attempt"] for info in waits] == [2, 3, 4, 5]
    for delay, step in zip(delays, [1, 2, 4, 4], strict=True):
        assert step * unit * (1 - JITTER) <= delay <= step * unit
    assert events.of("client_state")[-1][2:] == ["idle", {"actions": 0, "gave_up": 5}]
    assert len(events.of("error")) == 5
    registry.action(1, "connect", None)
    await until(lambda: len(events.of("error")) == 6)
    waiting = [frame for frame in events.of("client_state") if frame[2] == "waiting"]
    assert waiting[-1][3]["delay"] <= unit  # the backoff started again


async def test_backoff_resets_after_a_connection_that_stayed_up(
    clients: tuple[Clients, Events],
) -> None:
    """A connection open longer than reconnect_reset starts the backoff again; one that was
    cut at once keeps growing it."""
    registry, events = clients
    unit = 20 * MS
    stay = {"value": 0.0}

    async def hold_then_close(ws: ServerConnection) -> None:
        await asyncio.sleep(stay["value"])
        await ws.close(4000)

    policy = {"reconnect_policy": "backoff", "reconnect_delay": unit,
              "reconnect_max_delay": 100 * unit, "reconnect_factor": 4,
              "reconnect_reset": 5 * unit}  # fmt: skip
    async with remote(hold_then_close) as url:
        registry.connect(1, options(url, **policy))
        await until(lambda: len(events.of("close")) == 2, timeout=WAIT)
        delays = [f[3]["delay"] for f in events.of("client_state") if f[2] == "waiting"]
        assert delays[1] > 3 * unit  # 4 units (jitter: 3 to 4): cut at once, it grew
        stay["value"] = 10 * unit  # up longer than reconnect_reset
        await until(lambda: len(events.of("close")) == 4, timeout=WAIT)
        delays = [f[3]["delay"] for f in events.of("client_state") if f[2] == "waiting"]
        assert delays[3] <= unit


async def test_every_action_is_answered_in_order(clients: tuple[Clients, Events]) -> None:
    """The bridge counts actions: each client_state carries how many were taken so far."""
    registry, events = clients
    registry.connect(1, options(f"ws://127.0.0.1:{free_port()}/", auto=False))
    await events.get("client_state", 1)
    for action in ("connect", "disconnect", "reconnect", "disconnect"):
        registry.action(1, action, None)
    answers = [f[3]["actions"] for f in events.of("client_state")]
    assert answers == [0, 1, 2, 3, 4]
    assert states(events)[-1] == "idle"


async def test_bad_actions_are_errors_and_keep_the_connection(
    clients: tuple[Clients, Events],
) -> None:
    registry, events = clients
    async with connected(registry, events) as server:
        with pytest.raises(ValueError, match="action must be one of"):
            registry.action(1, "explode", None)
        with pytest.raises(ValueError, match="disconnect takes no options"):
            registry.action(1, "disconnect", options("ws://127.0.0.1:1/"))
        with pytest.raises(ValueError, match="url"):
            registry.action(1, "connect", {"url": "http://not-a-websocket/"})
        registry.action(2, "connect", None)  # an owner that is gone: ignored
        await asyncio.sleep(20 * MS)
        assert server.codes == [] and "close" not in events.kinds()
