"""The worker process's life: the event channel and the handoff channel on one event loop (uvloop
when installed, plain asyncio otherwise), until the channel reaches EOF or SIGTERM/SIGINT
arrives; then what is open is closed (bounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from .channel import open_channel
from .handoff import HandoffReader
from .worker import Worker

__all__ = ["new_event_loop", "run"]


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


async def run(events_fd: int, handoff_fd: int | None = None) -> int:
    """Serve the event channel on ``events_fd`` until it closes or a signal arrives."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGTERM, signal.SIGINT):
        # Not on Windows, nor outside the main thread.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, request_stop)

    worker = Worker()
    channel = await open_channel(events_fd, worker.dispatch_many, worker.bad_frame)
    worker.attach(channel.send)
    handoff: HandoffReader | None = None
    if handoff_fd is not None:
        try:
            handoff = HandoffReader.from_fd(handoff_fd, worker.endpoints.adopt, worker.log)
        except OSError as exc:
            worker.log("error", f"socket handoff unavailable (fd {handoff_fd}): {exc}")
    try:
        await asyncio.wait({channel.closed, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if handoff is not None:
            handoff.close()
        if channel.closed.done():
            worker.endpoints.drop_streams()  # their bytes travelled on the channel
        await worker.aclose()
        channel.close()
    return 0
