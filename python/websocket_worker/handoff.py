"""Socket handoff reader on Node's IPC channel (fd 3): receives upgraded listener sockets.

Node's ``child.send(meta, socket)`` writes a JSON line ``{"cmd":"NODE_HANDLE",...}`` with the
socket's fd as SCM_RIGHTS data (docs/protocol.md, "Socket handoff"). :class:`HandoffParser` is the
pure part: fed bytes and fds, it returns replies and handles. :class:`HandoffReader` is the thin
asyncio part: non-blocking ``recvmsg``/``send`` on the channel socket.
"""

from __future__ import annotations

import array
import asyncio
import base64
import binascii
import contextlib
import json
import os
import socket
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple, Union

__all__ = [
    "Adopt",
    "HandoffParser",
    "HandoffReader",
    "Note",
    "Reply",
]

#: Largest line kept while waiting for its newline (a NODE_HANDLE line is small).
MAX_LINE = 16 << 20
#: Bytes asked for per ``recvmsg``, and room for this many fds in one ancillary message.
READ_SIZE = 65536
MAX_FDS = 64


class Reply(NamedTuple):
    """Write this JSON message back to Node."""

    message: dict[str, Any]


class Adopt(NamedTuple):
    """A handed-over socket: fd plus the decoded meta of ``child.send(meta, socket)``."""

    fd: int
    owner: int
    sid: str
    request: bytes
    head: bytes


class Note(NamedTuple):
    """Something to log (never holds request bytes)."""

    level: str
    text: str


Action = Union[Reply, Adopt, Note]

ACK: dict[str, Any] = {"cmd": "NODE_HANDLE_ACK"}
NACK: dict[str, Any] = {"cmd": "NODE_HANDLE_NACK"}


