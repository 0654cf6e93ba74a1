"""Event channel frame codec."""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import pytest

from websocket_worker.ipc import (
    LARGE_PAYLOAD,
    MAX_FRAME_SIZE,
    FrameDecoder,
    FrameError,
    encode_frame,
    encode_pieces,
)


def test_round_trip() -> None:
    """A frame decodes to what was encoded, ints, maps, nil and nesting included."""
    frame = ["listen", 7, {"path": "/ws", "max_size": 2**40, "subprotocols": None}]
    assert FrameDecoder().feed(encode_frame(frame)) == [frame]


def test_length_prefix_is_big_endian_body_size() -> None:
    """A frame is a 4-byte big-endian length followed by that many MessagePack bytes."""
    data = encode_frame(["stream_end", "0123456789abcdef"])
    (size,) = struct.unpack(">I", data[:4])
    assert size == len(data) - 4
    assert msgpack.unpackb(data[4:]) == ["stream_end", "0123456789abcdef"]


def test_str_and_bytes_stay_apart() -> None:
    """Text stays str and binary stays bytes, both ways."""
    frame = ["message", 1, "abcd", "text é", b"\x00\xffbinary"]
    body = encode_frame(frame)[4:]
    assert body[body.index(b"text") - 1] == 0xA0 | len("text é".encode())  # fixstr
    (decoded,) = FrameDecoder().feed(encode_frame(frame))
    assert decoded == frame
    assert type(decoded[3]) is str
    assert type(decoded[4]) is bytes


def test_partial_frames_byte_by_byte() -> None:
    """Frames fed one byte at a time come out whole, once, in order."""
    frames = [["send", 1, None, "x" * 300], ["send", 2, "sid", b"y" * 70000]]
    data = b"".join(encode_frame(frame) for frame in frames)
    decoder = FrameDecoder()
    out = []
    for index in range(len(data)):
        out.extend(decoder.feed(data[index : index + 1]))
    assert out == frames
    assert decoder.buffered == 0


def test_several_frames_in_one_chunk() -> None:
    """One read holding several frames and the start of another yields the whole ones."""
    data = b"".join(encode_frame(["stream_end", str(n)]) for n in range(5))
    tail = encode_frame(["stream_end", "last"])
    decoder = FrameDecoder()
    assert [f[1] for f in decoder.feed(data + tail[:3])] == ["0", "1", "2", "3", "4"]
    assert decoder.feed(tail[3:]) == [["stream_end", "last"]]


@pytest.mark.parametrize(
    "body",
    [
        msgpack.packb({"kind": "send"}),  # not an array
        msgpack.packb([]),  # empty
        msgpack.packb([1, 2]),  # kind not a string
        b"\xc1",  # never used byte
        msgpack.packb(["send", 1]) + b"\x00",  # trailing data
        msgpack.packb(msgpack.ExtType(1, b"x")),  # extension type
        b"",  # empty body
    ],
)
def test_bad_frame_raises_and_is_dropped(body: bytes) -> None:
    """A frame that is not a non-empty array with a str kind raises; the frames around survive."""
    good = encode_frame(["stream_end", "a"])
    data = good + struct.pack(">I", len(body)) + body + good
    decoder = FrameDecoder()
    with pytest.raises(FrameError) as info:
        decoder.feed(data)
    assert not info.value.fatal
    assert info.value.frames == [["stream_end", "a"]]
    assert decoder.feed(b"") == [["stream_end", "a"]]


def test_oversize_length_breaks_the_stream() -> None:
    """A length over 1 GiB raises a fatal error: the stream cannot be resynchronised."""
    decoder = FrameDecoder()
    with pytest.raises(FrameError) as info:
        decoder.feed(struct.pack(">I", MAX_FRAME_SIZE + 1) + b"\x90")
    assert info.value.fatal
    assert "exceeds" in str(info.value)
    with pytest.raises(FrameError):
        decoder.feed(encode_frame(["stream_end", "a"]))


def test_invalid_utf8_in_str_is_a_bad_frame() -> None:
    """A MessagePack str holding invalid UTF-8 is a bad frame, not a crash."""
    body = b"\x92\xa4send\xa2\xff\xfe"
    with pytest.raises(FrameError):
        FrameDecoder().feed(struct.pack(">I", len(body)) + body)


@pytest.mark.parametrize(
    "payload",
    ["a" * LARGE_PAYLOAD, "é" * LARGE_PAYLOAD, b"\x00" * LARGE_PAYLOAD, b"z" * (1 << 20), "x" * 10],
    ids=["ascii", "utf8", "bin", "bin-1MiB", "small"],
)
def test_large_payloads_in_pieces_are_the_same_bytes(payload: str | bytes) -> None:
    """A large message's frame written in pieces is byte for byte what MessagePack writes."""
    for frame in (["message", 7, "0123456789abcdef", payload], ["message", 70000, None, payload]):
        pieces = encode_pieces(frame)
        assert b"".join(pieces) == encode_frame(frame)
        assert len(pieces) == (1 if len(payload) < LARGE_PAYLOAD else 2)
        assert FrameDecoder().feed(b"".join(pieces)) == [frame]


def test_a_large_frame_in_small_reads_decodes_whole() -> None:
    """A 4 MiB frame fed in 1 KiB reads decodes whole; nothing is held after it."""
    frame = ["send", 1, None, b"\x01" * (4 << 20)]
    wire = encode_frame(frame)
    decoder = FrameDecoder()
    got: list[list[Any]] = []
    for at in range(0, len(wire), 1024):
        got += decoder.feed(wire[at : at + 1024])
        if at + 1024 < len(wire):
            assert decoder.buffered == at + 1024
    assert got == [frame] and decoder.buffered == 0
