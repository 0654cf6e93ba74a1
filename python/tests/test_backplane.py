"""The backplane: two instances' endpoints on one path, through a real redis-server on 127.0.0.1.

Each "instance" here is an endpoint registry of its own (what one worker holds), configured with
its own instance id and node, with real clients connected to it; Redis is a real ``redis-server``
started on a free port (installed by scripts/ensure-redis.js when missing, as CI does).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from websockets.asyncio.client import ClientConnection

from websocket_worker import census, envelopes
from websocket_worker.backplane import safe_url
from websocket_worker.census import Census
from websocket_worker.compat import optional_problem
from websocket_worker.envelopes import (
    CloseEnvelope,
    CountEnvelope,
    EnvelopeError,
    LeftEnvelope,
    ReplyEnvelope,
    SendEnvelope,
    node_of,
    pack_close,
    pack_count,
    pack_left,
    pack_reply,
    pack_send,
    unpack,
)
from websocket_worker.options import BackplaneOptions, EndpointOptions

from .conftest import MS, WAIT, Harness, free_port, until

ROOT = Path(__file__).resolve().parents[2]
PATH = "/chat"


# The envelopes, bytes only.


def test_envelopes_round_trip_with_text_and_binary() -> None:
    """Text stays str and binary stays bytes through an envelope."""
    assert unpack(pack_send("a1", "héllo")) == SendEnvelope("a1", "héllo")
    assert unpack(pack_send("a1", b"\x00\xff")) == SendEnvelope("a1", b"\x00\xff")
    assert unpack(pack_reply("/p", "a1.0.x", b"r")) == ReplyEnvelope("/p", "a1.0.x", b"r")
    assert unpack(pack_close("/p", "a1.0.x", 4000, "bye")) == CloseEnvelope("/p", "a1.0.x", 4000,
                                                                             "bye")  # fmt: skip
    assert unpack(pack_count("a1.0", "l1", 12, True)) == CountEnvelope("a1.0", "l1", 12, True)
    assert unpack(pack_left("a1.1", "l2")) == LeftEnvelope("a1.1", "l2")


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1",  # never used in MessagePack
        msgpack.packb({"a": 1}),
        msgpack.packb([2, "send", "a1", "x"]),  # another version
        msgpack.packb([1, "send", "a1"]),
        msgpack.packb([1, "send", 5, "x"]),
        msgpack.packb([1, "send", "a1", 5]),
        msgpack.packb([1, "reply", "/p", 7, "x"]),
        msgpack.packb([1, "close", "/p", "s", 1006, ""]),  # not a code a flow may send
        msgpack.packb([1, "close", "/p", "s", 1000, "x" * 124]),
        msgpack.packb([1, "eval", "print(1)"]),
        msgpack.packb([1, "send", "a1", "x"]) + b"\x00",  # trailing bytes
        msgpack.packb([1, "count", "b2.0", "l1", -1, False]),  # a count below 0
        msgpack.packb([1, "count", "b2.0", "l1", 2**31, False]),  # beyond any worker's
        msgpack.packb([1, "count", "b2.0", "l1", 3.0, False]),  # a float
        msgpack.packb([1, "count", "b2.0", "l1", True, False]),  # a bool is not a count
        msgpack.packb([1, "count", "b2.0", "l1", "3", False]),
        msgpack.packb([1, "count", "b2.0", "l1", 3, 1]),  # ask must be a bool
        msgpack.packb([1, "count", "b2", "l1", 3, False]),  # a node names its slot
        msgpack.packb([1, "count", "b2.x", "l1", 3, False]),
        msgpack.packb([1, "count", "b2.0", "", 3, False]),  # no link id
        msgpack.packb([1, "count", "b2.0", "l1", 3]),
        msgpack.packb([1, "left", "b2.0"]),
        msgpack.packb([1, "left", "b2.0", 7]),
    ],
)
def test_anything_else_is_not_an_envelope(payload: bytes) -> None:
    """What is not an envelope of this version, shape and types is refused, never guessed."""
    with pytest.raises(EnvelopeError):
        unpack(payload)


def test_names() -> None:
    """A session id names its node; logs name the server without credentials or query."""
    assert node_of("3fa9c2b1.0.a1b2c3d4e5f60718") == "3fa9c2b1.0"
    assert node_of("a1b2c3d4e5f60718") == ""
    assert safe_url("redis://user:secret@127.0.0.1:6380/2?x=y") == "redis://127.0.0.1:6380/2"
    assert safe_url("rediss://:pw@[::1]:6379") == "rediss://[::1]:6379"
    assert envelopes.broadcast_channel("ns", "/chat") == "ns:b:/chat"
    assert envelopes.session_channel("ns", "a1.0") == "ns:s:a1.0"


def test_options_are_checked() -> None:
    """The URL must be Redis's; the namespace has no spaces; the password stays out of repr."""
    parsed = BackplaneOptions.from_dict({"url": "redis://h:1/0", "password": "secret"})
    assert parsed is not None and parsed.namespace == "pyws" and "secret" not in repr(parsed)
    assert EndpointOptions.from_dict({}).backplane is None
    for bad in ({"url": "http://h"}, {"url": "redis://h", "namespace": "a b"},
                {"url": "redis://h", "password": 5}, {}):  # fmt: skip
        with pytest.raises(ValueError):
            BackplaneOptions.from_dict(bad)


