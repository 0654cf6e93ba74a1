/**
 * The event channel codec (nodes/lib/protocol.js): the hand-written codecs of the per-message
 * frames (`send` out, `message` in) must produce and accept exactly the bytes of the MessagePack
 * library, at every length boundary of the format; other frames and odd shapes still go through
 * the library. The Python side decodes these bytes in every other test.
 */
"use strict";

const should = require("should");
const { Encoder, Decoder } = require("@msgpack/msgpack");
const { encodeFrame, encodePieces, FrameDecoder, FrameError, asBuffer, decodeMessage, encodeSend } = require("../nodes/lib/protocol");

const library = new Encoder();

function libraryFrame(frame) {
    const body = library.encode(frame);
    const out = Buffer.alloc(4 + body.byteLength);
    out.writeUInt32BE(body.byteLength, 0);
    out.set(body, 4);
    return out;
}

function plain(frame) {
    return frame.map((item) => (item instanceof Uint8Array ? Buffer.from(item).toString("hex") + ":bin" : item));
}

const OWNERS = [0, 1, 127, 128, 255, 256, 65535, 65536, 0xffffffff];
const SIDS = [null, "", "a", "s".repeat(31), "s".repeat(32), "s".repeat(255), "s".repeat(256), "é✓😀"];
// Text whose UTF-8 length sits on each boundary, in one-byte and multi-byte characters.
const TEXTS = ["", "x", "x".repeat(31), "x".repeat(32), "x".repeat(255), "x".repeat(256), "x".repeat(65535),
    "x".repeat(65536), "é".repeat(15) + "x", "é".repeat(16), "😀".repeat(64), "✓".repeat(21845) + "x"];
const BINARIES = [0, 1, 31, 32, 255, 256, 65535, 65536].map((n) => Buffer.alloc(n, n & 0xff));

function cases(kind) {
    const out = [];
    for (const owner of OWNERS) out.push([kind, owner, "sid", "payload"]);
    for (const sid of SIDS) out.push([kind, 7, sid, "payload"]);
    for (const text of TEXTS) out.push([kind, 7, "sid", text]);
    for (const bin of BINARIES) out.push([kind, 7, null, bin]);
    return out;
}

