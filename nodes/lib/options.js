/**
 * Every option of the Node side in one place: the settings.js values with their defaults and
 * validation, the config nodes' properties as core parses them (and the listener's own, with its
 * credentials), the fixed bounds of the bridge, and the option maps of the `configure`, `listen`
 * and `connect` commands (docs/protocol.md).
 *
 * The worker gets every value explicitly: it validates them but does not fall back on defaults
 * of its own, so a default changes here and nowhere else.
 */
"use strict";

const os = require("os");

const MiB = 1024 * 1024;
// Worker processes: at most this many when set as a number, and this many CPUs' worth for "auto".
const MAX_WORKERS = 16;
const MAX_AUTO_WORKERS = 8;

const isBoolean = (value) => typeof value === "boolean";
const isText = (value) => typeof value === "string" && value !== "";
const isCount = (value) => Number.isInteger(value) && value >= 0;
const isPositiveCount = (value) => Number.isInteger(value) && value >= 1;
const isSeconds = (value) => typeof value === "number" && value >= 0 && value !== Infinity;
const isWorkers = (value) => value === "auto" || (Number.isInteger(value) && value >= 1 && value <= MAX_WORKERS);
// A backplane: Redis (or Valkey) over TCP, TLS or a Unix socket; a namespace is a channel prefix.
const isBackplaneUrl = (value) => typeof value === "string" && /^(rediss?|unix):\/\/\S+$/i.test(value.trim());
const isNamespace = (value) => typeof value === "string" && /^\S+$/.test(value);
// The backplane's password when the listener's credentials hold none.
const BACKPLANE_PASSWORD_ENV = "NODE_RED_BACKPLANE_PASSWORD";
const DEFAULT_NAMESPACE = "pyws";

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
    workers: { name: "pyWebsocketWorkers", default: 1, check: isWorkers,
        expected: `a whole number of workers from 1 to ${MAX_WORKERS}, or "auto"` },
    // The backplane of listeners that share their path with other instances and name no URL.
    backplane: { name: "pyWebsocketListenerBackplane", default: null, check: isBackplaneUrl,
        expected: "a redis://, rediss:// or unix:// URL" },
    backplaneNamespace: { name: "pyWebsocketListenerBackplaneNamespace", default: DEFAULT_NAMESPACE,
        check: isNamespace, expected: "a channel prefix without spaces" },
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

// A client connection's reconnect policy when its config node does not set one: core's fixed
// 3 s delay; backoff's cap and factor; never giving up.
const RECONNECT_DEFAULTS = { policy: "fixed", delay: 3, maxDelay: 60, factor: 2, attempts: 0 };
// A connection open this many first delays counts as up: backoff and attempts start again.
const RECONNECT_RESET_DELAYS = 10;

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

/**
 * How many worker processes a `workers` value (settingsValues) asks for: "auto" is one per CPU
 * the process may use, at most MAX_AUTO_WORKERS (each worker is a Python process of its own).
 */
function workerCount(workers) {
    if (workers !== "auto") return workers;
    const cpus = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
    return Math.max(1, Math.min(cpus, MAX_AUTO_WORKERS));
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

/** A property that is a number (from the editor: a string), unset when blank or missing. */
function numberProperty(n, name, problems, { integer = false, min = 0, above = false } = {}) {
    const raw = n[name];
    if (raw === undefined || raw === null || String(raw).trim() === "") return null;
    const value = Number(raw);
    if (!Number.isFinite(value) || (above ? value <= min : value < min) || (integer && !Number.isInteger(value))) {
        const what = integer ? "a whole number" : "a number";
        problems.push(`${name} must be ${what} ${above ? ">" : ">="} ${min}, not ${JSON.stringify(raw)}`);
        return null;
    }
    return value;
}

/**
 * A client config node's own properties (none of them in core; unset gives core's behaviour):
 * {autoConnect, reconnect: {policy, delay, maxDelay, factor, attempts}, origin, problems}. A bad
 * value is reported in problems and its default used.
 */
function clientProperties(n) {
    const problems = [];
    const d = RECONNECT_DEFAULTS;
    let policy = n.reconnectPolicy || d.policy;
    if (policy !== "fixed" && policy !== "backoff") {
        problems.push(`reconnectPolicy must be "fixed" or "backoff", not ${JSON.stringify(policy)}`);
        policy = d.policy;
    }
    const delay = numberProperty(n, "reconnectDelay", problems, { above: true }) ?? d.delay;
    let maxDelay = numberProperty(n, "reconnectMaxDelay", problems, { above: true }) ?? Math.max(d.maxDelay, delay);
    if (maxDelay < delay) {
        problems.push(`reconnectMaxDelay (${maxDelay}) must not be below reconnectDelay (${delay})`);
        maxDelay = delay;
    }
    return {
        autoConnect: n.autoConnect !== false && n.autoConnect !== "false",
        reconnect: {
            policy,
            delay,
            maxDelay,
            factor: numberProperty(n, "reconnectFactor", problems, { min: 1 }) ?? d.factor,
            attempts: numberProperty(n, "reconnectAttempts", problems, { integer: true }) ?? d.attempts,
        },
        origin: typeof n.origin === "string" ? n.origin.trim() : "",
        problems,
    };
}

const AUTH_TYPES = ["basic", "bearer", "jwt"];
const JWT_ALGORITHMS = ["HS256", "RS256", "ES256"];

/** Lines of a multi-line credential, trimmed, without blank ones. */
function linesOf(text) {
    return typeof text === "string" ? text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line) : [];
}

