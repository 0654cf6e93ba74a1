"""Tasks a registry starts and does not await at once (an ``unlisten``, a ``disconnect``, the
adoption of a socket), kept so that none is lost and shutdown can wait for them."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["Background"]


class Background:
    """A set of running tasks: each is kept until it is done."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def finish(self, timeout: float) -> None:
        """Let the tasks end (they are bounded themselves), cancelling what is left after
        ``timeout`` seconds: the worker is stopping and its loop closes next."""
        tasks = set(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
