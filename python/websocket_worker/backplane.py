"""The backplane: one listener path served by several Node-RED instances, through Redis pub/sub.

The model is socket.io's Redis adapter. Every worker that serves an endpoint with a backplane
subscribes to two channels of the endpoint's namespace (docs/protocol.md, *Backplane*):

- ``<namespace>:b:<path>``, the path's broadcasts. A broadcast from a flow is delivered to the
  local sessions at once and published once per instance (by the worker the bridge sends
  ``publish`` to); every worker that receives it delivers it to its own sessions, except the
  workers of the instance it came from (they had it from their bridge).
- ``<namespace>:s:<node>``, replies for the sessions of this worker. A session id of an endpoint
  with a backplane is ``<node>.<local id>``, ``<node>`` being ``<instance>.<worker slot>``: a
  reply (or a close) to a session of another node is published to that node's channel, and the
  worker there sends it to the session if it is still open (else a debug line).
- ``<namespace>:c:<path>``, the path's session counts: each worker announces its own, and
  reports the sum of the other instances' to Node-RED (census.py).

Pub/sub keeps no history: what is published while an instance is cut off from Redis is lost for
it, and what this worker could not publish (Redis down, or publishing falling behind by more
than :data:`MAX_QUEUE` envelopes) is counted and reported once per outage. Redis never holds up
local delivery: publishing only queues, and a :class:`Link` reconnects by itself with backoff.

Layers: the channel names and envelopes are pure (envelopes.py: MessagePack, never evaluated);
a :class:`Link` is the asyncio side of one Redis server and namespace (the subscriber connection,
the publisher, the reconnects, the counts, a :class:`~websocket_worker.census.Tally` per path);
:class:`Backplanes` is the worker's registry of links, shared by every endpoint that names the
same server and namespace. The ``redis`` package is imported only when a backplane is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from . import envelopes
from .background import Background
from .census import Tally
from .envelopes import (
    CountEnvelope,
    EnvelopeError,
    LeftEnvelope,
    ReplyEnvelope,
    SendEnvelope,
)
from .options import BackplaneOptions
from .shell import WriteBatch

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

__all__ = [
    "MAX_QUEUE",
    "Backplanes",
    "Link",
    "Subscriber",
    "safe_url",
]

Emit = Callable[[list[Any]], None]
Log = Callable[[str, str], None]

logger = logging.getLogger("websocket_worker.backplane")

#: Seconds before the first reconnect; doubled per failed attempt up to MAX_DELAY, each wait
#: drawn between 75 % and 100 % of its step (workers cut off together do not return together).
FIRST_DELAY = 0.25
MAX_DELAY = 5.0
#: Seconds for connecting, subscribing, and for one batch of publishes.
CONNECT_TIMEOUT = 5.0
PUBLISH_TIMEOUT = 5.0
#: Envelopes waiting to be published beyond which new ones are dropped (and counted).
MAX_QUEUE = 10_000
#: Envelopes sent in one pipeline (one write, one read of the answers).
BATCH = 512
#: Seconds a closing link waits for its last envelopes (its ``left``) to go out.
LEAVE_TIMEOUT = 0.5


# Names for logs.


def safe_url(url: str) -> str:
    """The URL for logs and statuses: without user, password or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "(bad URL)"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# The asyncio side.


