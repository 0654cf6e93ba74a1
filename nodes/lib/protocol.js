/**
 * The event channel's frame codec: 4-byte big-endian length + one MessagePack array whose first
 * element is the frame kind. Every frame is encoded here (encodeFrame) and decoded here
 * (FrameDecoder); the per-message frames take the hand-written path of message-codec.js. The
 * protocol itself is described in docs/protocol.md; the Python side is
 * python/websocket_worker/ipc.py.
 */
"use strict";

const { Encoder, Decoder } = require("@msgpack/msgpack");
const { encodeSend, decodeMessage, HEADER_BYTES } = require("./message-codec");

const PROTOCOL_VERSION = 6;
const MAX_FRAME_BYTES = 1024 * 1024 * 1024;
// A binary last field from this size travels as its own piece (encodePieces): a relayed socket's
// reads are 64 KiB.
const PIECE_BYTES = 32 * 1024;
const EMPTY = Buffer.alloc(0);

const encoder = new Encoder();

/** One frame as a Buffer, ready to write. */
function encodeFrame(frame) {
    if (frame[0] === "send") {
        const fast = encodeSend(frame);
        if (fast !== null) return fast;
    }
    const body = encoder.encode(frame);
    const out = Buffer.allocUnsafe(HEADER_BYTES + body.byteLength);
    out.writeUInt32BE(body.byteLength, 0);
    out.set(body, HEADER_BYTES);
    return out;
}

/**
 * The bytes of encodeFrame(frame) as Buffers to write one after another. A frame whose last field
 * is a Buffer of PIECE_BYTES or more comes as [everything before it, the Buffer itself]: the
 * payload is not copied (a 16 MiB message, a relayed socket's reads). The Buffer is written as
 * it is, later: like `ws`, a flow must not change a Buffer it has sent.
 */
function encodePieces(frame) {
    if (!hasLargePayload(frame)) return [encodeFrame(frame)];
    const data = frame[frame.length - 1];
    const withEmpty = frame.slice();
    withEmpty[withEmpty.length - 1] = EMPTY;
    const short = encodeFrame(withEmpty); // ends with the empty bin: 0xc4 0x00
    const lengthBytes = data.length < 0x10000 ? 2 : 4; // bin 16 or bin 32, as the library writes
    const head = Buffer.allocUnsafe(short.length - 1 + lengthBytes);
    short.copy(head, 0, 0, short.length - 2);
    head[short.length - 2] = lengthBytes === 2 ? 0xc5 : 0xc6;
    head.writeUIntBE(data.length, short.length - 1, lengthBytes);
    head.writeUInt32BE(head.length - HEADER_BYTES + data.length, 0);
    return [head, data];
}

/** Whether encodePieces(frame) writes the last field as its own piece (else encodeFrame will do). */
function hasLargePayload(frame) {
    const data = frame[frame.length - 1];
    return Buffer.isBuffer(data) && data.length >= PIECE_BYTES;
}

class FrameError extends Error {}

/**
 * Streaming decoder: push() the chunks read from the channel, get back the whole frames they
 * complete (a frame that does not decode comes back as a FrameError in its place). A partial
 * frame is kept as the chunks that hold it and joined once, when its last byte arrives: each
 * byte is copied at most once, so a 16 MiB frame read 64 KiB at a time costs 16 MiB of copying,
 * not the 2 GiB of joining everything pending on every read. `bytesCopied` counts it.
 */
class FrameDecoder {
    constructor() {
        this._decoder = new Decoder();
        this._chunks = []; // a partial frame, as read
        this._have = 0; // its bytes so far
        this._need = 0; // its whole length with the header; 0 while the header itself is incomplete
        this.bytesCopied = 0;
    }

    push(chunk) {
        const frames = [];
        let offset = 0;
        if (this._have > 0) {
            offset = this._completePartial(chunk, frames);
            if (offset < 0) return frames;
        }
        while (chunk.length - offset >= HEADER_BYTES) {
            const length = frameLength(chunk.readUInt32BE(offset));
            if (chunk.length - offset - HEADER_BYTES < length) break;
            const start = offset + HEADER_BYTES;
            offset = start + length;
            frames.push(this._decode(chunk, start, offset));
        }
        if (offset < chunk.length) {
            const rest = chunk.subarray(offset);
            this._chunks.push(rest);
            this._have = rest.length;
            this._need = rest.length >= HEADER_BYTES ? HEADER_BYTES + frameLength(rest.readUInt32BE(0)) : 0;
        }
        return frames;
    }

    /**
     * Adds the start of `chunk` to the partial frame. When that completes it, decodes it into
     * `frames` and returns the offset in `chunk` after it; otherwise keeps the chunk and returns -1.
     */
    _completePartial(chunk, frames) {
        if (this._need === 0) {
            if (this._have + chunk.length < HEADER_BYTES) {
                this._chunks.push(chunk);
                this._have += chunk.length;
                return -1;
            }
            const header = Buffer.concat(this._chunks.concat([chunk]), HEADER_BYTES);
            this.bytesCopied += HEADER_BYTES;
            this._need = HEADER_BYTES + frameLength(header.readUInt32BE(0));
        }
        const missing = this._need - this._have;
        if (chunk.length < missing) {
            this._chunks.push(chunk);
            this._have += chunk.length;
            return -1;
        }
        this._chunks.push(missing === chunk.length ? chunk : chunk.subarray(0, missing));
        const frame = Buffer.concat(this._chunks, this._need);
        this.bytesCopied += this._need;
        this._chunks = [];
        this._have = 0;
        this._need = 0;
        frames.push(this._decode(frame, HEADER_BYTES, frame.length));
        return missing;
    }

    /** The frame in buf[start, end): the fast path for `message`, else the library. */
    _decode(buf, start, end) {
        const fast = decodeMessage(buf, start, end);
        if (fast !== null) return fast;
        let frame;
        try {
            frame = this._decoder.decode(buf.subarray(start, end));
        } catch (err) {
            return new FrameError(`undecodable frame: ${err.message}`);
        }
        if (!Array.isArray(frame) || typeof frame[0] !== "string") {
            return new FrameError("frame is not an array starting with its kind");
        }
        return frame;
    }
}

/** A length prefix, checked: over 1 GiB the stream is corrupt (no way to find the next frame). */
function frameLength(length) {
    if (length > MAX_FRAME_BYTES) {
        throw new FrameError(`frame of ${length} bytes exceeds the 1 GiB limit`);
    }
    return length;
}

/** MessagePack bin arrives as Uint8Array (or, from the fast path, Buffer); Node-RED flows expect Buffer. */
function asBuffer(u8) {
    return Buffer.isBuffer(u8) ? u8 : Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

module.exports = { PROTOCOL_VERSION, encodeFrame, encodePieces, hasLargePayload, FrameDecoder, FrameError, asBuffer, decodeMessage, encodeSend };