def test_redis_is_optional_for_the_worker() -> None:
    """Without redis (or with one outside the tested range) only a backplane cannot run."""
    assert optional_problem("redis") is None
    assert optional_problem("redis", {"redis": None}) == (
        "redis is not installed (needs 7.0 or newer, before 9)"
    )
    assert "redis 4.5.0 is installed" in str(optional_problem("redis", {"redis": "4.5.0"}))


# A real redis-server.


def _redis_server() -> str:
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(found).exists():
        # As the browser test does with Chromium: apt-get as root (CI), else a clear message.
        subprocess.run(["node", str(ROOT / "scripts" / "ensure-redis.js")], check=False,
                       timeout=600)  # fmt: skip
    if not Path(found).exists():
        pytest.skip("redis-server is missing and scripts/ensure-redis.js could not install it")
    return found


class RedisServer:
    """``redis-server`` on 127.0.0.1 and a free port, with no persistence; can be killed and
    started again on the same port."""

    def __init__(self, password: str | None = None) -> None:
        self.binary = _redis_server()
        self.port = free_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + WAIT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.kill()


class Instance(Harness):
    """One instance's worker: an endpoint registry named ``<instance>.<slot>``, serving PATH
    through the backplane, with its own clients."""

    def __init__(self, instance: str, url: str, password: str | None = None, slot: int = 0) -> None:
        super().__init__()
        self.instance = instance
        self.node = f"{instance}.{slot}"
        self.registry.backplanes.configure(instance, self.node)
        backplane: dict[str, Any] = {"url": url, "namespace": "test", "password": password}
        self.registry.listen(1, {"path": PATH, "backplane": backplane})

    def sid(self, local: str) -> str:
        return f"{self.node}.{local}"

    def states(self) -> list[str]:
        return [frame[2] for frame in self.events.of("backplane")]

    async def up(self) -> None:
        await until(lambda: self.states()[-1:] == ["up"], WAIT)

    def remote(self) -> list[int | None]:
        """The counts of the other instances' sessions reported so far, in order."""
        return [frame[2] for frame in self.events.of("remote_count") if frame[1] == 1]

    async def close(self) -> None:
        await super().close()


@pytest.fixture
async def pair(redis_server: RedisServer) -> AsyncIterator[tuple[Instance, Instance]]:
    a, b = Instance("a1", redis_server.url), Instance("b2", redis_server.url)
    await a.up()
    await b.up()
    yield a, b
    await a.close()
    await b.close()


async def received(ws: ClientConnection, count: int = 1) -> list[str | bytes]:
    return [await asyncio.wait_for(ws.recv(), WAIT) for _ in range(count)]


