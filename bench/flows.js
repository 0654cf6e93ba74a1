/**
 * The benchmark's flows, built once with Node-RED's core WebSocket node types, and the
 * conversion to this package's nodes by renaming `type` only (nothing else changes):
 *   websocket-listener → py-websocket-listener, websocket-client → py-websocket-client,
 *   websocket in → py-websocket in, websocket out → py-websocket out.
 */
"use strict";

const crypto = require("crypto");

const TO_OURS = {
    "websocket-listener": "py-websocket-listener",
    "websocket-client": "py-websocket-client",
    "websocket in": "py-websocket in",
    "websocket out": "py-websocket out",
};

const PATHS = { echo: "/bench/echo", fanout: "/bench/fanout", trigger: "/bench/trigger", idle: "/bench/idle" };
const COUNT_URL = "/bench/count";
const LIVE_HEAP_URL = "/bench/live-heap";
const LARGE_COUNT_URL = "/bench/large-count";
const LIVE_HEAP_FUNC = "msg.payload = { bytes: global.get(\"liveHeapBytes\")() };\nreturn msg;";

function id() {
    return crypto.randomBytes(8).toString("hex");
}

function tab(label) {
    return { id: id(), type: "tab", label, disabled: false, info: "" };
}

function listener(path) {
    return { id: id(), type: "websocket-listener", path, wholemsg: "false" };
}

function client(url) {
    return { id: id(), type: "websocket-client", path: url, tls: "", wholemsg: "false", hb: "0", subprotocol: "",
        headers: [] };
}

function wsIn(z, config, wires = []) {
    const server = config.type === "websocket-listener";
    return { id: id(), type: "websocket in", z, name: "", server: server ? config.id : "",
        client: server ? "" : config.id, x: 200, y: 100, wires: [wires] };
}

function wsOut(z, config) {
    const server = config.type === "websocket-listener";
    return { id: id(), type: "websocket out", z, name: "", server: server ? config.id : "",
        client: server ? "" : config.id, x: 600, y: 100, wires: [] };
}

function fn(z, name, func, wires = []) {
    return { id: id(), type: "function", z, name, func, outputs: 1, timeout: 0, noerr: 0, initialize: "",
        finalize: "", libs: [], x: 400, y: 100, wires: [wires] };
}

/** Scenarios 1 and 2: every message received on /bench/echo goes back to its sender (_session). */
function echoFlow() {
    const t = tab("bench echo");
    const l = listener(PATHS.echo);
    const out = wsOut(t.id, l);
    return [t, l, wsIn(t.id, l, [out.id]), out];
}

/**
 * Scenario 3: a text message "N" on /bench/trigger makes a function send N 64-byte messages
 * without _session to the out node of /bench/fanout, i.e. N broadcasts to its clients.
 */
function broadcastFlow() {
    const t = tab("bench broadcast");
    const fan = listener(PATHS.fanout);
    const trig = listener(PATHS.trigger);
    const out = wsOut(t.id, fan);
    const burst = fn(t.id, "broadcast N", [
        "const n = parseInt(String(msg.payload), 10) || 0;",
        "const pad = \"x\".repeat(58);",
        "for (let i = 0; i < n; i++) {",
        "    node.send({ payload: String(i).padStart(6, \"0\") + pad });",
        "}",
        "return null;",
    ].join("\n"), [out.id]);
    return [t, fan, trig, out, burst, wsIn(t.id, trig, [burst.id])];
}

/**
 * Scenario 4: a listener on /bench/idle with an in node; the clients only connect. GET
 * /bench/live-heap answers Node-RED's heap in use after a full collection (bench/lib/node-red.js).
 */
function idleFlow() {
    const t = tab("bench idle");
    const l = listener(PATHS.idle);
    return [t, l, wsIn(t.id, l), ...getEndpoint(t.id, LIVE_HEAP_URL, "live heap", LIVE_HEAP_FUNC)];
}

/**
 * bench/stretch.js: the broadcast flow, its fan-out listener (/bench/fanout) with a server
 * heartbeat of `heartbeat` seconds (`hb`: ours pings every client, core's listener has none) and
 * an in node, plus GET /bench/live-heap as in the idle flow.
 */
function stretchFlow(heartbeat) {
    const nodes = broadcastFlow();
    const t = nodes[0];
    const fan = nodes.find((node) => node.type === "websocket-listener" && node.path === PATHS.fanout);
    fan.hb = String(heartbeat);
    return nodes.concat(wsIn(t.id, fan), ...getEndpoint(t.id, LIVE_HEAP_URL, "live heap", LIVE_HEAP_FUNC));
}

