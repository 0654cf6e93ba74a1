"""Command line entry point: ``python -m websocket_worker --events-fd 4 --handoff-fd 3``.

Runs the worker on uvloop when it is installed (plain asyncio otherwise) until the event channel
reaches EOF or SIGTERM/SIGINT arrives, closes what is open (bounded) and exits 0.
``--version`` prints the protocol and library versions and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from .channel import open_channel
from .handoff import HandoffReader
from .worker import Worker, versions


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m websocket_worker",
        description="WebSocket worker of node-red-contrib-python-websocket.",
    )
    parser.add_argument("--events-fd", type=int, help="fd of the event channel (socketpair)")
    parser.add_argument("--handoff-fd", type=int, help="fd of Node's IPC channel (socket handoff)")
    parser.add_argument("--version", action="store_true", help="print versions and exit")
    return parser


def _new_event_loop() -> asyncio.AbstractEventLoop:
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.version:
        info = versions()
        print(
            f"websocket_worker protocol {info['protocol']}; python {info['python']}; "
            f"websockets {info['websockets']}; msgpack {info['msgpack']}; loop {info['loop']}"
        )
        return 0
    if args.events_fd is None:
        _parser().error("--events-fd is required")
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    loop = _new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(run(args.events_fd, args.handoff_fd))
    except KeyboardInterrupt:
        return 0
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
