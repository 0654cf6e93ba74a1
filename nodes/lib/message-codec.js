/**
 * Hand-written codecs for the two frames that travel once per WebSocket message: `send` (Node to
 * worker) and `message` (worker to Node). The generic MessagePack library spends about 1.5 µs
 * encoding a `send` and 0.8 µs decoding a `message`, more than Node-RED's own routing of the msg.
 * Their bytes are exactly what the library writes (test/protocol_spec.js checks it at every
 * length boundary); any other shape returns null and goes through the library (protocol.js).
 */
"use strict";

const HEADER_BYTES = 4;
const SEND_HEAD = Buffer.from([0x94, 0xa4, 0x73, 0x65, 0x6e, 0x64]); // [ , "send"
const MESSAGE_HEAD = Buffer.from([0x94, 0xa7, 0x6d, 0x65, 0x73, 0x73, 0x61, 0x67, 0x65]); // [ , "message"
const NIL = 0xc0;

function uintBytes(value) {
    return value < 0x80 ? 1 : value < 0x100 ? 2 : value < 0x10000 ? 3 : 5;
}

function writeUint(out, offset, value) {
    if (value < 0x80) {
        out[offset] = value;
        return offset + 1;
    }
    if (value < 0x100) {
        out[offset] = 0xcc;
        out[offset + 1] = value;
        return offset + 2;
    }
    if (value < 0x10000) {
        out[offset] = 0xcd;
        out.writeUInt16BE(value, offset + 1);
        return offset + 3;
    }
    out[offset] = 0xce;
    out.writeUInt32BE(value, offset + 1);
    return offset + 5;
}

/** Header bytes of a str (text) or bin (binary) of `length` bytes. */
function lengthHeaderBytes(length, text) {
    if (text && length < 32) return 1;
    return length < 0x100 ? 2 : length < 0x10000 ? 3 : 5;
}

function writeLengthHeader(out, offset, length, text) {
    if (text && length < 32) {
        out[offset] = 0xa0 | length;
        return offset + 1;
    }
    if (length < 0x100) {
        out[offset] = text ? 0xd9 : 0xc4;
        out[offset + 1] = length;
        return offset + 2;
    }
    if (length < 0x10000) {
        out[offset] = text ? 0xda : 0xc5;
        out.writeUInt16BE(length, offset + 1);
        return offset + 3;
    }
    out[offset] = text ? 0xdb : 0xc6;
    out.writeUInt32BE(length, offset + 1);
    return offset + 5;
}

/** `["send", owner, sid or null, str or Buffer]`, framed; null when it does not have that shape. */
function encodeSend(frame) {
    const owner = frame[1];
    const sid = frame[2];
    const data = frame[3];
    if (frame.length !== 4 || !Number.isInteger(owner) || owner < 0 || owner > 0xffffffff) return null;
    const text = typeof data === "string";
    if (!(sid === null || typeof sid === "string") || !(text || Buffer.isBuffer(data))) return null;
    const sidBytes = sid === null ? 0 : Buffer.byteLength(sid);
    const dataBytes = text ? Buffer.byteLength(data) : data.length;
    const sidSize = sid === null ? 1 : lengthHeaderBytes(sidBytes, true) + sidBytes;
    const size = SEND_HEAD.length + uintBytes(owner) + sidSize + lengthHeaderBytes(dataBytes, text) + dataBytes;
    const out = Buffer.allocUnsafe(HEADER_BYTES + size);
    out.writeUInt32BE(size, 0);
    SEND_HEAD.copy(out, HEADER_BYTES);
    let offset = writeUint(out, HEADER_BYTES + SEND_HEAD.length, owner);
    if (sid === null) {
        out[offset++] = NIL;
    } else {
        offset = writeLengthHeader(out, offset, sidBytes, true);
        offset += out.write(sid, offset, "utf8");
    }
    offset = writeLengthHeader(out, offset, dataBytes, text);
    if (text) out.write(data, offset, "utf8");
    else data.copy(out, offset);
    return out;
}

/**
 * Reads a uint, str or bin at `offset` of `buf` (below `end`). Returns the value's end offset and
 * leaves the value in `into.value`; -1 for anything else (the library decodes such frames).
 */
function readValue(buf, offset, end, into) {
    if (offset >= end) return -1;
    const type = buf[offset];
    let start;
    let length;
    let text = true;
    if (type < 0x80) {
        into.value = type;
        return offset + 1;
    }
    if (type === NIL) {
        into.value = null;
        return offset + 1;
    }
    if ((type & 0xe0) === 0xa0) {
        start = offset + 1;
        length = type & 0x1f;
    } else {
        switch (type) {
        case 0xcc: case 0xcd: case 0xce: {
            const bytes = type === 0xcc ? 1 : type === 0xcd ? 2 : 4;
            if (offset + 1 + bytes > end) return -1;
            into.value = buf.readUIntBE(offset + 1, bytes);
            return offset + 1 + bytes;
        }
        case 0xc4: case 0xc5: case 0xc6: case 0xd9: case 0xda: case 0xdb: {
            text = type >= 0xd9;
            const bytes = 1 << (type - (text ? 0xd9 : 0xc4)); // 1, 2 or 4 length bytes
            start = offset + 1 + bytes;
            if (start > end) return -1;
            length = buf.readUIntBE(offset + 1, bytes);
            break;
        }
        default: return -1;
        }
    }
    if (start + length > end) return -1;
    into.value = text ? buf.toString("utf8", start, start + length) : buf.subarray(start, start + length);
    return start + length;
}

const scratch = { value: null };

/** `["message", owner, sid or null, str or bin]` from `buf[start, end)`; null for any other frame. */
function decodeMessage(buf, start, end) {
    if (end - start < MESSAGE_HEAD.length + 3) return null;
    for (let i = 0; i < MESSAGE_HEAD.length; i++) {
        if (buf[start + i] !== MESSAGE_HEAD[i]) return null;
    }
    let offset = readValue(buf, start + MESSAGE_HEAD.length, end, scratch);
    const owner = scratch.value;
    if (offset < 0 || typeof owner !== "number") return null;
    offset = readValue(buf, offset, end, scratch);
    const sid = scratch.value;
    if (offset < 0 || !(sid === null || typeof sid === "string")) return null;
    offset = readValue(buf, offset, end, scratch);
    const data = scratch.value;
    if (offset !== end || data === null || typeof data === "number") return null;
    return ["message", owner, sid, data];
}

module.exports = { encodeSend, decodeMessage, HEADER_BYTES };
