"""Command line entry point: ``python -m websocket_worker --events-fd 4 --handoff-fd 3``.

Checks the installed packages first (:mod:`.compat`; nothing else of the worker is imported
before): when they do not fit it says so on stderr and exits 3. Then runs the worker
(:mod:`.runner`) until its channel ends or SIGTERM/SIGINT arrives, and exits 0.
``--version`` prints the protocol and library versions; ``--check`` prints the package check as
JSON (exit 0 when it fits, 3 when not).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from . import compat


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m websocket_worker",
        description="WebSocket worker of node-red-contrib-python-websocket.",
    )
    parser.add_argument("--events-fd", type=int, help="fd of the event channel (socketpair)")
    parser.add_argument("--handoff-fd", type=int, help="fd of Node's IPC channel (socket handoff)")
    parser.add_argument("--version", action="store_true", help="print versions and exit")
    parser.add_argument("--check", action="store_true", help="check the installed packages")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.check:
        return compat.main()
    problems = compat.problems(compat.installed())
    if problems:
        print(f"websocket_worker cannot run: {'; '.join(problems)}", file=sys.stderr)
        return compat.EXIT_INCOMPATIBLE
    from .runner import new_event_loop, run  # imports websockets and msgpack
    from .worker import versions

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
    loop = new_event_loop()
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