/** A comma- or line-separated list, trimmed. */
function listOf(text) {
    return typeof text === "string" ? text.split(/[,\n]/).map((item) => item.trim()).filter((item) => item) : [];
}

/**
 * A listener's backplane (its `backplane` box ticked): {url, namespace, password} from its own
 * properties and credentials, else settings.js (`values`: settingsValues()) and the environment;
 * null when off, or when no URL is to be had (a problem then).
 */
function backplaneOf(n, credentials, values, env, problems) {
    if (n.backplane !== true && n.backplane !== "true") return null;
    const own = typeof n.backplaneUrl === "string" ? n.backplaneUrl.trim() : "";
    const url = own || values.backplane;
    if (!url) {
        problems.push("the backplane has no URL (set one, or pyWebsocketListenerBackplane in settings.js): " +
            "this listener serves this instance only");
        return null;
    }
    if (!isBackplaneUrl(url)) {
        problems.push(`backplaneUrl must be a redis://, rediss:// or unix:// URL: this listener serves this instance only`);
        return null;
    }
    let namespace = typeof n.backplaneNamespace === "string" ? n.backplaneNamespace.trim() : "";
    if (namespace !== "" && !isNamespace(namespace)) {
        problems.push(`backplaneNamespace must have no spaces, not ${JSON.stringify(namespace)}`);
        namespace = "";
    }
    return {
        url: url.trim(),
        namespace: namespace || values.backplaneNamespace,
        password: (credentials && credentials.backplanePassword) || env[BACKPLANE_PASSWORD_ENV] || null,
    };
}

/**
 * A listener config node's own properties (none of them in core; each off when unset) and its
 * credentials: {heartbeat, maxConnections, maxRate, trustProxy, origins, originRequired, auth,
 * backplane, problems}. auth is null or {type, users, tokens, jwt, query, subprotocol};
 * backplane null or {url, namespace, password} (`values`: the settings, for its defaults);
 * problems lists what is wrong (a bad number is then off; an authentication with no secret
 * refuses every client), never a secret.
 */
