"""The Sans-I/O WebSocket core, fed bytes: every rule of RFC 6455 for both sides, each applied at
the first byte that decides it, and the events and bytes that come out."""

from __future__ import annotations

import random
import struct
import tracemalloc
import zlib
from typing import Any

import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol

from websocket_worker.core import (
    CLOSED,
    CLOSING,
    Closed,
    Failed,
    Ping,
    Pong,
    WebSocketCore,
)
from websocket_worker.frames import close_frame, frame_header, message_frame, valid_close_code

from .conftest import SansIOClient


def masked(opcode: int, data: bytes = b"", fin: bool = True, rsv: int = 0) -> bytes:
    """A client's frame: masked, with the given flags."""
    first = (0x80 if fin else 0) | rsv | opcode
    key = b"\x01\x02\x03\x04"
    body = bytes(byte ^ key[i % 4] for i, byte in enumerate(data))
    return frame_header(first, len(data), 0x80) + key + body


def unmasked(opcode: int, data: bytes = b"", fin: bool = True) -> bytes:
    return frame_header((0x80 if fin else 0) | opcode, len(data)) + data


def events(core: WebSocketCore, data: bytes = b"") -> list[Any]:
    if data:
        core.receive_data(data)
    out = []
    while (event := core.next_event()) is not None:
        out.append(event)
    return out


def parse_out(wire: list[bytes], mask: bool = False) -> list[Frame | str]:
    """The frames the core wrote (b"" is EOF, shown as "EOF")."""
    out: list[Frame | str] = []
    for chunk in wire:
        if not chunk:
            out.append("EOF")
            continue
        out.extend(_frames(chunk, mask))
    return out


def _frames(data: bytes, mask: bool) -> list[Frame]:
    frames = []
    at = 0
    while at < len(data):
        first, second = data[at], data[at + 1]
        length, at = second & 0x7F, at + 2
        if length == 126:
            length, at = struct.unpack("!H", data[at : at + 2])[0], at + 2
        elif length == 127:
            length, at = struct.unpack("!Q", data[at : at + 8])[0], at + 8
        key = b""
        if second & 0x80:
            key, at = data[at : at + 4], at + 4
        assert bool(key) is mask, "server frames are unmasked, client frames masked"
        payload = data[at : at + length]
        if key:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        frames.append(Frame(Opcode(first & 0x0F), payload, bool(first & 0x80), bool(first & 0x40)))
        at += length
    return frames


def close_sent(core: WebSocketCore) -> int | None:
    """The code of the close frame the core wrote, if any."""
    for frame in parse_out(core.data_to_send(), mask=core.client):
        if isinstance(frame, Frame) and frame.opcode is Opcode.CLOSE:
            code: int = struct.unpack("!H", frame.data[:2])[0] if frame.data else 1005
            return code
    return None


# Messages.


def test_text_and_binary_messages_come_out_as_str_and_bytes() -> None:
    core = WebSocketCore()
    wire = masked(0x1, "héllo".encode()) + masked(0x2, b"\x00\xff") + masked(0x1) + masked(0x2)
    assert events(core, wire) == ["héllo", b"\x00\xff", "", b""]
    assert core.data_to_send() == []


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536, 200_000])
def test_every_length_encoding(length: int) -> None:
    """7-bit, 16-bit and 64-bit lengths, at their edges."""
    core = WebSocketCore()
    payload = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    assert events(core, masked(0x2, payload)) == [payload]


def test_same_events_whatever_the_cuts() -> None:
    """Any split of the input, down to single bytes, gives the same events and bytes out."""
    wire = (
        masked(0x1, b"one")
        + masked(0x9, b"ping")
        + masked(0x2, b"x" * 300)
        + masked(0x1, b"frag", fin=False)
        + masked(0xA, b"pong in the middle")
        + masked(0x0, "ménted".encode())
        + masked(0x8, struct.pack("!H", 1000) + b"bye")
    )
    whole = WebSocketCore()
    expected = events(whole, wire)
    expected_out = whole.data_to_send()
    assert expected == ["one", Ping(b"ping"), b"x" * 300, Pong(b"pong in the middle"),
                        "fragménted", Closed(1000, "bye", True)]  # fmt: skip
    rng = random.Random(7)
    for _ in range(50):
        core = WebSocketCore()
        got: list[Any] = []
        at = 0
        while at < len(wire):
            step = rng.choice([1, 1, 2, 3, 5, 64, 1000])
            got += events(core, wire[at : at + step])
            at += step
        assert got == expected
        assert b"".join(core.data_to_send()) == b"".join(expected_out)