async def only_probes(a: Instance, b: Instance, *clients: ClientConnection) -> None:
    """Each client's next two messages are a probe broadcast from each instance, nothing before:
    a message that should not come would come first (the probe from B follows, on A's
    subscription, the echo of anything A published before; the probe from A follows, on B's, any
    publication of A's before it)."""
    b.registry.publish(1, "probe from b")
    a.registry.publish(1, "probe from a")
    for ws in clients:
        assert sorted(map(str, await received(ws, 2))) == ["probe from a", "probe from b"]


async def test_a_broadcast_reaches_every_instance_once(pair: tuple[Instance, Instance]) -> None:
    """A broadcast published on A reaches A's clients (from A's bridge, at once) and B's
    (through Redis), each exactly once: A ignores its own publication."""
    a, b = pair
    a1 = await a.connect(sid=a.sid("c1"))
    b1 = await b.connect(sid=b.sid("c1"))
    b2 = await b.connect(sid=b.sid("c2"))
    a.registry.publish(1, "hello")
    a.registry.publish(1, b"\x01\x02")
    for ws in (a1, b1, b2):
        assert await received(ws, 2) == ["hello", b"\x01\x02"]
    await only_probes(a, b, a1, b1, b2)
    link = a.registry.backplanes.link_of(a.endpoint(1))
    assert link is not None
    await until(lambda: link.published == 3)  # with the probe
    assert link.lost_total == 0


async def test_a_plain_send_stays_on_its_instance(pair: tuple[Instance, Instance]) -> None:
    """Only ``publish`` publishes: a ``send`` to every session (the bridge's other workers)
    stays local."""
    a, b = pair
    a1 = await a.connect(sid=a.sid("c1"))
    b1 = await b.connect(sid=b.sid("c1"))
    a.registry.send(1, None, "local")
    assert await received(a1) == ["local"]
    await only_probes(a, b, b1)


async def test_a_reply_reaches_the_instance_holding_the_session(
    pair: tuple[Instance, Instance],
) -> None:
    """A reply made on B to a session of A goes through A's session channel to that session
    only; a close too."""
    a, b = pair
    a1 = await a.connect(sid=a.sid("c1"))
    a2 = await a.connect(sid=a.sid("c2"))
    b.registry.send(1, a.sid("c1"), "for you")
    assert await received(a1) == ["for you"]
    await only_probes(a, b, a2)
    b.registry.close_session(1, a.sid("c2"), 4001, "kicked")
    await asyncio.wait_for(a2.wait_closed(), WAIT)
    assert (a2.close_code, a2.close_reason) == (4001, "kicked")
    assert (await a.events.get("close", 1, a.sid("c2")))[3:] == [4001, "kicked", "server"]


async def test_replies_to_unknown_instances_and_gone_sessions_are_dropped(
    pair: tuple[Instance, Instance],
) -> None:
    """A reply to a node nobody serves is dropped with a debug line where it was made; one to a
    session that went, where the session was."""
    a, b = pair
    b.registry.send(1, "zz9.0.c1", "nobody")
    await until(lambda: any("no instance serves session zz9.0.c1" in t for _, t in b.logs))
    b.registry.send(1, a.sid("gone"), "late")
    await until(lambda: any("session a1.0.gone" in t and "not open here" in t for _, t in a.logs))
    assert all(level == "debug" for level, text in a.logs + b.logs if "session" in text)


async def test_envelopes_from_elsewhere_are_checked(
    pair: tuple[Instance, Instance], redis_server: RedisServer
) -> None:
    """What arrives on the channels that is not a well-formed envelope, or a reply meant for
    another node, is dropped with a debug line; nothing reaches a client."""
    from redis.asyncio import Redis

    a, b = pair
    a1 = await a.connect(sid=a.sid("c1"))
    client = Redis.from_url(redis_server.url)
    try:
        await client.publish(f"test:b:{PATH}", b"\x93\x01garbage")
        await client.publish("test:s:a1.0", pack_reply(PATH, "b2.0.c1", "misrouted"))
        await until(lambda: sum("dropped" in text for _, text in a.logs) >= 2)
    finally:
        await client.aclose()
    await only_probes(a, b, a1)