function listenerProperties(n, credentials = {}, values = settingsValues({}), env = process.env) {
    const problems = [];
    const number = (name, integer) => numberProperty(n, name, problems, { integer }) ?? 0;
    const flag = (name) => n[name] === true || n[name] === "true";
    const props = {
        heartbeat: number("hb", false),
        maxConnections: number("maxConnections", true),
        maxRate: number("maxRate", false),
        trustProxy: flag("trustProxy"),
        origins: listOf(n.origins),
        originRequired: flag("originRequired"),
        auth: null,
        backplane: null,
        problems,
    };
    props.backplane = backplaneOf(n, credentials, values, env, problems);
    const type = n.authType || "";
    if (type === "") return props;
    if (!AUTH_TYPES.includes(type)) {
        problems.push(`authType must be one of ${AUTH_TYPES.join(", ")}, not ${JSON.stringify(type)}`);
        return props;
    }
    const creds = credentials || {};
    const users = linesOf(creds.users).map((line) => {
        const at = line.indexOf(":"); // a Basic user name has no colon; the password may
        return at === -1 ? [line, ""] : [line.slice(0, at), line.slice(at + 1)];
    });
    const tokens = linesOf(creds.tokens).map((line) => {
        const at = line.lastIndexOf(":"); // a bearer token has no colon; the label may
        return at === -1 ? ["", line] : [line.slice(0, at).trim(), line.slice(at + 1).trim()];
    });
    const algorithm = JWT_ALGORITHMS.includes(n.jwtAlgorithm) ? n.jwtAlgorithm : "HS256";
    if (type === "basic" && users.length === 0) problems.push("basic authentication has no users: every client is refused");
    if (type === "bearer" && tokens.length === 0) problems.push("bearer authentication has no tokens: every client is refused");
    if (type === "jwt" && !creds.jwtKey) problems.push("JWT authentication has no secret or key: every client is refused");
    props.auth = {
        type,
        users: type === "basic" ? users : [],
        tokens: type === "bearer" ? tokens : [],
        jwt: type === "jwt" ? { algorithm, key: creds.jwtKey || "", issuer: (n.jwtIssuer || "").trim(),
            audience: (n.jwtAudience || "").trim(), claims: listOf(n.jwtClaims) } : null,
        // Browsers cannot set headers on a WebSocket: a token may come in the query instead.
        query: type === "basic" ? "" : (typeof n.tokenQuery === "string" ? n.tokenQuery.trim() : "token"),
        subprotocol: type !== "basic" && flag("tokenSubprotocol"),
    };
    return props;
}

/**
 * `["configure", options]`: worker-wide settings, and the worker's name on a backplane: the
 * instance (this Node-RED) and the node (`<instance>.<slot>`, the worker).
 */
function configureOptions(values, instance, slot) {
    return {
        flow_window: values.flowWindow,
        flow_window_bytes: values.flowWindowBytes,
        instance,
        node: `${instance}.${slot}`,
    };
}

/** `["listen", owner, options]` for the endpoint at fullPath; listener: listenerProperties(). */
function listenOptions(values, fullPath, listener = listenerProperties({})) {
    return {
        path: fullPath,
        max_size: values.maxMessageSize,
        compression: values.compression,
        handshake_timeout: values.handshakeTimeout,
        // Core's listener has no subprotocol property and its `ws` server accepts the client's
        // first offer; nil asks the worker for exactly that.
        subprotocols: null,
        write_limit: values.writeLimit,
        heartbeat: listener.heartbeat,
        max_connections: listener.maxConnections,
        max_rate: listener.maxRate,
        trust_proxy: listener.trustProxy,
        origins: listener.origins.length ? listener.origins : null,
        origin_required: listener.originRequired,
        auth: listener.auth,
        backplane: listener.backplane,
    };
}

/**
 * `["connect", owner, options]`; connection: url, subprotocols, headers, heartbeat (s), tls,
 * proxy, and auto (connect now) and reconnect (clientProperties()) when set.
 */
function connectOptions(values, connection) {
    const reconnect = connection.reconnect || RECONNECT_DEFAULTS;
    return {
        url: connection.url,
        subprotocols: connection.subprotocols,
        headers: connection.headers,
        heartbeat: connection.heartbeat,
        tls: connection.tls,
        proxy: connection.proxy,
        handshake_timeout: values.handshakeTimeout,
        max_size: values.maxMessageSize,
        compression: values.compression,
        write_limit: values.writeLimit,
        auto: connection.auto !== false,
        reconnect_policy: reconnect.policy,
        reconnect_delay: reconnect.delay,
        reconnect_max_delay: reconnect.maxDelay,
        reconnect_factor: reconnect.factor,
        reconnect_attempts: reconnect.attempts,
        reconnect_reset: RECONNECT_RESET_DELAYS * reconnect.delay,
    };
}

module.exports = {
    SETTINGS, LIMITS, RECONNECT_DEFAULTS, BACKPLANE_PASSWORD_ENV, RECONNECT_RESET_DELAYS, settingsValues, workerCount, isClientPath,
    configProperties, clientProperties, listenerProperties, configureOptions, listenOptions, connectOptions,
};
