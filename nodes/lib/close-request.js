/**
 * `msg.action = "close"` on `py-websocket out` in listen mode (as MQTT's and the client's actions):
 * the close code and reason a flow asks for, checked before anything is sent. With `_session`
 * one client is closed, without it every client of the listener; the caller does that.
 */
"use strict";

const MAX_REASON_BYTES = 123; // a close frame's payload is at most 125 bytes, 2 of them the code

/**
 * {code, reason} of a close request; throws an Error saying what is wrong (an unknown action,
 * a code other than 1000 or 3000-4999, a reason that is not a string or is over 123 bytes).
 * translate is RED._.
 */
function closeRequestOf(msg, translate) {
    if (msg.action !== "close") {
        throw new Error(translate("websocket.errors.bad-action", { action: JSON.stringify(msg.action), actions: '"close"' }));
    }
    const code = msg.code === undefined || msg.code === null ? 1000 : msg.code;
    if (!Number.isInteger(code) || !(code === 1000 || (code >= 3000 && code <= 4999))) {
        throw new Error(translate("websocket.errors.bad-close-code", { code: String(code) }));
    }
    const reason = msg.reason === undefined || msg.reason === null ? "" : msg.reason;
    if (typeof reason !== "string" || Buffer.byteLength(reason) > MAX_REASON_BYTES) {
        throw new Error(translate("websocket.errors.bad-close-reason"));
    }
    return { code, reason };
}

module.exports = { closeRequestOf, MAX_REASON_BYTES };
