"""The backplane's names and envelopes: what travels through Redis, as bytes, nothing else.

Channels of a namespace (docs/protocol.md, *Backplane*): ``<namespace>:b:<path>`` a path's
broadcasts, ``<namespace>:s:<node>`` replies and closes for one worker of one instance,
``<namespace>:c:<path>`` a path's session counts (census.py). An envelope is a MessagePack array
``[version, kind, ...]``; :func:`unpack` returns one of the dataclasses below or raises
:class:`EnvelopeError` (the envelope is then dropped): nothing from Redis is evaluated, and every
field is checked for type and range before anything uses it. Pure: no asyncio, no Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import msgpack

__all__ = [
    "ENVELOPE_VERSION",
    "MAX_COUNT",
    "CloseEnvelope",
    "CountEnvelope",
    "Envelope",
    "EnvelopeError",
    "LeftEnvelope",
    "ReplyEnvelope",
    "SendEnvelope",
    "broadcast_channel",
    "count_channel",
    "node_of",
    "pack_close",
    "pack_count",
    "pack_left",
    "pack_reply",
    "pack_send",
    "session_channel",
    "unpack",
]

#: Version of the envelopes in Redis; an envelope of another version is dropped.
ENVELOPE_VERSION = 1
#: Largest count an announcement may carry.
MAX_COUNT = 2**31 - 1


# Names.


def broadcast_channel(namespace: str, path: str) -> str:
    """The channel of a path's broadcasts."""
    return f"{namespace}:b:{path}"


def session_channel(namespace: str, node: str) -> str:
    """The channel of replies (and closes) for the sessions of one worker of one instance."""
    return f"{namespace}:s:{node}"


def count_channel(namespace: str, path: str) -> str:
    """The channel of a path's session counts (census.py)."""
    return f"{namespace}:c:{path}"


def node_of(sid: str) -> str:
    """The node (``<instance>.<slot>``) a session id of an endpoint with a backplane names."""
    return sid.rpartition(".")[0]


# Envelopes: MessagePack arrays, [version, kind, ...].


@dataclass(frozen=True)
class SendEnvelope:
    """A broadcast to every session of the path, from ``origin`` (an instance id)."""

    origin: str
    data: str | bytes


@dataclass(frozen=True)
class ReplyEnvelope:
    """A reply to one session of the receiving node."""

    path: str
    sid: str
    data: str | bytes


@dataclass(frozen=True)
class CloseEnvelope:
    """A close of one session of the receiving node."""

    path: str
    sid: str
    code: int
    reason: str


@dataclass(frozen=True)
class CountEnvelope:
    """Worker ``node`` has ``count`` open sessions of the path; ``link`` names the link that
    says so (random per link: a ``left`` of an earlier link of the node, after a redeploy, does
    not forget a later one). ``ask``: the publisher's view is new, answer with yours."""

    node: str
    link: str
    count: int
    ask: bool


@dataclass(frozen=True)
class LeftEnvelope:
    """Worker ``node`` (its link ``link``) no longer serves the path."""

    node: str
    link: str


Envelope = Union[SendEnvelope, ReplyEnvelope, CloseEnvelope, CountEnvelope, LeftEnvelope]


class EnvelopeError(ValueError):
    """Bytes from Redis that are not an envelope of this version."""


def _pack(fields: list[Any]) -> bytes:
    packed: bytes = msgpack.packb(fields, use_bin_type=True)
    return packed


def pack_send(origin: str, data: str | bytes) -> bytes:
    return _pack([ENVELOPE_VERSION, "send", origin, data])


def pack_reply(path: str, sid: str, data: str | bytes) -> bytes:
    return _pack([ENVELOPE_VERSION, "reply", path, sid, data])


def pack_close(path: str, sid: str, code: int, reason: str) -> bytes:
    return _pack([ENVELOPE_VERSION, "close", path, sid, code, reason])


def pack_count(node: str, link: str, count: int, ask: bool) -> bytes:
    return _pack([ENVELOPE_VERSION, "count", node, link, count, ask])


def pack_left(node: str, link: str) -> bytes:
    return _pack([ENVELOPE_VERSION, "left", node, link])


def _is_data(value: Any) -> bool:
    return isinstance(value, (str, bytes))


def _is_node(value: Any) -> bool:
    """``<instance>.<slot>``, as ``configure`` names a worker."""
    if not isinstance(value, str) or len(value) > 64:
        return False
    instance, _, slot = value.rpartition(".")
    return bool(instance) and slot.isdigit() and slot.isascii()


def _is_link(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 32


def unpack(payload: bytes) -> Envelope:
    """The envelope in ``payload``; EnvelopeError when it is not one (it is then dropped)."""
    try:
        fields = msgpack.unpackb(payload, raw=False, use_list=True, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise EnvelopeError(f"not MessagePack: {type(exc).__name__}") from None
    if not isinstance(fields, list) or len(fields) < 2:
        raise EnvelopeError("not an envelope")
    version, kind, rest = fields[0], fields[1], fields[2:]
    if version != ENVELOPE_VERSION:
        raise EnvelopeError(f"envelope version {version!r}, not {ENVELOPE_VERSION}")
    if kind == "send" and len(rest) == 2 and isinstance(rest[0], str) and _is_data(rest[1]):
        return SendEnvelope(rest[0], rest[1])
    if kind == "reply" and len(rest) == 3 and isinstance(rest[0], str) and isinstance(
        rest[1], str
    ) and _is_data(rest[2]):
        return ReplyEnvelope(rest[0], rest[1], rest[2])
    if (
        kind == "close"
        and len(rest) == 4
        and isinstance(rest[0], str)
        and isinstance(rest[1], str)
        and type(rest[2]) is int
        and (rest[2] == 1000 or 3000 <= rest[2] <= 4999)
        and isinstance(rest[3], str)
        and len(rest[3].encode()) <= 123
    ):
        return CloseEnvelope(rest[0], rest[1], rest[2], rest[3])
    if (
        kind == "count"
        and len(rest) == 4
        and _is_node(rest[0])
        and _is_link(rest[1])
        and type(rest[2]) is int
        and 0 <= rest[2] <= MAX_COUNT
        and type(rest[3]) is bool
    ):
        return CountEnvelope(rest[0], rest[1], rest[2], rest[3])
    if kind == "left" and len(rest) == 2 and _is_node(rest[0]) and _is_link(rest[1]):
        return LeftEnvelope(rest[0], rest[1])
    raise EnvelopeError(f"bad {str(kind)[:20]!r} envelope")
