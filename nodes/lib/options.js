/**
 * Every option of the Node side in one place: the settings.js values with their defaults and
 * validation, the config nodes' properties as core parses them, the fixed bounds of the bridge,
 * and the option maps of the `configure`, `listen` and `connect` commands (docs/protocol.md).
 *
 * The worker gets every value explicitly: it validates them but does not fall back on defaults
 * of its own, so a default changes here and nowhere else.
 */
"use strict";

const MiB = 1024 * 1024;

const isBoolean = (value) => typeof value === "boolean";
const isText = (value) => typeof value === "string" && value !== "";
const isCount = (value) => Number.isInteger(value) && value >= 0;
const isPositiveCount = (value) => Number.isInteger(value) && value >= 1;
const isSeconds = (value) => typeof value === "number" && value >= 0 && value !== Infinity;

/**
 * settings.js values: name, default, check and what the check wants (for the warning). Unset
 * (undefined, null or "") means the default; a value that fails its check is reported once and
 * the default is used.
 */
const SETTINGS = {
    python: { name: "pyWebsocketListenerPython", default: null, check: isText, expected: "a path or command" },
    venv: { name: "pyWebsocketListenerVenv", default: null, check: isText, expected: "a directory" },
    handoff: { name: "pyWebsocketListenerHandoff", default: true, check: isBoolean, expected: "true or false" },
    // core's `ws` limit
    maxMessageSize: { name: "pyWebsocketListenerMaxMessageSize", default: 100 * MiB, check: isCount,
        expected: "a whole number of bytes >= 0 (0 = no limit)" },
    // core has permessage-deflate off
    compression: { name: "pyWebsocketListenerCompression", default: false, check: isBoolean, expected: "true or false" },
    handshakeTimeout: { name: "pyWebsocketListenerHandshakeTimeout", default: 10, check: isSeconds,
        expected: "a number of seconds >= 0 (0 = none)" },
    writeLimit: { name: "pyWebsocketListenerWriteLimit", default: 16 * MiB, check: isCount,
        expected: "a whole number of bytes >= 0 (0 = no limit)" },
    flowWindow: { name: "pyWebsocketListenerFlowWindow", default: 1000, check: isPositiveCount,
        expected: "a whole number of messages >= 1" },
    flowWindowBytes: { name: "pyWebsocketListenerFlowWindowBytes", default: 8 * MiB, check: isPositiveCount,
        expected: "a whole number of bytes >= 1" },
    clientQueueSize: { name: "pyWebsocketClientQueueSize", default: 1000, check: isCount,
        expected: "a whole number of messages >= 0 (0 = no queue)" },
};

/** Fixed bounds (not settings); each named for what it bounds. Tests may pass smaller ones to the bridge. */
const LIMITS = {
    // A spawned worker must say hello within this, or it is killed and restarted.
    helloTimeoutMs: 30000,
    // Restart delays: the first, and the cap of the doubling while a worker keeps dying young.
    firstRestartMs: 200,
    maxRestartMs: 30000,
    // A worker that served this long before it died is replaced at once; one that dies sooner (or
    // before its hello) is crash-looping, and its restarts back off.
    stableAfterMs: 2000,
    // A listener connection waits at most this for its endpoint to be served by a worker.
    pendingConnectionMs: 30000,
    // remove() waits at most this for the worker's `closed` (Node-RED allows a node 15 s to close).
    undeclareTimeoutMs: 3000,
    // Bytes waiting for the event channel beyond which new data is refused (a stuck worker must
    // not grow Node-RED's memory); one message of any size still goes when less is waiting.
    // Room for bursts of large messages to a worker that takes them (16 MiB × 4 in flight
    // overflowed 64 MiB in the benchmark); a worker that takes nothing is killed after stallTimeoutMs.
    maxWaitingBytes: 256 * MiB,
    // A worker that takes nothing from its event channel for this long while data waits is stuck.
    stallTimeoutMs: 30000,
};

// core's fixed delay between a client connection's close (or failed attempt) and the next attempt
const RECONNECT_DELAY_S = 3;

const warned = new Set();

/**
 * The settings.js values, validated: {handoff, maxMessageSize, ...} by the keys of SETTINGS.
 * report(name, value, expected, fallback) is called once per process for each bad value.
 */
function settingsValues(settings, report = () => {}) {
    const values = {};
    for (const [key, spec] of Object.entries(SETTINGS)) {
        const value = settings ? settings[spec.name] : undefined;
        if (value === undefined || value === null || value === "") {
            values[key] = spec.default;
        } else if (spec.check(value)) {
            values[key] = value;
        } else {
            const id = `${spec.name}=${typeof value}:${String(value)}`;
            if (!warned.has(id)) {
                warned.add(id);
                report(spec.name, value, spec.expected, spec.default);
            }
            values[key] = spec.default;
        }
    }
    return values;
}

/** A path that connects (ws:// or wss:// URL) rather than listens, as core decides it. */
function isClientPath(path) {
    return /^ws{1,2}:\/\//i.test(path || "");
}

/**
 * A config node's properties as core parses them: path, wholemsg ("true"), subprotocol (comma
 * list, trimmed), hb (whole seconds, > 0 = on), tls, headers, and our authType.
 */
function configProperties(n) {
    const hb = parseInt(n.hb);
    return {
        path: n.path,
        isServer: !isClientPath(n.path),
        wholemsg: n.wholemsg === "true",
        subprotocol: typeof n.subprotocol === "string" ? n.subprotocol.split(",").map((v) => v.trim()) : [],
        heartbeatSeconds: hb > 0 ? hb : 0,
        tls: n.tls,
        headers: n.headers,
        authType: n.authType || "",
    };
}

/** `["configure", options]`: worker-wide settings. */
function configureOptions(values) {
    return {
        flow_window: values.flowWindow,
        flow_window_bytes: values.flowWindowBytes,
    };
}

/** `["listen", owner, options]` for the endpoint at fullPath. */
function listenOptions(values, fullPath) {
    return {
        path: fullPath,
        max_size: values.maxMessageSize,
        compression: values.compression,
        handshake_timeout: values.handshakeTimeout,
        // Core's listener has no subprotocol property and its `ws` server accepts the client's
        // first offer; nil asks the worker for exactly that.
        subprotocols: null,
        write_limit: values.writeLimit,
    };
}

/** `["connect", owner, options]`; connection: url, subprotocols, headers, heartbeat (s), tls, proxy. */
function connectOptions(values, connection) {
    return {
        url: connection.url,
        subprotocols: connection.subprotocols,
        headers: connection.headers,
        heartbeat: connection.heartbeat,
        tls: connection.tls,
        proxy: connection.proxy,
        handshake_timeout: values.handshakeTimeout,
        reconnect_delay: RECONNECT_DELAY_S,
        max_size: values.maxMessageSize,
        compression: values.compression,
        write_limit: values.writeLimit,
    };
}

module.exports = {
    SETTINGS, LIMITS, RECONNECT_DELAY_S, settingsValues, isClientPath, configProperties,
    configureOptions, listenOptions, connectOptions,
};