def test_a_message_in_64_byte_fragments_is_one_message() -> None:
    """Autobahn 9.3.1: 4 MiB in 64-byte fragments stays under the default 100 MiB budget."""
    core = WebSocketCore(max_size=100 * 1024 * 1024)
    chunk = b"a" * 64
    count = 4 * 1024 * 1024 // 64
    wire = masked(0x1, chunk, fin=False) + masked(0x0, chunk, fin=False) * (count - 2)
    wire += masked(0x0, chunk)
    got = events(core, wire)
    assert len(got) == 1 and got[0] == "a" * (4 * 1024 * 1024)


# Control frames.


def test_ping_is_answered_with_its_payload_and_pong_is_reported() -> None:
    core = WebSocketCore()
    assert events(core, masked(0x9, b"are you there") + masked(0xA, b"yes")) == [
        Ping(b"are you there"),
        Pong(b"yes"),
    ]
    [pong] = parse_out(core.data_to_send())
    assert isinstance(pong, Frame)
    assert (pong.opcode, pong.data) == (Opcode.PONG, b"are you there")


def test_control_frames_between_fragments_do_not_break_the_message() -> None:
    """Autobahn 5.6-5.9: a ping inside a fragmented message is answered, the message completes."""
    core = WebSocketCore()
    wire = masked(0x1, b"a", fin=False) + masked(0x9, b"p") + masked(0x0, b"b")
    assert events(core, wire) == [Ping(b"p"), "ab"]


def test_close_in_the_middle_of_a_fragmented_message_is_a_normal_close() -> None:
    """Autobahn 7.1.5: fragment, close 1000, last fragment: the close is honoured with 1000 and
    the unfinished message is dropped."""
    core = WebSocketCore()
    wire = (
        masked(0x1, b"frag", fin=False)
        + masked(0x8, struct.pack("!H", 1000))
        + masked(0x0, b"ment")
    )
    assert events(core, wire) == [Closed(1000, "", True)]
    assert close_sent(core) == 1000
    assert core.state is CLOSED and core.close_code == 1000


def test_peer_close_is_echoed_then_a_server_sends_eof() -> None:
    core = WebSocketCore()
    assert events(core, masked(0x8, struct.pack("!H", 4000) + b"done")) == [
        Closed(4000, "done", True)
    ]
    out = core.data_to_send()
    assert out[0] == close_frame(4000, "done") and out[1] == b""
    assert events(core, masked(0x1, b"after the close")) == []


def test_empty_close_is_1005_and_echoed_empty() -> None:
    core = WebSocketCore()
    assert events(core, masked(0x8)) == [Closed(1005, "", True)]
    assert core.data_to_send()[0] == unmasked(0x8)


def test_our_close_then_theirs() -> None:
    core = WebSocketCore()
    core.close(1001, "going away")
    assert core.state is CLOSING
    assert core.data_to_send() == [close_frame(1001, "going away")]
    assert events(core, masked(0x1, b"still delivered") + masked(0x8, struct.pack("!H", 1001)))\
        == ["still delivered", Closed(1001, "", True)]  # fmt: skip
    assert core.data_to_send() == [b""]  # no second close frame, then EOF
    assert core.state is CLOSED


def test_eof_without_close_is_1006() -> None:
    core = WebSocketCore()
    core.receive_data(masked(0x1, b"whole") + masked(0x1, b"half")[:5])
    core.receive_eof()
    assert events(core) == ["whole", Closed(1006, "", False)]
    assert core.close_code == 1006


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999])
def test_valid_close_codes_are_accepted(code: int) -> None:
    core = WebSocketCore()
    assert events(core, masked(0x8, struct.pack("!H", code))) == [Closed(code, "", True)]


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000])
def test_invalid_close_codes_fail_with_1002(code: int) -> None:
    """Autobahn 7.9: codes no endpoint may send."""
    assert not valid_close_code(code)
    core = WebSocketCore()
    [failed] = events(core, masked(0x8, struct.pack("!H", code)))
    assert isinstance(failed, Failed) and failed.code == 1002
    assert close_sent(core) == 1002


