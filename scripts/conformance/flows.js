/**
 * The flows Autobahn|Testsuite talks to, with this package's node types or core's (`core: true`):
 * - listenerEcho: `in` → `out` on one listener (payload mode): every message goes back to its
 *   sender through `_session`;
 * - clientEcho(url): `in` → change → `out` on one client connection to `url`: every message the
 *   server sends comes back to it. The change node deletes `msg._session`: as in core, `out`
 *   replies by `_session` only to listener connections and would drop the message; without it,
 *   `out` sends on the client connection.
 * Fixed ids, so a deploy of type "nodes" with a new URL restarts only the client and its nodes.
 */
"use strict";

const ECHO_PATH = "/conformance/echo";

function types(core) {
    const prefix = core ? "" : "py-";
    return {
        listener: `${prefix}websocket-listener`,
        client: `${prefix}websocket-client`,
        in: `${prefix}websocket in`,
        out: `${prefix}websocket out`,
    };
}

function tab() {
    return { id: "conformance.tab", type: "tab", label: "conformance", disabled: false, info: "" };
}

function listenerEcho({ core = false } = {}) {
    const t = types(core);
    return [
        tab(),
        { id: "conformance.listener", type: t.listener, path: ECHO_PATH, wholemsg: "false" },
        { id: "conformance.in", type: t.in, z: "conformance.tab", name: "", server: "conformance.listener",
            client: "", x: 200, y: 100, wires: [["conformance.out"]] },
        { id: "conformance.out", type: t.out, z: "conformance.tab", name: "", server: "conformance.listener",
            client: "", x: 450, y: 100, wires: [] },
    ];
}

function clientEcho(url, { core = false } = {}) {
    const t = types(core);
    return [
        tab(),
        { id: "conformance.client", type: t.client, path: url, tls: "", wholemsg: "false", hb: "0",
            subprotocol: "", headers: [] },
        { id: "conformance.client-in", type: t.in, z: "conformance.tab", name: "", server: "",
            client: "conformance.client", x: 200, y: 200, wires: [["conformance.no-session"]] },
        { id: "conformance.no-session", type: "change", z: "conformance.tab", name: "",
            rules: [{ t: "delete", p: "_session", pt: "msg" }], x: 350, y: 200,
            wires: [["conformance.client-out"]] },
        { id: "conformance.client-out", type: t.out, z: "conformance.tab", name: "", server: "",
            client: "conformance.client", x: 500, y: 200, wires: [] },
    ];
}

module.exports = { ECHO_PATH, listenerEcho, clientEcho };
