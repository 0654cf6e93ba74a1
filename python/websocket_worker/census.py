"""Session counts across instances: how many clients a path has on the other Node-RED instances.

Every worker that serves a path through a backplane announces its own count of open sessions of
the path on the path's count channel (``<namespace>:c:<path>``, see backplane.py): when it
changes, at most once per :data:`COALESCE` seconds, and every :data:`REFRESH` seconds when it
does not. Each worker keeps the latest count of every publisher (a worker of another instance,
named by its node ``<instance>.<slot>``) and forgets one not heard from for :data:`EXPIRY`
seconds, or one that announced it left. What it reports to Node-RED is the sum over the other
instances only: Node-RED counts its own sessions itself (over all of its workers), so each
worker is counted once, by whoever counts it exactly.

A view starts empty: when the link comes up (again) or a path is attached, the worker forgets
what it knew (it may have missed departures meanwhile), announces its own count with ``ask``
set, and every other worker answers with its count within :data:`COALESCE`; the view is
reported once it has had :data:`SETTLE` seconds to fill, and as unknown (None) until then and
while the link is down.

Layers: the announcements are envelopes (envelopes.py ``CountEnvelope``, ``LeftEnvelope``);
:class:`Census` is the table, pure, the clock passed in;
:class:`Tally` is one path's timers around it. The constants are read at each use (tests
shorten them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from .envelopes import CountEnvelope, LeftEnvelope

__all__ = [
    "COALESCE",
    "EXPIRY",
    "MAX_PEERS",
    "REFRESH",
    "SETTLE",
    "Census",
    "Tally",
    "instance_of",
]

#: Seconds between two announcements of an unchanged count.
REFRESH = 5.0
#: Seconds after its last announcement when a publisher no longer counts (three refreshes missed).
EXPIRY = 3 * REFRESH
#: Least seconds between two announcements of one path: changes in between go out together.
COALESCE = 1.0
#: Seconds a new view has to fill (every other worker answers an ``ask`` within COALESCE).
SETTLE = 2.0
#: Publishers kept per path; announcements of more are ignored (nothing from Redis grows
#: without bound).
MAX_PEERS = 4096

#: Timers may fire this much before their time (the loop's clock resolution).
_EARLY = 0.005


def instance_of(node: str) -> str:
    """The instance of a node id ``<instance>.<slot>``."""
    return node.rpartition(".")[0]


@dataclass
class _Peer:
    count: int
    link: str
    expires: float


class Census:
    """The latest count of every publisher of another instance, for one path."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self._peers: dict[str, _Peer] = {}

    def __len__(self) -> int:
        return len(self._peers)

    def ours(self, node: str) -> bool:
        """Whether ``node`` is a worker of this instance (counted by Node-RED, not here)."""
        return instance_of(node) == self.instance

    def heard(self, envelope: CountEnvelope, now: float) -> bool:
        """Keep an announcement; False when it is ignored (ours, or one publisher too many)."""
        if self.ours(envelope.node):
            return False
        peer = self._peers.get(envelope.node)
        if peer is None:
            if len(self._peers) >= MAX_PEERS:
                return False
            self._peers[envelope.node] = _Peer(envelope.count, envelope.link, now + EXPIRY)
        else:
            peer.count, peer.link, peer.expires = envelope.count, envelope.link, now + EXPIRY
        return True

    def left(self, envelope: LeftEnvelope) -> None:
        peer = self._peers.get(envelope.node)
        if peer is not None and peer.link == envelope.link:
            del self._peers[envelope.node]

    def expire(self, now: float) -> None:
        """Forget the publishers not heard from for EXPIRY seconds."""
        for node in [node for node, peer in self._peers.items() if peer.expires <= now]:
            del self._peers[node]

    def clear(self) -> None:
        self._peers.clear()

    @property
    def others(self) -> int:
        """Sessions of the path on the other instances."""
        return sum(peer.count for peer in self._peers.values())


class Tally:
    """One path's announcements and view for one link: asyncio timers around a :class:`Census`.

    ``count()`` is this worker's open sessions of the path; ``announce(count, ask)`` publishes
    them; ``report(others)`` tells Node-RED the view (None: not known), called on each change.
    """

    def __init__(
        self,
        instance: str,
        count: Callable[[], int],
        announce: Callable[[int, bool], None],
        report: Callable[[int | None], None],
    ) -> None:
        self.census = Census(instance)
        self._count = count
        self._announce = announce
        self._report = report
        self._loop = asyncio.get_running_loop()
        self.running = False
        self._settle_at = 0.0
        self._settled = False
        self._sent_at = float("-inf")
        #: An announcement is owed before the next refresh (the count changed, or an ask).
        self._owed = False
        self._timer: asyncio.TimerHandle | None = None
        self.reported: int | None = None

    # What the link tells it.

    def start(self) -> None:
        """The link is up (again), or the path was just attached to a link that is: a new view."""
        self.census.clear()
        self.running = True
        now = self._loop.time()
        self._settled = False
        self._settle_at = now + SETTLE
        self._send(now, ask=True)
        self._update()

    def stop(self) -> None:
        """The link is down, or the path detached: no more announcements, the view unknown."""
        self.running = False
        self._owed = False
        self._cancel()
        self._update()

    def changed(self) -> None:
        """This worker's count of the path changed."""
        if self.running:
            self._owed = True
            self._plan()

    def heard(self, envelope: CountEnvelope) -> None:
        if not self.running or self.census.ours(envelope.node):
            return
        now = self._loop.time()
        self.census.expire(now)
        self.census.heard(envelope, now)
        if envelope.ask:
            self._owed = True  # answered by the timer _update arms
        self._update()

    def left(self, envelope: LeftEnvelope) -> None:
        if self.running:
            self.census.left(envelope)
            self._update()

    # Timers.

    def _send(self, now: float, ask: bool = False) -> None:
        self._sent_at, self._owed = now, False
        self._announce(self._count(), ask)

    def _due(self) -> float:
        due = self._sent_at + (COALESCE if self._owed else REFRESH)
        return due if self._settled else min(due, self._settle_at)

    def _plan(self) -> None:
        """Arm the timer for the next announcement or the end of settling, if not armed earlier."""
        due = self._due()
        timer = self._timer
        if timer is not None:
            if timer.when() <= due:
                return
            timer.cancel()
        self._timer = self._loop.call_at(due, self._wake)

    def _wake(self) -> None:
        self._timer = None
        if not self.running:
            return
        now = self._loop.time()
        soon = now + _EARLY
        if soon >= self._sent_at + (COALESCE if self._owed else REFRESH):
            self._send(now)
        if not self._settled and soon >= self._settle_at:
            self._settled = True
        self.census.expire(now)
        self._update()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _update(self) -> None:
        """Report the view when it changed; arm the next timer."""
        view = self.census.others if self.running and self._settled else None
        if view != self.reported:
            self.reported = view
            self._report(view)
        if self.running:
            self._plan()