def test_close_payload_of_one_byte_or_bad_utf8_reason_fails() -> None:
    core = WebSocketCore()
    assert events(core, masked(0x8, b"\x03"))[0].code == 1002
    core = WebSocketCore()
    assert events(core, masked(0x8, struct.pack("!H", 1000) + b"\xff"))[0].code == 1007


# Rules decided by the header: the connection fails on the header alone, the payload need not
# (and here never does) arrive.

HEADER_ONLY = [
    (bytes([0x80 | 0x40 | 0x1, 0x80 | 100]), "reserved bits"),  # RSV1, no extension
    (bytes([0x80 | 0x20 | 0x2, 0x80 | 100]), "reserved bits"),  # RSV2
    (bytes([0x80 | 0x10 | 0x1, 0x80 | 100]), "reserved bits"),  # RSV3
    (bytes([0x80 | 0x3, 0x80 | 100]), "reserved opcode 3"),
    (bytes([0x80 | 0xB, 0x80 | 100]), "reserved opcode 11"),
    (bytes([0x09, 0x80 | 5]), "fragmented control frame"),  # ping without FIN
    (bytes([0x89, 0x80 | 126, 0x00, 0x7E]), "longer than 125"),  # ping of 126 bytes
    (bytes([0x81, 100]), "unmasked frame"),  # a client must mask
    (bytes([0x80, 0x80 | 100]), "continuation frame without a message"),
    (bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]), "2**63"),
]


@pytest.mark.parametrize(("header", "why"), HEADER_ONLY, ids=[why for _, why in HEADER_ONLY])
def test_bad_header_fails_at_once(header: bytes, why: str) -> None:
    core = WebSocketCore(max_size=None)
    [failed] = events(core, header)
    assert isinstance(failed, Failed) and failed.code == 1002 and why in failed.text
    assert close_sent(core) == 1002
    assert core.state is CLOSED


def test_new_message_inside_a_fragmented_one_fails_on_its_header() -> None:
    core = WebSocketCore()
    [failed] = events(core, masked(0x1, b"a", fin=False) + bytes([0x81, 0x80 | 100]))
    assert failed.code == 1002 and "inside a fragmented message" in failed.text


def test_client_side_rejects_masked_frames_and_masks_its_own() -> None:
    core = WebSocketCore(client=True)
    assert events(core, unmasked(0x1, b"from server")) == ["from server"]
    [failed] = events(core, bytes([0x81, 0x80 | 10]))
    assert failed.code == 1002 and "masked frame from the server" in failed.text
    core = WebSocketCore(client=True)
    [frame] = _frames(core.message("hi"), mask=True)
    assert (frame.opcode, frame.data) == (Opcode.TEXT, b"hi")
    events(core, unmasked(0x9, b"p"))
    [pong] = _frames(core.data_to_send()[0], mask=True)
    assert pong.opcode is Opcode.PONG
    core.close(1000)
    assert core.data_to_send() and events(core, unmasked(0x8, struct.pack("!H", 1000)))
    assert core.data_to_send() == []  # a client waits for the server to close TCP: no EOF


# Size and fragment budget.


def test_oversized_frame_fails_on_its_length_before_its_payload() -> None:
    core = WebSocketCore(max_size=1000)
    [failed] = events(core, frame_header(0x82, 1001, 0x80))
    assert failed.code == 1009 and "too big" in failed.text
    assert close_sent(core) == 1009


def test_oversized_message_across_fragments_fails_on_the_fragment_that_crosses() -> None:
    core = WebSocketCore(max_size=1000)
    assert events(core, masked(0x2, b"x" * 600, fin=False)) == []
    [failed] = events(core, frame_header(0x00, 400, 0x80))  # 600 + 400 + the fragment's cost
    assert failed.code == 1009


def test_a_flood_of_empty_fragments_is_bounded_by_the_size_limit() -> None:
    """Three million empty continuation frames would be one message of 183 MiB of bookkeeping:
    the connection fails when the fragments' cost passes the limit, and memory stays flat."""
    limit = 1024 * 1024
    core = WebSocketCore(max_size=limit)
    events(core, masked(0x1, b"", fin=False))
    empty = masked(0x0, b"", fin=False) * 10_000
    tracemalloc.start()
    try:
        failed = None
        for _ in range(300):  # 3,000,000 fragments at most
            got = events(core, empty)
            if got:
                [failed] = got
                break
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(failed, Failed) and failed.code == 1009
    assert peak < 2 * len(empty) + 64 * 1024  # one read in, nothing per fragment
    assert core.state is CLOSED