class Subscriber(Protocol):
    """What a :class:`Link` needs of an endpoint (endpoints.py ``Endpoint``)."""

    @property
    def owner(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def open_count(self) -> int:
        """Its open sessions, announced to the other instances."""

    def remote_send(self, sid: str | None, data: str | bytes) -> bool:
        """Deliver to the local sessions (every one when ``sid`` is None): False when ``sid``
        is not open here."""

    def remote_close(self, sid: str, code: int, reason: str) -> bool:
        """Close local session ``sid``: False when it is not open here."""


@dataclass
class _Outgoing:
    channel: str
    payload: bytes
    #: The session a reply or close is for ("" for a broadcast): named in the debug line when no
    #: worker of its node is subscribed.
    sid: str = ""
    #: A flow's message (counted when published or lost), not a count announcement.
    counted: bool = True


class Link:
    """One Redis server and namespace, for the endpoints of this worker that name them.

    States: ``connecting`` (the first attempt), ``up``, ``down`` (waiting to reconnect). Each
    change to ``up`` or ``down`` is emitted as ``["backplane", owner, state, info]`` for every
    attached endpoint (an endpoint attached later gets the current one). Each endpoint's view of
    the other instances' sessions is emitted as ``["remote_count", owner, count]`` when it
    changes (census.py).
    """

    def __init__(self, options: BackplaneOptions, instance: str, node: str, emit: Emit,
                 log: Log, batch: WriteBatch | None = None) -> None:  # fmt: skip
        self.options = options
        self._batch = batch if batch is not None else WriteBatch()
        #: Messages read from Redis, delivered together once the reader waits for more.
        self._arrived: list[tuple[bytes, bytes]] = []
        self.instance = instance
        self.node = node
        self.url = safe_url(options.url)
        self._emit = emit
        self._log = log
        self._namespace = options.namespace
        self._own_channel = envelopes.session_channel(options.namespace, node).encode()
        #: Names this link in count announcements (a redeploy makes a new link for the node).
        self.link_id = secrets.token_hex(4)
        #: Broadcast channel (bytes, as Redis gives it back) → endpoint; path → endpoint.
        self._by_channel: dict[bytes, Subscriber] = {}
        self._by_path: dict[str, Subscriber] = {}
        #: Each endpoint's counts (by owner), and by count channel.
        self._tallies: dict[int, Tally] = {}
        self._by_count_channel: dict[bytes, Tally] = {}
        self.state = "connecting"
        self.error: str | None = None
        #: Envelopes not published in the current outage (or falling behind), and in all.
        self.lost = 0
        self.lost_total = 0
        self.published = 0
        self.received = 0
        self._down_since: float | None = None
        self._queue: deque[_Outgoing] = deque()
        self._in_flight: list[_Outgoing] = []
        self._wake = asyncio.Event()
        #: Set while nothing waits to be published (a closing link waits for its ``left``).
        self._drained = asyncio.Event()
        self._drained.set()
        self._pubsub: PubSub | None = None
        self._background = Background()
        self._overflowing = False
        self._task: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(self._run())

    # Endpoints.

    def attach(self, endpoint: Subscriber, path: str) -> None:
        channel = envelopes.broadcast_channel(self._namespace, path).encode()
        self._by_channel[channel] = endpoint
        self._by_path[path] = endpoint
        counts = envelopes.count_channel(self._namespace, path)
        owner = endpoint.owner
        tally = Tally(
            self.instance,
            lambda: endpoint.open_count,
            lambda count, ask: self._publish(_Outgoing(
                counts, envelopes.pack_count(self.node, self.link_id, count, ask), counted=False)),
            lambda others: self._emit(["remote_count", owner, others]),
        )  # fmt: skip
        self._tallies[owner] = tally
        self._by_count_channel[counts.encode()] = tally
        pubsub = self._pubsub
        if pubsub is not None:
            # The view starts once the count channel is subscribed: answers to its ask come there.
            self._background.spawn(self._subscribe(pubsub, channel, counts.encode(), tally=tally))
        if self.state != "connecting":
            self._emit(["backplane", owner, self.state, self._info()])

    def detach(self, endpoint: Subscriber) -> bool:
        """Forget ``endpoint`` (announcing that it left); True when no endpoint is left (the
        link should be closed)."""
        for path, known in list(self._by_path.items()):
            if known is endpoint:
                del self._by_path[path]
                channel = envelopes.broadcast_channel(self._namespace, path).encode()
                self._by_channel.pop(channel, None)
                counts = envelopes.count_channel(self._namespace, path)
                tally = self._by_count_channel.pop(counts.encode(), None)
                self._tallies.pop(endpoint.owner, None)
                if tally is not None:
                    self._leave(counts, tally)
                pubsub = self._pubsub
                if pubsub is not None:
                    self._background.spawn(self._unsubscribe(pubsub, channel, counts.encode()))
        return not self._by_path

    def count_changed(self, endpoint: Subscriber) -> None:
        """``endpoint``'s open sessions changed: announced with the next (coalesced) count."""
        tally = self._tallies.get(endpoint.owner)
        if tally is not None:
            tally.changed()

    def _leave(self, channel: str, tally: Tally) -> None:
        if tally.running and self.state == "up":
            left = envelopes.pack_left(self.node, self.link_id)
            self._publish(_Outgoing(channel, left, counted=False))
        tally.stop()

    async def _subscribe(self, pubsub: PubSub, *channels: bytes,
                         tally: Tally | None = None) -> None:  # fmt: skip
        # A failure here is the connection's: the reader sees it too and the link reconnects.
        with contextlib.suppress(Exception):
            await pubsub.subscribe(*channels)
            if tally is not None and self.state == "up" and tally in self._tallies.values():
                tally.start()

    async def _unsubscribe(self, pubsub: PubSub, *channels: bytes) -> None:
        with contextlib.suppress(Exception):
            await pubsub.unsubscribe(*channels)

    # Publishing.

    def broadcast(self, path: str, data: str | bytes) -> None:
        """Publish a broadcast of this instance to the other instances serving ``path``."""
        self._publish(_Outgoing(envelopes.broadcast_channel(self._namespace, path),
                                envelopes.pack_send(self.instance, data)))  # fmt: skip

    def reply(self, path: str, sid: str, data: str | bytes) -> None:
        """Publish a reply to session ``sid`` of another node."""
        channel = envelopes.session_channel(self._namespace, envelopes.node_of(sid))
        self._publish(_Outgoing(channel, envelopes.pack_reply(path, sid, data), sid))

    def close_session(self, path: str, sid: str, code: int, reason: str) -> None:
        """Publish a close of session ``sid`` of another node."""
        channel = envelopes.session_channel(self._namespace, envelopes.node_of(sid))
        self._publish(_Outgoing(channel, envelopes.pack_close(path, sid, code, reason), sid))

    def _publish(self, item: _Outgoing) -> None:
        if self.state != "up":
            self._count_lost(int(item.counted))
            return
        if len(self._queue) >= MAX_QUEUE:
            self._count_lost(int(item.counted))
            if not self._overflowing:
                self._overflowing = True
                self._log("warn", f"backplane {self.url}: publishing fell {MAX_QUEUE} messages "
                                  "behind; newer ones are dropped until it catches up")  # fmt: skip
            return
        self._queue.append(item)
        self._drained.clear()
        self._wake.set()

    def _count_lost(self, count: int) -> None:
        self.lost += count
        self.lost_total += count

    # Receiving.

    def _arrive(self, channel: bytes, payload: bytes) -> None:
        """Deliver what the reader took from Redis once it waits for more: every message of one
        read of the socket in one write batch, so that each session gets them in one syscall
        (one write per message and session cost 4x the CPU of a local broadcast)."""
        if not self._arrived:
            asyncio.get_running_loop().call_soon(self._deliver_arrived)
        self._arrived.append((channel, payload))

    def _deliver_arrived(self) -> None:
        arrived, self._arrived = self._arrived, []
        with self._batch:
            for channel, payload in arrived:
                self._received(channel, payload)

    def _received(self, channel: bytes, payload: bytes) -> None:
        self.received += 1
        try:
            envelope = envelopes.unpack(payload)
        except EnvelopeError as exc:
            self._log("debug", f"backplane {self.url}: dropped a message on "
                               f"{channel.decode(errors='replace')[:80]}: {exc}")  # fmt: skip
            return
        if isinstance(envelope, SendEnvelope):
            if envelope.origin == self.instance:
                return  # ours: delivered by our bridge already
            endpoint = self._by_channel.get(channel)
            if endpoint is not None:
                endpoint.remote_send(None, envelope.data)
            return
        if isinstance(envelope, (CountEnvelope, LeftEnvelope)):
            tally = self._by_count_channel.get(channel)
            if tally is None:
                self._log("debug", f"backplane {self.url}: dropped a count on "
                                   f"{channel.decode(errors='replace')[:80]}")  # fmt: skip
            elif isinstance(envelope, CountEnvelope):
                tally.heard(envelope)
            else:
                tally.left(envelope)
            return
        if channel != self._own_channel or envelopes.node_of(envelope.sid) != self.node:
            self._log("debug", f"backplane {self.url}: dropped a {type(envelope).__name__} "
                               "for a session of another node")  # fmt: skip
            return
        target = self._by_path.get(envelope.path)
        if isinstance(envelope, ReplyEnvelope):
            done = target is not None and target.remote_send(envelope.sid, envelope.data)
            what = "reply"
        else:
            done = target is not None and target.remote_close(
                envelope.sid, envelope.code, envelope.reason
            )
            what = "close"
        if not done:
            self._log("debug", f"backplane: {what} from another instance for session "
                               f"{envelope.sid} of {envelope.path}, which is not open here: "
                               "dropped")  # fmt: skip

    # The connection.

    def _info(self) -> dict[str, Any]:
        return {"url": self.url, "error": self.error, "lost": self.lost_total}

    def _set_state(self, state: str) -> None:
        self.state = state
        info = self._info()
        for endpoint in list(self._by_path.values()):
            self._emit(["backplane", endpoint.owner, state, info])

    def _client(self) -> Redis:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No retries inside the library: this link notices the failure, reports it and
        # reconnects with its own backoff.
        client: Redis = Redis.from_url(
            self.options.url,
            password=self.options.password,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
        )
        return client

    async def _run(self) -> None:
        from redis.exceptions import RedisError

        delay = FIRST_DELAY
        while True:
            client: Redis | None = None
            pubsub: PubSub | None = None
            try:
                client = self._client()
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                channels = self._channels()
                await asyncio.wait_for(pubsub.subscribe(*channels), CONNECT_TIMEOUT)
                await asyncio.wait_for(client.ping(), CONNECT_TIMEOUT)
                while True:  # channels attached while subscribing
                    missing = [channel for channel in self._channels() if channel not in channels]
                    if not missing:
                        break
                    await asyncio.wait_for(pubsub.subscribe(*missing), CONNECT_TIMEOUT)
                    channels += missing
                self._pubsub = pubsub
                self._up()
                delay = FIRST_DELAY
                await self._serve(client, pubsub)
            except (RedisError, OSError, asyncio.TimeoutError, EOFError) as exc:
                self.error = _describe(exc)
            finally:
                self._pubsub = None
                await _discard(client, pubsub)
            self._down()
            await asyncio.sleep(delay * random.uniform(0.75, 1.0))
            delay = min(delay * 2, MAX_DELAY)

    def _channels(self) -> list[bytes]:
        return [self._own_channel, *self._by_channel, *self._by_count_channel]

    async def _serve(self, client: Redis, pubsub: PubSub) -> None:
        """Read and publish until either fails; raises what failed."""
        reader = asyncio.ensure_future(self._read(pubsub))
        writer = asyncio.ensure_future(self._write(client))
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if exc is not None:
                raise exc
        raise EOFError("connection closed")

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is not None and message.get("type") == "message":
                self._arrive(message["channel"], message["data"])

    async def _write(self, client: Redis) -> None:
        while True:
            if not self._queue:
                self._overflowing = False
                self._drained.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            count = min(len(self._queue), BATCH)
            batch = [self._queue.popleft() for _ in range(count)]
            self._in_flight = batch
            pipe = client.pipeline(transaction=False)
            for item in batch:
                pipe.publish(item.channel, item.payload)
            results = await asyncio.wait_for(pipe.execute(), PUBLISH_TIMEOUT)
            self._in_flight = []
            self.published += sum(item.counted for item in batch)
            for item, receivers in zip(batch, results):
                if item.sid and receivers == 0:
                    self._log("debug", f"backplane {self.url}: no instance serves session "
                                       f"{item.sid} (gone, or unknown): dropped")  # fmt: skip

    def _up(self) -> None:
        was_down = self._down_since
        self._down_since = None
        self._set_state("up")
        for tally in list(self._tallies.values()):
            tally.start()
        if was_down is not None:
            seconds = time.monotonic() - was_down
            text = f"backplane {self.url} is back after {seconds:.1f} s"
            if self.lost:
                plural = "" if self.lost == 1 else "s"
                text += (f"; {self.lost} message{plural} could not be published meanwhile (other "
                         "instances missed them: pub/sub keeps no history)")  # fmt: skip
            self._log("warn" if self.lost else "info", text)
        self.lost = 0

    def _down(self) -> None:
        # What was in flight may or may not have gone out: counted as lost.
        self._count_lost(sum(item.counted for item in (*self._in_flight, *self._queue)))
        self._in_flight = []
        self._queue.clear()
        self._drained.set()
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._log("warn", f"backplane {self.url} down ({self.error}): local delivery goes "
                              "on; reconnecting")  # fmt: skip
        if self.state != "down":
            self._set_state("down")
        for tally in list(self._tallies.values()):
            tally.stop()

    async def aclose(self) -> None:
        """Announce that the endpoints still attached left, wait a moment for what waits to be
        published (the ``left`` of endpoints detached just before), then close."""
        for path in list(self._by_path):
            counts = envelopes.count_channel(self._namespace, path)
            tally = self._by_count_channel.pop(counts.encode(), None)
            if tally is not None:
                self._leave(counts, tally)
        self._tallies.clear()
        if self.state == "up":
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained.wait(), LEAVE_TIMEOUT)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._background.finish(0.1)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