describe("event channel codec", function () {
    it("encodes send frames byte for byte as the MessagePack library does", function () {
        for (const frame of cases("send")) {
            const ours = encodeSend(frame); // the fast path itself, not its fallback
            should.exist(ours, `no fast path for ${JSON.stringify(plain(frame)).slice(0, 120)}`);
            const theirs = libraryFrame(frame);
            should(ours.equals(theirs)).equal(true,
                `send frame differs for ${JSON.stringify(plain(frame)).slice(0, 120)}`);
        }
    });

    it("decodes message frames to what the library decodes, binary as Buffer", function () {
        const libraryDecoder = new Decoder();
        for (const frame of cases("message")) {
            const bytes = libraryFrame(frame);
            const decoded = new FrameDecoder().push(bytes);
            decoded.length.should.equal(1);
            const expected = libraryDecoder.decode(bytes.subarray(4));
            should(plain(decoded[0])).eql(plain(expected));
            // ... and by the fast path itself, not by its fallback.
            should(plain(decodeMessage(bytes, 4, bytes.length) || [])).eql(plain(expected));
            if (typeof frame[3] !== "string") should(Buffer.isBuffer(decoded[0][3])).equal(true);
        }
    });

    it("decodes message frames split at every byte, and several frames in one chunk", function () {
        const frames = [["message", 300, "abc", "héllo"], ["message", 1, null, Buffer.from([1, 2, 3])],
            ["open", 1, "abc", { subprotocol: null }]];
        const bytes = Buffer.concat(frames.map(libraryFrame));
        for (let cut = 1; cut < bytes.length; cut++) {
            const decoder = new FrameDecoder();
            const got = decoder.push(bytes.subarray(0, cut)).concat(decoder.push(bytes.subarray(cut)));
            should(got.map(plain)).eql(frames.map(plain), `split at ${cut}`);
        }
    });

    it("leaves other shapes to the library: extra fields, other types, other frames", function () {
        const odd = [["message", 1, "abc", "x", "extra"], ["message", 1, "abc", 5], ["message", -1, "abc", "x"],
            ["message", 1, 2, "x"], ["message", 1.5, "abc", "x"], ["messages", 1, "abc", "x"], ["ack", 12]];
        for (const frame of odd) {
            should(new FrameDecoder().push(libraryFrame(frame)).map(plain)).eql([plain(frame)]);
        }
        // A send the fast encoder does not take (a number payload) is still encoded, by the library.
        should(encodeFrame(["send", 1, "abc", 5]).equals(libraryFrame(["send", 1, "abc", 5]))).equal(true);
    });

    it("reports a message frame whose length prefix cuts its payload short as a bad frame", function () {
        const good = libraryFrame(["message", 1, "abc", "hello"]);
        const short = Buffer.from(good.subarray(0, good.length - 2));
        short.writeUInt32BE(short.length - 4, 0);
        const got = new FrameDecoder().push(Buffer.concat([short, libraryFrame(["message", 1, "abc", "next"])]));
        got.length.should.equal(2);
        should(got[0]).be.instanceOf(FrameError);
        should(got[1]).eql(["message", 1, "abc", "next"]);
    });

    it("encodes a frame with a large Buffer as a header and that Buffer itself, byte for byte the same", function () {
        const big = Buffer.alloc(40 * 1024, 7);
        for (const frame of [["send", 5, "abc", big], ["send", 70000, null, big], ["stream_data", "s1", big],
            ["publish", 3, Buffer.alloc(70000, 1)]]) {
            const pieces = encodePieces(frame);
            pieces.length.should.equal(2);
            pieces[1].should.equal(frame[frame.length - 1]); // the payload itself: not copied
            Buffer.concat(pieces).equals(libraryFrame(frame)).should.be.true(frame[0]);
        }
        // Small and text payloads stay one encoded frame.
        for (const frame of [["send", 5, "abc", Buffer.alloc(100)], ["send", 5, "abc", "x".repeat(70000)], ["ack", 3]]) {
            const pieces = encodePieces(frame);
            pieces.length.should.equal(1);
            pieces[0].equals(libraryFrame(frame)).should.be.true();
        }
    });

    it("copies each byte of a frame read in pieces once: a 16 MiB frame in 64 KiB reads copies 16 MiB", function () {
        const payload = Buffer.alloc(16 * 1024 * 1024, 0x5a);
        const bytes = libraryFrame(["message", 3, null, payload]);
        const decoder = new FrameDecoder();
        const got = [];
        for (let at = 0; at < bytes.length; at += 64 * 1024) got.push(...decoder.push(bytes.subarray(at, at + 64 * 1024)));
        got.length.should.equal(1);
        got[0][3].equals(payload).should.be.true();
        // Joining everything pending on every read would copy about 256 times this (2 GiB).
        decoder.bytesCopied.should.equal(bytes.length);
    });

    it("copies only the frames that straddle reads, whatever the cuts", function () {
        const frames = [];
        for (let i = 0; i < 300; i++) {
            frames.push(i % 3 ? ["message", i, "s", "x".repeat(i * 37)] : ["close", i, null, 1000, "bye"]);
        }
        const bytes = Buffer.concat(frames.map(libraryFrame));
        let seed = 7;
        const random = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
        for (let round = 0; round < 20; round++) {
            const decoder = new FrameDecoder();
            const got = [];
            for (let at = 0; at < bytes.length;) {
                const size = 1 + Math.floor(random() * (round % 2 ? 9000 : 40));
                got.push(...decoder.push(bytes.subarray(at, at + size)));
                at += size;
            }
            should(got.map(plain)).eql(frames.map(plain), `round ${round}`);
            decoder.bytesCopied.should.be.belowOrEqual(bytes.length + 4 * frames.length);
        }
    });

    it("refuses a length prefix over 1 GiB as soon as its four bytes are in, even split across reads", function () {
        const decoder = new FrameDecoder();
        decoder.push(Buffer.from([0x40, 0x00])).should.eql([]);
        (() => decoder.push(Buffer.from([0x00, 0x01, 0x94]))).should.throw(FrameError, { message: /exceeds the 1 GiB limit/ });
    });

    it("asBuffer gives a Buffer over the same bytes", function () {
        const u8 = new Uint8Array([1, 2, 3]);
        const buf = asBuffer(u8);
        should(Buffer.isBuffer(buf)).equal(true);
        buf[0] = 9;
        u8[0].should.equal(9);
        const already = Buffer.from([4]);
        should(asBuffer(already)).equal(already);
    });
});
