"""Flow control of ``message`` events (docs/protocol.md, *Flow control*).

One :class:`FlowControl` per worker counts the ``message`` events emitted and their payload bytes;
``["ack", count]`` from Node subtracts what Node-RED has delivered. While more than ``window``
messages, or more than ``window_bytes`` bytes not counting the newest message, are outstanding
the flow is *paused*: what Node-RED holds stays under the byte window plus two messages, and one
message larger than the window does not keep the next from being read meanwhile. Every registered
:class:`Reader` (listener sessions, on their transports or, when relayed, with ``stream_pause`` to
Node) stops reading, and client connections stop taking messages from their websockets connection
(see :meth:`FlowControl.wait`). Once both counts are under half their window, it resumes.

The per-message cost is what :meth:`FlowControl.count` does: two additions, one list append (the
running byte total, so that an ack of ``count`` messages knows their bytes) and two comparisons.
Pausing and resuming walk every reader, but only happen when a window is crossed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from .options import DEFAULT_FLOW_WINDOW, DEFAULT_FLOW_WINDOW_BYTES, FlowOptions

__all__ = ["FlowControl", "Reader"]

#: Acknowledged marks kept before :meth:`FlowControl.ack` compacts its list.
_COMPACT_AFTER = 4096

logger = logging.getLogger("websocket_worker.flow")


class Reader(Protocol):
    """Something that reads a socket and can stop doing so: a listener session."""

    def flow_pause(self) -> None:
        """Stop reading (idempotent)."""

    def flow_resume(self) -> None:
        """Read again, handling first whatever was held while paused (idempotent)."""


class FlowControl:
    """Counts unacknowledged ``message`` events and pauses every reader while over a window."""

    __slots__ = (
        "_head",
        "_limit",
        "_limit_bytes",
        "_marks",
        "_readers",
        "_resumed",
        "_turn",
        "acked",
        "acked_bytes",
        "paused",
        "sent",
        "sent_bytes",
        "window",
        "window_bytes",
    )

    def __init__(
        self, window: int = DEFAULT_FLOW_WINDOW, window_bytes: int = DEFAULT_FLOW_WINDOW_BYTES
    ) -> None:
        self.window = window
        self.window_bytes = window_bytes
        #: True while over a window: nothing should be read.
        self.paused = False
        #: ``message`` events emitted and their payload bytes, since the start.
        self.sent = 0
        self.sent_bytes = 0
        #: How many of them Node acknowledged, and their bytes.
        self.acked = 0
        self.acked_bytes = 0
        # ``sent`` / ``sent_bytes`` above which the flow pauses (acked + window).
        self._limit = window
        self._limit_bytes = window_bytes
        # sent_bytes after each message not yet acknowledged, from index _head on.
        self._marks: list[int] = []
        self._head = 0
        self._readers: dict[Reader, None] = {}  # in the order they came
        self._turn = 0  # where the next resume starts: those a resume did not reach go first
        self._resumed: asyncio.Future[None] | None = None

    @property
    def outstanding(self) -> int:
        """``message`` events not acknowledged yet."""
        return self.sent - self.acked

    @property
    def outstanding_bytes(self) -> int:
        """Their payload bytes."""
        return self.sent_bytes - self.acked_bytes

    # The hot path.

    def count(self, size: int) -> None:
        """One ``message`` event of ``size`` payload bytes was emitted."""
        self.sent += 1
        self.sent_bytes += size
        self._marks.append(self.sent_bytes)
        # The byte window leaves out the newest message: one larger than the window does not
        # stop the next from being read while Node-RED handles it.
        if self.sent > self._limit or self.sent_bytes - size > self._limit_bytes:
            self._pause()

    # Commands.

    def configure(self, options: Any) -> None:
        """``["configure", options]``: set the windows (validated; missing keys keep theirs)."""
        current = FlowOptions(self.window, self.window_bytes)
        parsed = FlowOptions.from_dict(options, current)
        self.window, self.window_bytes = parsed.flow_window, parsed.flow_window_bytes
        self._update()

    def ack(self, count: int) -> int:
        """``["ack", count]``: Node delivered ``count`` more messages.

        Returns how many of them were beyond what is outstanding (ignored; 0 normally).
        """
        excess = 0
        outstanding = self.sent - self.acked
        if count > outstanding:
            excess, count = count - outstanding, outstanding
        if count > 0:
            self.acked += count
            head = self._head + count
            marks = self._marks
            self.acked_bytes = marks[head - 1]
            if head == len(marks) or (head >= _COMPACT_AFTER and 2 * head >= len(marks)):
                del marks[:head]
                head = 0
            self._head = head
            self._update()
        return excess

    # Readers.

    def add(self, reader: Reader) -> None:
        """Register a reader; it is paused at once when the flow is."""
        self._readers[reader] = None
        if self.paused:
            reader.flow_pause()

    def discard(self, reader: Reader) -> None:
        self._readers.pop(reader, None)

    def wait(self) -> asyncio.Future[None]:
        """A future done when the flow resumes (already done when it is not paused)."""
        future = self._resumed
        if future is None:
            future = asyncio.get_running_loop().create_future()
            if self.paused:
                self._resumed = future
            else:
                future.set_result(None)
        return future

    # Internals.

    def _bytes_before_newest(self) -> int:
        """``sent_bytes`` before the newest outstanding message (what the byte window counts)."""
        marks = self._marks
        return marks[-2] if len(marks) - self._head >= 2 else self.acked_bytes

    def _update(self) -> None:
        self._limit = self.acked + self.window
        self._limit_bytes = self.acked_bytes + self.window_bytes
        counted_bytes = self._bytes_before_newest()
        if not self.paused:
            if self.sent > self._limit or counted_bytes > self._limit_bytes:
                self._pause()
        elif (
            2 * (self.sent - self.acked) < self.window
            and 2 * (counted_bytes - self.acked_bytes) < self.window_bytes
        ):
            self._resume()

    def _pause(self) -> None:
        if self.paused:
            return
        self.paused = True
        logger.debug(
            "flow paused: %d messages, %d bytes outstanding", self.outstanding,
            self.outstanding_bytes,
        )  # fmt: skip
        for reader in list(self._readers):
            reader.flow_pause()

    def _resume(self) -> None:
        self.paused = False
        logger.debug("flow resumed")
        future, self._resumed = self._resumed, None
        if future is not None and not future.done():
            future.set_result(None)
        readers = list(self._readers)
        count = len(readers)
        start = self._turn % count if count else 0
        for offset in range(count):
            if self.paused:  # what a reader held on to crossed a window again
                self._turn = (start + offset) % count
                return
            readers[(start + offset) % count].flow_resume()
