/**
 * The event channel's frame codec: 4-byte big-endian length + one MessagePack array
 * whose first element is the frame kind. The protocol itself is described in docs/protocol.md;
 * the Python side is python/websocket_worker/ipc.py.
 */
"use strict";

const { Encoder, Decoder } = require("@msgpack/msgpack");

const PROTOCOL_VERSION = 2;
const MAX_FRAME_BYTES = 1024 * 1024 * 1024;
const HEADER_BYTES = 4;

const encoder = new Encoder();

/** One frame as a Buffer, ready to write. */
function encodeFrame(frame) {
    const body = encoder.encode(frame);
    const out = Buffer.allocUnsafe(HEADER_BYTES + body.byteLength);
    out.writeUInt32BE(body.byteLength, 0);
    out.set(body, HEADER_BYTES);
    return out;
}

class FrameError extends Error {}

/**
 * Streaming decoder: push() the chunks read from the channel, get back the whole frames they
 * complete. A partial frame is kept for the next chunk.
 */
class FrameDecoder {
    constructor() {
        this._decoder = new Decoder();
        this._pending = [];
        this._pendingBytes = 0;
    }

    push(chunk) {
        let buf = chunk;
        if (this._pendingBytes > 0) {
            this._pending.push(chunk);
            buf = Buffer.concat(this._pending, this._pendingBytes + chunk.length);
            this._pending = [];
            this._pendingBytes = 0;
        }
        const frames = [];
        let offset = 0;
        while (buf.length - offset >= HEADER_BYTES) {
            const length = buf.readUInt32BE(offset);
            if (length > MAX_FRAME_BYTES) {
                throw new FrameError(`frame of ${length} bytes exceeds the 1 GiB limit`);
            }
            if (buf.length - offset - HEADER_BYTES < length) {
                break;
            }
            const body = buf.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length);
            offset += HEADER_BYTES + length;
            let frame;
            try {
                frame = this._decoder.decode(body);
            } catch (err) {
                frames.push(new FrameError(`undecodable frame: ${err.message}`));
                continue;
            }
            if (!Array.isArray(frame) || typeof frame[0] !== "string") {
                frames.push(new FrameError("frame is not an array starting with its kind"));
                continue;
            }
            frames.push(frame);
        }
        if (offset < buf.length) {
            const rest = buf.subarray(offset);
            this._pending.push(rest);
            this._pendingBytes = rest.length;
        }
        return frames;
    }
}

/** MessagePack bin arrives as Uint8Array; Node-RED flows expect Buffer. */
function asBuffer(u8) {
    return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

module.exports = { PROTOCOL_VERSION, encodeFrame, FrameDecoder, FrameError, asBuffer };
