/**
 * `msg.action` on `py-websocket out` in connect mode, after MQTT's: "connect" (optionally with
 * `msg.url`, `msg.headers`, `msg.subprotocol` for this connection and the ones after it),
 * "disconnect" (close 1000, stay down until the next connect) and "reconnect" (close now, connect
 * again at once). Everything is checked here, before anything is sent, so a bad request fails
 * the message and leaves the connection as it was. url, headers and subprotocol are read only
 * with "connect" (a message from HTTP In carries `headers` of its own).
 */
"use strict";

const { isClientPath } = require("./options");

const CLIENT_ACTIONS = ["connect", "disconnect", "reconnect"];

// RFC 9110 token: a header name, a subprotocol.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// A header value: no control characters but tab (no CR/LF header injection).
const HEADER_VALUE = /^[^\x00-\x08\x0a-\x1f\x7f]*$/;

const isSet = (value) => value !== undefined && value !== null;

function urlOf(value, fail) {
    if (typeof value !== "string" || !isClientPath(value.trim())) fail("bad-client-url");
    const url = value.trim();
    let parsed;
    try {
        parsed = new URL(url);
    } catch (err) {
        fail("bad-client-url");
    }
    if (!parsed.hostname) fail("bad-client-url");
    return url;
}

function headersOf(value, fail) {
    if (typeof value !== "object" || Array.isArray(value) || Buffer.isBuffer(value)) fail("bad-client-headers");
    const headers = [];
    for (const [name, raw] of Object.entries(value)) {
        if (!isSet(raw)) continue;
        if (!["string", "number", "boolean"].includes(typeof raw)) fail("bad-client-headers");
        const text = String(raw);
        if (!TOKEN.test(name) || !HEADER_VALUE.test(text)) fail("bad-client-headers");
        headers.push([name, text]);
    }
    return headers;
}

function subprotocolsOf(value, fail) {
    let list;
    if (typeof value === "string") list = value.split(",");
    else if (Array.isArray(value) && value.every((item) => typeof item === "string")) list = value;
    else fail("bad-client-subprotocol");
    list = list.map((item) => item.trim()).filter((item) => item);
    if (!list.every((item) => TOKEN.test(item))) fail("bad-client-subprotocol");
    return list;
}

/**
 * {action, url?, headers?, subprotocols?} of msg; throws an Error saying what is wrong. headers
 * are [name, value] pairs, subprotocols a list; each is there only when the message gives it.
 * translate is RED._.
 */
function clientActionOf(msg, translate) {
    const fail = (key) => {
        throw new Error(translate("websocket.errors." + key));
    };
    if (msg.action === "close") fail("close-client");
    if (!CLIENT_ACTIONS.includes(msg.action)) {
        throw new Error(translate("websocket.errors.bad-action", {
            action: JSON.stringify(msg.action), actions: CLIENT_ACTIONS.map((a) => `"${a}"`).join(", "),
        }));
    }
    const request = { action: msg.action };
    if (msg.action !== "connect") return request;
    if (isSet(msg.url)) request.url = urlOf(msg.url, fail);
    if (isSet(msg.headers)) request.headers = headersOf(msg.headers, fail);
    if (isSet(msg.subprotocol)) request.subprotocols = subprotocolsOf(msg.subprotocol, fail);
    return request;
}

module.exports = { clientActionOf, CLIENT_ACTIONS };