async def test_redis_down_keeps_local_delivery_and_counts_what_was_lost(
    pair: tuple[Instance, Instance], redis_server: RedisServer
) -> None:
    """Redis killed: both instances report down, A's broadcasts still reach A's clients and
    are counted as lost; Redis back on the same port: both report up (after their backoff), A
    warns once with the count, and broadcasts reach B again."""
    a, b = pair
    a1 = await a.connect(sid=a.sid("c1"))
    b1 = await b.connect(sid=b.sid("c1"))
    redis_server.kill()
    await until(lambda: a.states()[-1:] == ["down"] and b.states()[-1:] == ["down"])
    for index in range(3):
        a.registry.publish(1, f"while down {index}")
    assert await received(a1, 3) == ["while down 0", "while down 1", "while down 2"]
    down = [text for level, text in a.logs if level == "warn" and "down" in text]
    assert len(down) == 1 and "local delivery goes on" in down[0]
    redis_server.start()
    await a.up()
    await b.up()
    back = [text for level, text in a.logs if level == "warn" and "is back" in text]
    assert len(back) == 1 and "3 messages could not be published" in back[0]
    assert a.events.of("backplane")[-1][3]["lost"] == 3
    a.registry.publish(1, "after")
    assert await received(a1) == ["after"]
    assert await received(b1) == ["after"]  # not "while down ...": never published
    await only_probes(a, b, a1, b1)


async def test_an_endpoint_declared_while_redis_is_down_reports_down_then_up(
    redis_server: RedisServer,
) -> None:
    """No Redis at first: the endpoint still listens and serves, its backplane says down (with
    why); once Redis is there it comes up by itself."""
    redis_server.kill()
    a = Instance("a1", redis_server.url)
    try:
        assert a.events.frames[-1] == ["listening", 1]
        await until(lambda: a.states()[-1:] == ["down"])
        info = a.events.of("backplane")[-1][3]
        assert info["url"] == redis_server.url and info["error"]
        a1 = await a.connect(sid=a.sid("c1"))
        a.registry.publish(1, "alone")
        assert await received(a1) == ["alone"]
        redis_server.start()
        await a.up()
    finally:
        await a.close()


async def test_the_password_is_used_and_a_wrong_one_is_reported() -> None:
    """A server with a password: the right one brings the link up; none keeps it down, saying
    why (never the password)."""
    server = RedisServer(password="s3cret-pw")
    server.start()
    good = Instance("a1", server.url, password="s3cret-pw")
    bad = Instance("b2", server.url)
    try:
        await good.up()
        await until(lambda: bad.states()[-1:] == ["down"])
        assert "s3cret-pw" not in repr(bad.events.frames + bad.logs + good.logs)
    finally:
        await good.close()
        await bad.close()
        server.kill()


async def test_unlisten_closes_the_link(pair: tuple[Instance, Instance]) -> None:
    """The last endpoint of a link going closes the link (its connections to Redis)."""
    a, _ = pair
    assert a.registry.backplanes.link_of(a.endpoint(1)) is not None
    a.registry.unlisten(1)
    await a.events.get("closed", 1)
    assert a.registry.backplanes.links() == []


# Session counts across instances (census.py).