def _close_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _decode_meta(meta: Any) -> tuple[int, str, bytes, bytes]:
    if not isinstance(meta, dict):
        raise ValueError("meta is not an object")
    owner, sid, request, head = meta.get("e"), meta.get("s"), meta.get("r"), meta.get("h", "")
    if not isinstance(owner, int) or isinstance(owner, bool):
        raise ValueError("meta.e (owner) is not an integer")
    if not isinstance(sid, str):
        raise ValueError("meta.s (sid) is not a string")
    if not isinstance(request, str):
        raise ValueError("meta.r (request) is not a string")
    if not isinstance(head, str):
        raise ValueError("meta.h (head) is not a string")
    try:
        request_bytes = request.encode("latin-1")
        head_bytes = base64.b64decode(head, validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError(f"bad meta encoding ({type(exc).__name__})") from None
    return owner, sid, request_bytes, head_bytes


class HandoffParser:
    """Pure protocol state of the fd-3 channel: JSON lines in, actions out.

    Received fds wait in a FIFO; each ``NODE_HANDLE`` line takes the oldest one (a read may carry
    earlier lines before the one its fd belongs to).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._fds: deque[int] = deque()

    @property
    def pending_fds(self) -> int:
        return len(self._fds)

    def feed(self, data: bytes, fds: list[int] | tuple[int, ...] = ()) -> list[Action]:
        """Take one read (bytes and the fds that came with them) and return what to do."""
        self._fds.extend(fds)
        self._buffer += data
        actions: list[Action] = []
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if end < 0:
                break
            line = bytes(self._buffer[start:end])
            start = end + 1
            if line.strip():
                actions.extend(self._line(line))
        del self._buffer[:start]
        if len(self._buffer) > MAX_LINE:
            self._buffer.clear()
            actions.append(Note("error", f"handoff: line longer than {MAX_LINE} bytes dropped"))
        return actions

    def close(self) -> None:
        """Close the fds nobody claimed (EOF on the channel)."""
        while self._fds:
            _close_fd(self._fds.popleft())

    def _line(self, line: bytes) -> list[Action]:
        try:
            message = json.loads(line)
        except ValueError:
            return [Note("warn", f"handoff: ignored a line that is not JSON ({len(line)} bytes)")]
        cmd = message.get("cmd") if isinstance(message, dict) else None
        if not isinstance(cmd, str) or not cmd.startswith("NODE_"):
            return [Note("debug", "handoff: ignored a message that is not a NODE_* message")]
        if cmd == "NODE_HANDLE":
            return self._handle(message)
        if cmd == "NODE_SOCKET_NOTIFY_CLOSE":
            return [Reply({"cmd": "NODE_SOCKET_ALL_CLOSED", "key": message.get("key")})]
        if cmd == "NODE_SOCKET_GET_COUNT":
            return [Reply({"cmd": "NODE_SOCKET_COUNT", "key": message.get("key"), "count": 0})]
        return [Note("debug", f"handoff: ignored {cmd}")]

    def _handle(self, message: dict[str, Any]) -> list[Action]:
        if not self._fds:
            return [Reply(NACK), Note("warn", "handoff: NODE_HANDLE without a file descriptor")]
        fd = self._fds.popleft()
        if message.get("type") != "net.Socket":
            _close_fd(fd)
            return [Reply(ACK), Note("warn", "handoff: ignored a handle that is not a net.Socket")]
        try:
            owner, sid, request, head = _decode_meta(message.get("msg"))
        except ValueError as exc:
            _close_fd(fd)
            return [Reply(ACK), Note("error", f"handoff: bad socket meta: {exc}")]
        return [Reply(ACK), Adopt(fd, owner, sid, request, head)]


AdoptCallback = Callable[[int, str, socket.socket, bytes, bytes], None]
LogCallback = Callable[[str, str], None]


class HandoffReader:
    """Reads fd 3 without ever blocking and answers Node at once."""

    def __init__(self, sock: socket.socket, adopt: AdoptCallback, log: LogCallback) -> None:
        self._sock = sock
        self._adopt = adopt
        self._log = log
        self._parser = HandoffParser()
        self._out = bytearray()
        self._writing = False
        self._closed = False
        self._loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self._fd = sock.fileno()
        self._loop.add_reader(self._fd, self._on_readable)

    @classmethod
    def from_fd(cls, fd: int, adopt: AdoptCallback, log: LogCallback) -> HandoffReader:
        return cls(socket.socket(fileno=fd), adopt, log)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        if self._writing:
            self._loop.remove_writer(self._fd)
        self._parser.close()
        self._sock.close()

    def _on_readable(self) -> None:
        flags = getattr(socket, "MSG_CMSG_CLOEXEC", 0)
        try:
            data, ancdata, msg_flags, _ = self._sock.recvmsg(
                READ_SIZE, socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize), flags
            )
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._log("warn", f"handoff channel read failed: {exc}")
            self.close()
            return
        fds = _fds_from(ancdata)
        if msg_flags & socket.MSG_CTRUNC:
            self._log("error", "handoff: file descriptors were truncated (MSG_CTRUNC)")
        actions = self._parser.feed(data, fds)
        if not data:
            self._log("debug", "handoff channel closed")
            self.close()  # also closes fds nobody claimed
            return
        for action in actions:
            if isinstance(action, Reply):
                self._write(action.message)
            elif isinstance(action, Adopt):
                self._adopt_fd(action)
            else:
                self._log(action.level, action.text)

    def _adopt_fd(self, action: Adopt) -> None:
        try:
            sock = socket.socket(fileno=action.fd)
        except OSError as exc:
            _close_fd(action.fd)
            self._log("error", f"handoff: cannot use the handed-over socket: {exc}")
            return
        sock.setblocking(False)
        try:
            self._adopt(action.owner, action.sid, sock, action.request, action.head)
        except Exception as exc:  # never let one socket stop the reader
            sock.close()
            self._log("error", f"handoff: adopting a socket failed: {type(exc).__name__}")

    def _write(self, message: dict[str, Any]) -> None:
        if self._closed:
            return
        self._out += json.dumps(message, separators=(",", ":")).encode() + b"\n"
        if not self._writing:
            self._on_writable()

    def _on_writable(self) -> None:
        try:
            while self._out:
                sent = self._sock.send(self._out)
                del self._out[:sent]
        except (BlockingIOError, InterruptedError):
            if not self._writing:
                self._writing = True
                self._loop.add_writer(self._fd, self._on_writable)
            return
        except OSError as exc:
            self._log("warn", f"handoff channel write failed: {exc}")
            self._out.clear()
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)


def _fds_from(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            ints = array.array("i")
            ints.frombytes(data[: len(data) - (len(data) % ints.itemsize)])
            fds.extend(ints)
    return fds