async def _discard(client: Redis | None, pubsub: PubSub | None) -> None:
    """Close a connection that failed or is no longer wanted, without waiting on it."""
    with contextlib.suppress(Exception):
        if pubsub is not None:
            await asyncio.wait_for(pubsub.aclose(), 1.0)  # type: ignore[no-untyped-call]
    with contextlib.suppress(Exception):
        if client is not None:
            await asyncio.wait_for(client.aclose(), 1.0)


class Backplanes:
    """The worker's links, by server (URL and password) and namespace, shared by its endpoints.

    ``configure`` names this worker (``instance`` and ``node``); until then no link is made.
    """

    def __init__(self, emit: Emit, log: Log, batch: WriteBatch | None = None) -> None:
        self._emit = emit
        self._log = log
        self._batch = batch
        self.instance = ""
        self.node = ""
        self._links: dict[BackplaneOptions, Link] = {}
        self._by_endpoint: dict[int, Link] = {}
        self._closing = Background()
        self._problem: str | None = None

    def configure(self, instance: str, node: str) -> None:
        self.instance, self.node = instance, node

    def links(self) -> list[Link]:
        return list(self._links.values())

    def link_of(self, endpoint: Subscriber) -> Link | None:
        return self._by_endpoint.get(endpoint.owner)

    def attach(self, endpoint: Subscriber, path: str, options: BackplaneOptions | None) -> None:
        """Serve ``endpoint`` through the backplane of ``options`` (None: through none)."""
        current = self._by_endpoint.get(endpoint.owner)
        if current is not None and options == current.options:
            return
        self.detach(endpoint)
        if options is None:
            return
        problem = self._unavailable()
        if problem is not None or not self.node:
            why = problem or "the worker was not given its node id (configure)"
            self._log("error", f"{endpoint.name}: no backplane: {why}")
            self._emit(["backplane", endpoint.owner, "down",
                        {"url": safe_url(options.url), "error": why, "lost": 0}])  # fmt: skip
            return
        link = self._links.get(options)
        if link is None:
            link = Link(options, self.instance, self.node, self._emit, self._log, self._batch)
            self._links[options] = link
        self._by_endpoint[endpoint.owner] = link
        link.attach(endpoint, path)

    def detach(self, endpoint: Subscriber) -> None:
        link = self._by_endpoint.pop(endpoint.owner, None)
        if link is not None and link.detach(endpoint):
            self._links.pop(link.options, None)
            self._closing.spawn(link.aclose())

    def _unavailable(self) -> str | None:
        """Why the redis package cannot be used (checked once), or None."""
        if self._problem is None:
            from . import compat

            self._problem = compat.optional_problem("redis") or ""
        return self._problem or None

    async def aclose(self) -> None:
        links = list(self._links.values())
        self._links.clear()
        self._by_endpoint.clear()
        await asyncio.gather(*(link.aclose() for link in links))
        await self._closing.finish(1.0)
