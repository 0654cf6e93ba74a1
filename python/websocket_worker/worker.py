"""The dispatcher: turns command frames into calls on endpoints and clients (docs/protocol.md).

It owns the worker's one :class:`~websocket_worker.flow.FlowControl`, shared by every listener
session and client connection, and feeds it ``configure`` and ``ack``.

Every command is checked before it is acted on; a bad one is reported as a ``log`` event and
dropped, it never stops the worker. Log texts name the command and the problem, never a payload
or a header value.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
from collections.abc import Callable
from typing import Any

import msgpack
from websockets.version import version as websockets_version

from .clients import Clients
from .endpoints import Endpoints
from .flow import FlowControl
from .ipc import PROTOCOL_VERSION, FrameError
from .shell import WriteBatch

__all__ = ["CommandError", "Worker", "versions"]

Emit = Callable[[list[Any]], None]

logger = logging.getLogger("websocket_worker")


class CommandError(ValueError):
    """A command frame with missing or mistyped fields."""


def versions() -> dict[str, Any]:
    """What the ``hello`` event and ``--version`` report."""
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    return {
        "protocol": PROTOCOL_VERSION,
        "pid": os.getpid(),
        "python": platform.python_version(),
        "websockets": websockets_version,
        "msgpack": ".".join(str(part) for part in msgpack.version),
        "loop": loop,
    }


def _owner(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError("owner must be an integer")
    return value


def _sid(value: Any) -> str:
    if not isinstance(value, str):
        raise CommandError("sid must be a string")
    return value


def _bytes(value: Any, name: str) -> bytes:
    if not isinstance(value, bytes):
        raise CommandError(f"{name} must be bin")
    return value


def _peer(value: Any) -> tuple[str, int] | None:
    """``[address, port]`` of a relayed client, or nil."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], str)
        or isinstance(value[1], bool)
        or not isinstance(value[1], int)
    ):
        raise CommandError("peer must be [address, port] or nil")
    return value[0], value[1]


def _short(kind: str) -> str:
    return kind if len(kind) <= 40 else kind[:40] + "..."


