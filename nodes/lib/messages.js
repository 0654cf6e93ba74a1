/**
 * Node-RED message rules of the core WebSocket nodes: what a received WebSocket message becomes
 * in a flow, and what a flow message puts on the wire.
 */
"use strict";

/**
 * A received message (string for text, Buffer for binary) as a flow message.
 * Entire-message mode parses JSON like core; where core misbehaves we wrap the value in
 * `payload` instead: JSON `null` (core throws) and arrays (core would send the array's items to
 * other outputs, losing `_session`).
 */
function toFlowMessage(data, wholemsg, sessionId, user) {
    let msg;
    if (wholemsg) {
        try {
            msg = JSON.parse(data);
            if (msg === null || typeof msg !== "object" || Array.isArray(msg)) {
                msg = { payload: msg };
            }
        } catch (_) {
            msg = { payload: data };
        }
    } else {
        msg = { payload: data };
    }
    msg._session = user ? { type: "websocket", id: sessionId, user } : { type: "websocket", id: sessionId };
    return msg;
}

/**
 * What `out` sends for msg, as core: the whole msg as JSON without _session, or the payload
 * (Buffer as binary, anything else as a string via RED.util.ensureString). Returns undefined
 * when nothing is to be sent (no payload, or an empty string).
 */
function toWireData(msg, wholemsg, ensureString) {
    let data;
    if (wholemsg) {
        const session = msg._session;
        delete msg._session;
        try {
            data = JSON.stringify(msg);
        } finally {
            if (session !== undefined) msg._session = session;
        }
    } else if (Object.prototype.hasOwnProperty.call(msg, "payload")) {
        data = Buffer.isBuffer(msg.payload) ? msg.payload : ensureString(msg.payload);
    }
    return data ? data : undefined;
}

/** The session a message replies to, or null to broadcast (core: only `_session.type` "websocket"). */
function replySessionOf(msg) {
    return msg._session && msg._session.type === "websocket" ? msg._session.id : null;
}

module.exports = { toFlowMessage, toWireData, replySessionOf };
