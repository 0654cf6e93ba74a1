/**
 * Connection events as flow messages: what `py-websocket in` sends on its second output when
 * "send connection events" is on. One shape for both sides (listener sessions and client
 * connections): `msg.event` ("connect", "disconnect" or "error"), the same `_session` as
 * that connection's messages (`{type: "websocket", id, user?}`), and a payload saying what
 * happened. Built only when some in node asked for events.
 */
"use strict";

/** The `_session` of a connection's messages and events. */
function sessionOf(sid, user) {
    return user ? { type: "websocket", id: sid, user } : { type: "websocket", id: sid };
}

/** A query string as an object; a repeated name gives an array, as Node-RED's HTTP In does. */
function parseQuery(query) {
    const parsed = {};
    for (const [name, value] of new URLSearchParams(query || "")) {
        if (!Object.prototype.hasOwnProperty.call(parsed, name)) parsed[name] = value;
        else if (Array.isArray(parsed[name])) parsed[name].push(value);
        else parsed[name] = [parsed[name], value];
    }
    return parsed;
}

/**
 * connect: info is the worker's `open` info (docs/protocol.md): remote address and port, path,
 * query, subprotocol, headers (no Cookie, no Authorization), user.
 */
function connectEvent(sid, info) {
    const user = info.user || null;
    return {
        event: "connect",
        _session: sessionOf(sid, user),
        payload: {
            remoteAddress: info.remote_address ?? null,
            remotePort: info.remote_port ?? null,
            path: info.path ?? null,
            query: parseQuery(info.query),
            subprotocol: info.subprotocol ?? null,
            headers: info.headers || {},
            user,
        },
    };
}

/**
 * connect of a client connection: info is the worker's `open` info: the URL (without
 * credentials), the subprotocol the server chose, the server's response headers (no Set-Cookie).
 */
function clientConnectEvent(sid, info) {
    return {
        event: "connect",
        _session: sessionOf(sid, null),
        payload: { url: info.url ?? null, subprotocol: info.subprotocol ?? null, headers: info.headers || {} },
    };
}

/**
 * disconnect: the close code and reason, and who closed: "client", "server", "heartbeat",
 * "limit" (listener sessions only) or "error". For a client connection "client" is this side.
 */
function disconnectEvent(sid, user, code, reason, by) {
    return { event: "disconnect", _session: sessionOf(sid, user), payload: { code, reason, by } };
}

/** error: the worker failed the session (a disconnect follows). */
function errorEvent(sid, user, text) {
    return { event: "error", _session: sessionOf(sid, user), payload: { error: text } };
}

module.exports = { sessionOf, parseQuery, connectEvent, clientConnectEvent, disconnectEvent, errorEvent };