class Worker:
    """Holds the endpoints and clients and dispatches commands to them."""

    def __init__(self, send: Emit | None = None) -> None:
        self._send = send
        self._backlog: list[list[Any]] = []
        self.flow = FlowControl()
        #: One batch for every connection's writes while a channel read is dispatched.
        self.batch = WriteBatch()
        self.endpoints = Endpoints(self.emit, self.log, self.flow, self.batch)
        self.clients = Clients(self.emit, self.flow, self.log, self.batch)
        self._commands: dict[str, tuple[int, Callable[..., None]]] = {
            "send": (3, self._cmd_send),
            "publish": (2, self._cmd_publish),
            "ack": (1, self._cmd_ack),
            "stream_data": (2, self._cmd_stream_data),
            "configure": (1, self._cmd_configure),
            "listen": (2, self._cmd_listen),
            "unlisten": (1, self._cmd_unlisten),
            "close_session": (4, self._cmd_close_session),
            "connect": (2, self._cmd_connect),
            "disconnect": (1, self._cmd_disconnect),
            "client_action": (3, self._cmd_client_action),
            "stream_open": (5, self._cmd_stream_open),
            "stream_end": (1, self._cmd_stream_end),
        }

    # Events.

    def attach(self, send: Emit) -> None:
        """Start emitting on ``send``: ``hello`` first, then anything emitted before."""
        self._send = send
        send(["hello", versions()])
        backlog, self._backlog = self._backlog, []
        for frame in backlog:
            send(frame)

    def emit(self, frame: list[Any]) -> None:
        if self._send is not None:
            self._send(frame)
        else:
            self._backlog.append(frame)

    def log(self, level: str, text: str) -> None:
        self.emit(["log", level, text])

    def bad_frame(self, exc: FrameError) -> None:
        """The channel could not decode a frame (it was dropped)."""
        self.log("error", f"bad frame dropped: {exc}")

    # Commands.

    def dispatch_many(self, frames: list[list[Any]]) -> None:
        """Run the commands of one channel read; each session's writes go out together."""
        with self.batch:
            for frame in frames:
                self.dispatch(frame)

    def dispatch(self, frame: list[Any]) -> None:
        """Run one command frame; never raises."""
        kind = frame[0]
        command = self._commands.get(kind)
        if command is None:
            self.log("warn", f"unknown command {_short(kind)!r} ignored")
            return
        arity, handler = command
        if len(frame) != arity + 1:
            self.log("error", f"bad {kind} command: expected {arity} fields, got {len(frame) - 1}")
            return
        try:
            handler(*frame[1:])
        except (CommandError, ValueError) as exc:
            self.log("error", f"bad {kind} command: {exc}")
        except Exception as exc:
            logger.exception("%s command failed", kind)
            self.log("error", f"{kind} command failed: {type(exc).__name__}")

    def _cmd_send(self, owner: Any, sid: Any, data: Any) -> None:
        if type(owner) is not int:
            raise CommandError("owner must be an integer")
        if not isinstance(data, (str, bytes)):
            raise CommandError("data must be str or bin")
        endpoint = self.endpoints.get(owner)
        if endpoint is not None:
            if sid is not None and not isinstance(sid, str):
                raise CommandError("sid must be a string or nil")
            endpoint.send(sid, data)
        else:
            self.clients.send(owner, data)

    def _cmd_publish(self, owner: Any, data: Any) -> None:
        if not isinstance(data, (str, bytes)):
            raise CommandError("data must be str or bin")
        self.endpoints.publish(_owner(owner), data)

    def _cmd_ack(self, count: Any) -> None:
        if type(count) is not int or count < 0:
            raise CommandError("count must be an integer >= 0")
        excess = self.flow.ack(count)
        if excess:
            self.log("warn", f"ack for {excess} more messages than were outstanding ignored")

    def _cmd_configure(self, options: Any) -> None:
        self.flow.configure(options)
        if not isinstance(options, dict):
            return
        instance, node = options.get("instance"), options.get("node")
        if instance is not None or node is not None:
            if not isinstance(instance, str) or not isinstance(node, str):
                raise CommandError("instance and node must be strings")
            if not node.startswith(instance + ".") or "." in instance:
                raise CommandError("node must be <instance>.<slot>")
            self.endpoints.backplanes.configure(instance, node)

    def _cmd_listen(self, owner: Any, options: Any) -> None:
        owner = _owner(owner)
        if owner in self.clients:
            raise CommandError(f"owner {owner} is a client connection")
        self.endpoints.listen(owner, options)  # answers listening

    def _cmd_unlisten(self, owner: Any) -> None:
        self.endpoints.unlisten(_owner(owner))

    def _cmd_close_session(self, owner: Any, sid: Any, code: Any, reason: Any) -> None:
        if isinstance(code, bool) or not isinstance(code, int):
            raise CommandError("code must be an integer")
        if not isinstance(reason, str):
            raise CommandError("reason must be a string")
        if not (code == 1000 or 3000 <= code <= 4999):
            raise CommandError(f"close code {code} is not 1000 or 3000-4999")
        if len(reason.encode()) > 123:
            raise CommandError("close reason over 123 bytes")
        target = None if sid is None else _sid(sid)  # nil: every session
        self.endpoints.close_session(_owner(owner), target, code, reason)

    def _cmd_connect(self, owner: Any, options: Any) -> None:
        owner = _owner(owner)
        if owner in self.endpoints:
            raise CommandError(f"owner {owner} is an endpoint")
        self.clients.connect(owner, options)

    def _cmd_disconnect(self, owner: Any) -> None:
        self.clients.disconnect(_owner(owner))

    def _cmd_client_action(self, owner: Any, action: Any, options: Any) -> None:
        if not isinstance(action, str):
            raise CommandError("action must be a string")
        self.clients.action(_owner(owner), action, options)

    def _cmd_stream_open(self, owner: Any, sid: Any, request: Any, head: Any, peer: Any) -> None:
        self.endpoints.stream_open(
            _owner(owner), _sid(sid), _bytes(request, "request"), _bytes(head, "head"), _peer(peer)
        )

    def _cmd_stream_data(self, sid: Any, data: Any) -> None:
        self.endpoints.stream_data(_sid(sid), _bytes(data, "data"))

    def _cmd_stream_end(self, sid: Any) -> None:
        self.endpoints.stream_end(_sid(sid))

    # Lifetime.

    async def aclose(self) -> None:
        """Close every session and client connection (shutdown), bounded."""
        await asyncio.gather(self.endpoints.aclose(), self.clients.aclose())