/** A tab with a client connection to `url`, its out node, and a function (lines) wired to it. */
function clientFunction(label, url, name, lines) {
    const t = tab(label);
    const c = client(url);
    const out = wsOut(t.id, c);
    return { t, c, out, handler: fn(t.id, name, lines.join("\n"), [out.id]) };
}

/**
 * Scenario 5: a client connection to the load generator's server; a function counts what the
 * in node delivers (flow context `benchCount`) and, at `total`, sends "done:<count>" back over
 * the same connection. GET /bench/count answers the count so far.
 */
function ingestFlow(url, total) {
    const { t, c, out, handler: counter } = clientFunction("bench ingest", url, "count", [
        "const count = (flow.get(\"benchCount\") || 0) + 1;",
        "flow.set(\"benchCount\", count);",
        `if (count === ${total}) {`,
        "    return { payload: \"done:\" + count };",
        "}",
        "return null;",
    ]);
    return [t, c, wsIn(t.id, c, [counter.id]), counter, out, ...countEndpoint(t.id, COUNT_URL, "benchCount")];
}

/** GET `url` answers what the function `func` puts in msg.payload. */
function getEndpoint(z, url, name, func) {
    const response = { id: id(), type: "http response", z, name: "", statusCode: "", headers: {}, x: 600,
        y: 200, wires: [] };
    const report = fn(z, name, func, [response.id]);
    const httpIn = { id: id(), type: "http in", z, name: "", url, method: "get", upload: false,
        swaggerDoc: "", x: 200, y: 200, wires: [[report.id]] };
    return [httpIn, report, response];
}

/** GET `url` answers {count} from the flow context variable `key`. */
function countEndpoint(z, url, key) {
    return getEndpoint(z, url, "report count", `msg.payload = { count: flow.get("${key}") || 0 };\nreturn msg;`);
}

/**
 * Large messages, client mode: a client connection to the load generator's server, and a function
 * that obeys short text commands from that server and counts everything else:
 *   "bench:reset"              count and bytes back to 0
 *   "bench:end"                answers "bench:done:<count>:<bytes>" (ingest: every message before it)
 *   "bench:send:<bytes>:<t|b>" sends one text or binary message of that size (egress); the payload
 *                              is built once and kept in the node's context, so it costs nothing
 *                              per message.
 * GET /bench/large-count answers the count so far.
 */
function largeClientFlow(url) {
    const { t, c, out, handler } = clientFunction("bench large client", url, "count or send", [
        "const p = msg.payload;",
        "if (typeof p === \"string\" && p.length < 64 && p.startsWith(\"bench:\")) {",
        "    const [, command, size, kind] = p.split(\":\");",
        "    if (command === \"reset\") {",
        "        flow.set(\"largeCount\", 0);",
        "        flow.set(\"largeBytes\", 0);",
        "    } else if (command === \"end\") {",
        "        return { payload: `bench:done:${flow.get(\"largeCount\") || 0}:${flow.get(\"largeBytes\") || 0}` };",
        "    } else if (command === \"send\") {",
        "        const key = `payload:${size}:${kind}`;",
        "        let payload = context.get(key);",
        "        if (payload === undefined) {",
        "            payload = kind === \"b\" ? Buffer.alloc(Number(size), 0xa5) : \"m\".repeat(Number(size));",
        "            context.set(key, payload);",
        "        }",
        "        return { payload };",
        "    }",
        "    return null;",
        "}",
        "flow.set(\"largeCount\", (flow.get(\"largeCount\") || 0) + 1);",
        "flow.set(\"largeBytes\", (flow.get(\"largeBytes\") || 0) + p.length);",
        "return null;",
    ]);
    return [t, c, wsIn(t.id, c, [handler.id]), handler, out, ...countEndpoint(t.id, LARGE_COUNT_URL, "largeCount")];
}

/** The same flow with this package's node types: only `type` changes. */
function toOurs(nodes) {
    return nodes.map((node) => Object.assign({}, node, { type: TO_OURS[node.type] || node.type }));
}

module.exports = { echoFlow, broadcastFlow, idleFlow, stretchFlow, ingestFlow, largeClientFlow, toOurs, PATHS, COUNT_URL,
    LIVE_HEAP_URL,
    LARGE_COUNT_URL, TO_OURS };