def test_no_size_limit_means_none() -> None:
    core = WebSocketCore(max_size=None)
    assert events(core, masked(0x2, b"x" * 70_000)) == [b"x" * 70_000]


# UTF-8.


def test_invalid_utf8_in_a_text_message_fails_with_1007() -> None:
    core = WebSocketCore()
    surrogate = "κόσμε".encode() + b"\xed\xa0\x80"  # Autobahn 6.3.1
    [failed] = events(core, masked(0x1, surrogate))
    assert failed.code == 1007 and "UTF-8" in failed.text


def test_invalid_utf8_in_a_fragment_fails_before_the_message_ends() -> None:
    """Autobahn 6.4: fail fast, on the fragment that makes the text invalid."""
    core = WebSocketCore()
    assert events(core, masked(0x1, "κόσμε".encode(), fin=False)) == []
    [failed] = events(core, masked(0x0, b"\xf4\x90\x80\x80", fin=False))
    assert failed.code == 1007


def test_utf8_split_across_fragments_is_fine() -> None:
    """A character cut between fragments (Autobahn 6.2.3/6.2.4) is whole again at the end."""
    core = WebSocketCore()
    text = "ĀĀ𝄞".encode()
    wire = b"".join(masked(0x0 if i else 0x1, text[i : i + 1], fin=i == len(text) - 1)
                    for i in range(len(text)))  # fmt: skip
    assert events(core, wire) == ["ĀĀ𝄞"]


def test_text_ending_in_a_cut_character_fails() -> None:
    core = WebSocketCore()
    wire = masked(0x1, b"ok", fin=False) + masked(0x0, b"\xe2\x82")
    [failed] = events(core, wire)
    assert failed.code == 1007


# Output.


def test_messages_are_framed_as_websockets_frames_them() -> None:
    for payload in ("hi", "é" * 100, b"\x01\x02", b"z" * 70_000):
        kind = Opcode.TEXT if isinstance(payload, str) else Opcode.BINARY
        data = payload.encode() if isinstance(payload, str) else payload
        assert WebSocketCore().message(payload) == Frame(kind, data).serialize(mask=False)
        assert message_frame(payload) == Frame(kind, data).serialize(mask=False)


def test_nothing_is_sent_once_closing() -> None:
    core = WebSocketCore()
    core.close()
    assert core.message("late") == b""
    core.ping(b"late")
    core.close(1000)
    assert core.data_to_send() == [close_frame(1000)]


# permessage-deflate (RFC 7692), through websockets' extension object.


def deflate_pair() -> tuple[PerMessageDeflate, PerMessageDeflate]:
    """The server's extension and a peer's, as negotiated without context takeover limits."""
    return (
        PerMessageDeflate(False, False, 15, 15),
        PerMessageDeflate(False, False, 15, 15),
    )


def test_compressed_messages_round_trip() -> None:
    ours, theirs = deflate_pair()
    core = WebSocketCore(extensions=[ours])
    frame = theirs.encode(Frame(Opcode.TEXT, b"squeeze me " * 100))
    wire = masked(0x1, bytes(frame.data), rsv=0x40)
    assert events(core, wire) == ["squeeze me " * 100]
    reply = core.message("back " * 100)
    assert reply[0] & 0x40  # RSV1: compressed
    [sent] = _frames(reply, mask=False)
    assert theirs.decode(sent).data == b"back " * 100


def test_rsv1_on_a_continuation_or_control_frame_fails_even_with_deflate() -> None:
    ours, theirs = deflate_pair()
    core = WebSocketCore(extensions=[ours])
    [failed] = events(core, masked(0x9, b"p", rsv=0x40))
    assert failed.code == 1002
    core = WebSocketCore(extensions=[deflate_pair()[0]])
    wire = masked(0x1, b"a", fin=False) + masked(0x0, b"b", rsv=0x40)
    assert events(core, wire)[0].code == 1002


def test_a_compression_bomb_fails_with_1009() -> None:
    ours, _ = deflate_pair()
    core = WebSocketCore(max_size=10_000, extensions=[ours])
    compressor = zlib.compressobj(wbits=-15)
    bomb = compressor.compress(b"\x00" * 1_000_000) + compressor.flush(zlib.Z_SYNC_FLUSH)
    [failed] = events(core, masked(0x2, bomb[:-4], rsv=0x40))
    assert failed.code == 1009