def test_a_census_counts_other_instances_and_forgets_as_told() -> None:
    """Only other instances count; a ``left`` forgets its own link's count only (a redeploy's
    new link stays); a publisher not heard from for EXPIRY seconds is forgotten."""
    view = Census("a1")
    view.heard(CountEnvelope("a1.1", "l0", 7, False), 0.0)  # a worker of this instance
    view.heard(CountEnvelope("b2.0", "l1", 3, False), 0.0)
    view.heard(CountEnvelope("b2.1", "l2", 4, True), 1.0)
    assert (view.others, len(view)) == (7, 2)
    view.heard(CountEnvelope("b2.0", "l3", 5, False), 2.0)  # b2.0 redeployed: a new link
    view.left(LeftEnvelope("b2.0", "l1"))  # the old link's left, arriving late
    assert view.others == 9
    view.expire(2.0 + census.EXPIRY - 0.5)
    assert view.others == 5  # b2.1, last heard at 1.0, is gone; b2.0 (2.0) is not
    view.left(LeftEnvelope("b2.0", "l3"))
    assert (view.others, len(view)) == (0, 0)


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Census timings short enough for a test (the defaults: a refresh every 5 s, changes
    coalesced over 1 s, 2 s to settle), in the same proportions."""
    monkeypatch.setattr(census, "REFRESH", 300 * MS)
    monkeypatch.setattr(census, "EXPIRY", 900 * MS)
    monkeypatch.setattr(census, "COALESCE", 50 * MS)
    monkeypatch.setattr(census, "SETTLE", 500 * MS)


@contextlib.asynccontextmanager
async def announcements(url: str) -> AsyncIterator[list[CountEnvelope]]:
    """The count envelopes published for PATH from now on, as any subscriber sees them."""
    from redis.asyncio import Redis

    seen: list[CountEnvelope] = []
    client = Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(f"test:c:{PATH}")

    async def read() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is not None and message.get("type") == "message":
                envelope = unpack(message["data"])
                if isinstance(envelope, CountEnvelope):
                    seen.append(envelope)

    reader = asyncio.ensure_future(read())
    try:
        yield seen
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


async def test_each_instance_reports_the_sessions_of_the_others(
    quick: None, pair: tuple[Instance, Instance]
) -> None:
    """A counts B's sessions and B counts A's, never their own (Node-RED counts those); a
    client leaving B is counted out on A."""
    a, b = pair
    await a.connect(sid=a.sid("c1"))
    await b.connect(sid=b.sid("c1"))
    b2 = await b.connect(sid=b.sid("c2"))
    await until(lambda: a.remote()[-1:] == [2] and b.remote()[-1:] == [1])
    await b2.close()
    await until(lambda: a.remote()[-1:] == [1])
    assert b.remote()[-1] == 1


async def test_each_worker_of_an_instance_is_counted_once(
    quick: None, redis_server: RedisServer
) -> None:
    """Two workers of instance a1 (slots 0 and 1) and one of b2: each announces its own
    sessions; b2 counts both of a1's, each once, and neither of a1's counts the other (its
    bridge adds them up), through refreshes too."""
    a0 = Instance("a1", redis_server.url)
    a1 = Instance("a1", redis_server.url, slot=1)
    b = Instance("b2", redis_server.url)
    try:
        async with announcements(redis_server.url) as seen:
            for worker in (a0, a1, b):
                await worker.up()
            await a0.connect(sid=a0.sid("c1"))
            await a1.connect(sid=a1.sid("c1"))
            await a1.connect(sid=a1.sid("c2"))
            await b.connect(sid=b.sid("c1"))
            await until(lambda: b.remote()[-1:] == [3] and a0.remote()[-1:] == [1]
                        and a1.remote()[-1:] == [1])  # fmt: skip
            reports = [worker.remote() for worker in (a0, a1, b)]
            # Two more refreshes from each worker, each with its own count only.
            mark = len(seen)
            await until(lambda: all(sum(envelope.node == worker.node for envelope in seen[mark:])
                                    >= 2 for worker in (a0, a1, b)))  # fmt: skip
            latest = {envelope.node: envelope.count for envelope in seen[mark:]}
        assert latest == {"a1.0": 1, "a1.1": 2, "b2.0": 1}
        assert [worker.remote() for worker in (a0, a1, b)] == reports  # nothing changed
    finally:
        for worker in (a0, a1, b):
            await worker.close()


async def test_a_newcomer_learns_the_counts_without_waiting_for_a_refresh(
    quick: None,
    monkeypatch: pytest.MonkeyPatch,
    pair: tuple[Instance, Instance],
    redis_server: RedisServer,
) -> None:
    """A worker whose view is new asks; the others answer at once, so its first report already
    holds them, long before the next refresh."""
    monkeypatch.setattr(census, "REFRESH", 60.0)
    monkeypatch.setattr(census, "EXPIRY", 180.0)
    a, b = pair
    await a.connect(sid=a.sid("c1"))
    await a.connect(sid=a.sid("c2"))
    await b.connect(sid=b.sid("c1"))
    await until(lambda: b.remote()[-1:] == [2])
    c = Instance("c3", redis_server.url)
    try:
        await c.up()
        await until(lambda: [count for count in c.remote() if count is not None][:1] == [3],
                    timeout=min(WAIT, 10.0))  # fmt: skip
    finally:
        await c.close()


async def test_a_silent_publisher_is_forgotten_and_a_refreshing_one_kept(
    quick: None, pair: tuple[Instance, Instance], redis_server: RedisServer
) -> None:
    """A count announced once and never refreshed (a worker killed) stops counting after
    EXPIRY; B, which refreshes, keeps counting."""
    from redis.asyncio import Redis

    a, b = pair
    await b.connect(sid=b.sid("c1"))
    await until(lambda: a.remote()[-1:] == [1])
    client = Redis.from_url(redis_server.url)
    try:
        await client.publish(f"test:c:{PATH}", pack_count("zz9.0", "l1", 5, False))
    finally:
        await client.aclose()
    await until(lambda: a.remote()[-1:] == [6])
    seen = len(a.remote())
    await until(lambda: a.remote()[-1:] == [1], timeout=census.EXPIRY + WAIT)
    assert a.remote()[seen:] == [1]


async def test_a_worker_that_leaves_is_forgotten_at_once(
    quick: None, monkeypatch: pytest.MonkeyPatch, pair: tuple[Instance, Instance]
) -> None:
    """B's endpoint going (unlisten) announces that it left: A counts B out at once, not after
    EXPIRY (made far longer than the test here)."""
    monkeypatch.setattr(census, "REFRESH", 60.0)
    monkeypatch.setattr(census, "EXPIRY", 180.0)
    a, b = pair
    await b.connect(sid=b.sid("c1"))
    await b.connect(sid=b.sid("c2"))
    await until(lambda: a.remote()[-1:] == [2])
    b.registry.unlisten(1)
    await until(lambda: a.remote()[-1:] == [0])


async def test_malformed_counts_are_refused(
    quick: None, pair: tuple[Instance, Instance], redis_server: RedisServer
) -> None:
    """Counts that are not well-formed envelopes are dropped with a debug line and never
    counted; a well-formed one published after them is."""
    from redis.asyncio import Redis

    a, _ = pair
    await until(lambda: a.remote()[-1:] == [0])
    client = Redis.from_url(redis_server.url)
    try:
        for payload in (msgpack.packb([1, "count", "zz9.0", "l1", -5, False]),
                        msgpack.packb([1, "count", "zz9.0", "l1", "7", False]),
                        msgpack.packb([1, "count", "zz9", "l1", 7, False]),
                        b"\x93\x01garbage"):  # fmt: skip
            await client.publish(f"test:c:{PATH}", payload)
        await client.publish(f"test:c:{PATH}", pack_count("zz8.0", "l1", 4, False))
    finally:
        await client.aclose()
    await until(lambda: a.remote()[-1:] == [4])
    assert set(a.remote()) <= {None, 0, 4}
    dropped = [text for level, text in a.logs if "dropped" in text]
    assert len(dropped) == 4 and all(level == "debug" for level, text in a.logs
                                     if "dropped" in text)  # fmt: skip


async def test_the_view_is_unknown_while_redis_is_down(
    quick: None, pair: tuple[Instance, Instance], redis_server: RedisServer
) -> None:
    """Redis killed: each worker reports the other instances' count as unknown (None); Redis
    back: known again, from a new view."""
    a, b = pair
    await b.connect(sid=b.sid("c1"))
    await until(lambda: a.remote()[-1:] == [1])
    redis_server.kill()
    await until(lambda: a.remote()[-1:] == [None])
    redis_server.start()
    await a.up()
    await until(lambda: a.remote()[-1:] == [1])
