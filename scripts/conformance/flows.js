/**
 * The flows Autobahn|Testsuite talks to, with this package's node types or core's (`core: true`):
 * - listenerEcho: `in` → `out` on one listener (payload mode): every message goes back to its
 *   sender through `_session`;
 * - clientEcho(url): `in` → change → `out` on one client connection to `url`: every message the
 *   server sends comes back to it. The change node deletes `msg._session`: as in core, `out`
 *   replies by `_session` only to listener connections and would drop the message; without it,
 *   `out` sends on the client connection. Fixed ids, so a deploy of type "nodes" with a new URL
 *   restarts only the client and its nodes (how the core-client reference runs a case);
 * - clientControl(url): the same echo on a client that does not connect by itself, and
 *   POST CONNECT_PATH {"url": ...} (HTTP In) → change → a second `out` as a `connect` action to
 *   that URL (how this package's client modes run a case). The HTTP response goes once that `out`
 *   has taken the action (Complete node), or with status 500 and the error when it refused it
 *   (Catch node); its own `out`, so that the echoed messages do not reach them.
 */
"use strict";

const ECHO_PATH = "/conformance/echo";
const CONNECT_PATH = "/conformance/connect";

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

/** The client config node to `url` (extra: properties only ours has), and its in → change → out echo. */
function echoOnClient(t, url, extra = {}) {
    return [
        Object.assign({ id: "conformance.client", type: t.client, path: url, tls: "", wholemsg: "false", hb: "0",
            subprotocol: "", headers: [] }, extra),
        { id: "conformance.client-in", type: t.in, z: "conformance.tab", name: "", server: "",
            client: "conformance.client", x: 200, y: 200, wires: [["conformance.no-session"]] },
        { id: "conformance.no-session", type: "change", z: "conformance.tab", name: "",
            rules: [{ t: "delete", p: "_session", pt: "msg" }], x: 350, y: 200,
            wires: [["conformance.client-out"]] },
        { id: "conformance.client-out", type: t.out, z: "conformance.tab", name: "", server: "",
            client: "conformance.client", x: 500, y: 200, wires: [] },
    ];
}

function clientEcho(url, { core = false } = {}) {
    return [tab(), ...echoOnClient(types(core), url)];
}

/** HTTP In → connect action on an `out` of the client; answered after `out` took it or refused it. */
function connectRoute(t) {
    const z = "conformance.tab";
    return [
        { id: "conformance.connect-in", type: "http in", z, name: "", url: CONNECT_PATH, method: "post",
            upload: false, swaggerDoc: "", x: 150, y: 300, wires: [["conformance.to-connect"]] },
        // msg.headers from a connect action would go into the handshake; HTTP In's are not for it.
        { id: "conformance.to-connect", type: "change", z, name: "", rules: [
            { t: "set", p: "action", pt: "msg", to: "connect", tot: "str" },
            { t: "set", p: "url", pt: "msg", to: "payload.url", tot: "msg" },
            { t: "delete", p: "headers", pt: "msg" },
        ], x: 350, y: 300, wires: [["conformance.connect-out"]] },
        { id: "conformance.connect-out", type: t.out, z, name: "", server: "", client: "conformance.client",
            x: 550, y: 300, wires: [] },
        { id: "conformance.connect-taken", type: "complete", z, name: "", scope: ["conformance.connect-out"],
            uncaught: false, x: 150, y: 360, wires: [["conformance.connect-response"]] },
        { id: "conformance.connect-refused", type: "catch", z, name: "", scope: ["conformance.connect-out"],
            uncaught: false, x: 150, y: 420, wires: [["conformance.refusal"]] },
        { id: "conformance.refusal", type: "change", z, name: "", rules: [
            { t: "set", p: "statusCode", pt: "msg", to: "500", tot: "num" },
            { t: "set", p: "payload", pt: "msg", to: "error.message", tot: "msg" },
        ], x: 350, y: 420, wires: [["conformance.connect-response"]] },
        { id: "conformance.connect-response", type: "http response", z, name: "", statusCode: "", headers: {},
            x: 550, y: 360, wires: [] },
    ];
}

/**
 * The echo on a client that connects only when told to (to `url`, a placeholder, otherwise) and
 * never again by itself: an hour's delay, and it gives up after one failed attempt (a connection
 * closed within 10 delays counts as failed). Cases come through connectRoute().
 */
function clientControl(url) {
    const held = { autoConnect: false, reconnectPolicy: "fixed", reconnectDelay: "3600", reconnectAttempts: "1" };
    const t = types(false);
    return [tab(), ...echoOnClient(t, url, held), ...connectRoute(t)];
}

module.exports = { ECHO_PATH, CONNECT_PATH, listenerEcho, clientEcho, clientControl };