# Against websockets' own Sans-I/O server, as a reference: the same random valid conversation
# gives the same messages, the same bytes back and the same close.


def random_conversation(rng: random.Random) -> list[bytes]:
    frames: list[bytes] = []
    for _ in range(rng.randint(5, 40)):
        kind = rng.random()
        edge = rng.random() < 0.2
        size = rng.choice([0, 1, 125, 126, 65535, 65536]) if edge else rng.randint(0, 200)
        if kind < 0.35:
            text = "".join(rng.choice("aé✓😀 ") for _ in range(size // 2))
            frames.append(masked(0x1, text.encode()))
        elif kind < 0.6:
            frames.append(masked(0x2, rng.randbytes(size)))
        elif kind < 0.7:
            frames.append(masked(0x9, rng.randbytes(rng.randint(0, 125))))
        elif kind < 0.75:
            frames.append(masked(0xA, rng.randbytes(rng.randint(0, 125))))
        else:
            opcode = rng.choice([0x1, 0x2])
            parts = rng.randint(2, 4)
            for index in range(parts):
                frames.append(masked(opcode if index == 0 else 0x0, b"p%d" % index,
                                     fin=index == parts - 1))  # fmt: skip
                if index and rng.random() < 0.3:
                    frames.append(masked(0x9, b"mid"))
    frames.append(masked(0x8, struct.pack("!H", 1000)))
    return frames


def reference(wire: bytes) -> tuple[list[Any], bytes]:
    """Messages and bytes out of websockets' ServerProtocol fed the same frames."""
    protocol = ServerProtocol()
    protocol.receive_data(SansIOClient("ws://localhost/").outgoing())
    [request] = protocol.events_received()
    protocol.send_response(protocol.accept(request))
    protocol.data_to_send()
    protocol.receive_data(wire)
    messages: list[Any] = []
    fragments: list[bytes] = []
    text = False
    for frame in protocol.events_received():
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            text = frame.opcode is Opcode.TEXT
        elif frame.opcode is not Opcode.CONT:
            continue
        fragments.append(frame.data)
        if frame.fin:
            data = b"".join(fragments)
            fragments = []
            messages.append(data.decode() if text else data)
    return messages, b"".join(protocol.data_to_send())


@pytest.mark.parametrize("seed", range(12))
def test_random_conversations_match_websockets(seed: int) -> None:
    rng = random.Random(seed)
    wire = b"".join(random_conversation(rng))
    core = WebSocketCore()
    got = [event for event in events(core, wire) if isinstance(event, (str, bytes))]
    out = b"".join(core.data_to_send())
    expected, expected_out = reference(wire)
    assert got == expected
    assert out == expected_out
    assert core.close_code == 1000 and core.state is CLOSED


@pytest.mark.parametrize(
    "payload", ["t" * 70_000, b"\x00" * 70_000, "é"], ids=["text", "bin", "small"]
)
def test_message_in_pieces_is_the_same_message(payload: str | bytes) -> None:
    """A large message written as header + payload pieces is the frame message() writes."""
    server = WebSocketCore()
    assert b"".join(server.message_pieces(payload)) == server.message(payload)
    client = WebSocketCore(client=True)
    [frame] = _frames(b"".join(client.message_pieces(payload)), mask=True)
    data = payload.encode() if isinstance(payload, str) else payload
    assert frame.data == data and frame.fin
    client.close()
    assert client.message_pieces(payload) == []


def test_client_side_large_frames_whatever_the_cuts() -> None:
    """On the client side a large payload is joined alone from the reads that hold it: any
    split gives the same messages, the frames after it included."""
    big = bytes(range(256)) * 1200  # 300 KiB: joined alone
    wire = (
        unmasked(0x2, big)
        + unmasked(0x1, b"after")
        + unmasked(0x2, big[::-1])
        + unmasked(0x9, b"p")
        + unmasked(0x1, "é".encode() * 140_000)
    )
    expected = [big, "after", big[::-1], Ping(b"p"), "é" * 140_000]
    assert events(WebSocketCore(client=True), wire) == expected
    rng = random.Random(3)
    for _ in range(20):
        core = WebSocketCore(client=True)
        got: list[Any] = []
        at = 0
        while at < len(wire):
            step = rng.choice([1, 7, 1000, 65536, 200_000])
            got += events(core, wire[at : at + step])
            at += step
        assert got == expected
        assert core.partial == 0
