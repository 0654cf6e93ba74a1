/**
 * The load generator: a separate process (forked by bench/run.js, commands over the IPC channel)
 * driving real `ws` clients against Node-RED on 127.0.0.1, and a `ws` server for client-mode
 * ingest. Sends are batched per event-loop turn with the socket corked; no per-message promises
 * or timers. Every command reports its window's duration, the Node-RED (and worker) CPU seconds
 * from /proc, and the load generator's own CPU time (process.cpuUsage).
 */
"use strict";

const WebSocket = require("ws");
const { snapshot, monotonicUs } = require("./lib/proc");

const CLIENT_OPTIONS = { perMessageDeflate: false, handshakeTimeout: 30000 };
// A wss:// Node-RED of the benchmark (--scenarios large-relay-tls) has a fresh self-signed certificate.
const PROBE_OPTIONS = { perMessageDeflate: false, handshakeTimeout: 500, rejectUnauthorized: false };
const TEXT = { binary: false };
const MiB = 1024 * 1024;
// Above core's 100 MiB limit, so the load generator never refuses what Node-RED sends.
const LARGE_MAX_PAYLOAD = 128 * MiB;
const LARGE_OPTIONS = { perMessageDeflate: false, handshakeTimeout: 30000, maxPayload: LARGE_MAX_PAYLOAD,
    rejectUnauthorized: false };

function payloadOf(size) {
    return Buffer.from("m".repeat(size));
}

function now() {
    return process.hrtime.bigint();
}

/** Start of a measurement window: time, Node-RED (+ children) CPU, own CPU. */
function openWindow(pids) {
    return { t: now(), server: snapshot(pids), own: process.cpuUsage() };
}

/** The window's figures: seconds, CPU seconds of Node-RED, of Node-RED + worker, of the loadgen. */
function closeWindow(start, pids, end = now()) {
    const server = snapshot(pids);
    const own = process.cpuUsage(start.own);
    return {
        seconds: Number(end - start.t) / 1e9,
        cpuMain: server.main - start.server.main,
        cpuAll: server.all - start.server.all,
        cpuLoadgen: (own.user + own.system) / 1e6,
        serverAlive: server.alive,
    };
}

/**
 * Opens n clients with at most `concurrency` handshakes in flight; setup(ws, index) is called
 * before each one opens; `options` may be a function of the index. Calls done({sockets, failures,
 * seconds, errors}).
 */
function connectMany(url, n, concurrency, setup, done, options = CLIENT_OPTIONS) {
    const sockets = [];
    const errors = {};
    let next = 0;
    let settled = 0;
    let failures = 0;
    const started = now();
    function finishOne() {
        settled++;
        if (next < n) {
            openOne();
        } else if (settled === n) {
            done({ sockets, failures, errors, seconds: Number(now() - started) / 1e9 });
        }
    }
    function openOne() {
        const index = next++;
        const ws = new WebSocket(url, typeof options === "function" ? options(index) : options);
        let counted = false;
        setup(ws, index);
        ws.once("open", () => {
            if (counted) return;
            counted = true;
            sockets.push(ws);
            finishOne();
        });
        ws.on("error", (err) => {
            if (counted) return;
            counted = true;
            failures++;
            errors[err.message] = (errors[err.message] || 0) + 1;
            finishOne();
        });
    }
    if (n === 0) {
        done({ sockets, failures, errors, seconds: 0 });
        return;
    }
    for (let i = 0; i < Math.min(concurrency, n); i++) openOne();
}

function connectAll(url, n, concurrency, setup = () => {}, options = CLIENT_OPTIONS) {
    return new Promise((resolve) => connectMany(url, n, concurrency, setup, resolve, options));
}

/** Closes every socket (close handshake), resolving when all are closed or after timeoutMs. */
function closeAll(sockets, timeoutMs = 15000) {
    return new Promise((resolve) => {
        let open = 0;
        const started = now();
        const finish = () => {
            clearTimeout(timer);
            for (const ws of sockets) if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
            resolve({ seconds: Number(now() - started) / 1e9, stillOpen: open });
        };
        const timer = setTimeout(finish, timeoutMs);
        for (const ws of sockets) {
            if (ws.readyState === WebSocket.CLOSED) continue;
            open++;
            ws.once("close", () => {
                open--;
                if (open === 0) finish();
            });
            ws.close();
        }
        if (open === 0) finish();
    });
}

/** Sends `count` copies of `payload` on one socket in one corked batch. */
function sendBatch(ws, payload, count) {
    const socket = ws._socket;
    if (socket) socket.cork();
    for (let i = 0; i < count; i++) ws.send(payload, TEXT);
    if (socket) socket.uncork();
}

const largePayloads = new Map();

/** One payload per size and kind, built once: ASCII text, or binary bytes that are not UTF-8. */
function largePayload(size, binary) {
    const key = `${size}:${binary}`;
    if (!largePayloads.has(key)) largePayloads.set(key, Buffer.alloc(size, binary ? 0xa5 : 0x6d));
    return largePayloads.get(key);
}

/** True while a bounded run goes on: under `max`, and under `min` or `seconds` since t0. */
function within({ min, max, seconds }, done, t0) {
    return done < max && (done < min || Number(now() - t0) / 1e9 < seconds);
}

/** fn, called at most once: later calls do nothing. */
function once(fn) {
    let called = false;
    return (...args) => {
        if (called) return;
        called = true;
        fn(...args);
    };
}

function percentile(sorted, p) {
    return sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] : null;
}

/** Resolves true once predicate() holds (checked every 20 ms), false after timeoutMs. */
async function waitFor(predicate, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
        if (Date.now() > deadline) return false;
        await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return true;
}

const isOpen = (ws) => Boolean(ws) && ws.readyState === WebSocket.OPEN;

/** Once a second, GET url's {count} into onCount(count); returns stop(). No answer, no call. */
function pollCount(url, onCount) {
    let busy = false;
    const timer = setInterval(async () => {
        if (busy) return;
        busy = true;
        try {
            const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
            onCount((await response.json()).count);
        } catch (_) { /* Node-RED busy or gone: no progress */ }
        busy = false;
    }, 1000);
    return () => clearInterval(timer);
}

/**
 * One round against the flow's client connection (the "large" remote server): start(finish)
 * sends, and whatever ends the round calls finish(extra). Resolves with the window's figures
 * and `extra`; a closed connection or no progress for stallMs ends it as stalled. Waits for the
 * flow to connect (again: an earlier round may have lost the connection) for up to 15 s.
 */
async function remoteRound(remote, { pids, stallMs, progress }, start) {
    if (!await waitFor(() => isOpen(remote.latest), 15000)) return { error: "no connection from the flow" };
    const ws = remote.latest;
    return new Promise((resolve) => {
        const window = openWindow(pids);
        const finish = once((extra) => {
            stopWatch();
            remote.onMessage = null;
            ws.off("close", onClose);
            resolve(Object.assign(closeWindow(window, pids), { stalled: false }, extra));
        });
        const onClose = () => finish({ stalled: true, closedEarly: true });
        ws.once("close", onClose);
        const stopWatch = watchProgress(progress, stallMs, () => finish({ stalled: true }));
        start(finish, ws);
    });
}

/** Checks `progress()` every 200 ms; calls onStall() once it has not changed for stallMs. */
function watchProgress(progress, stallMs, onStall) {
    let last = progress();
    let since = Date.now();
    const timer = setInterval(() => {
        const value = progress();
        if (value !== last) {
            last = value;
            since = Date.now();
        } else if (Date.now() - since > stallMs) {
            clearInterval(timer);
            onStall();
        }
    }, 200);
    return () => clearInterval(timer);
}

/**
 * The connections bench/stretch.js holds open in this process: one entry per opened socket
 * ({ws, open, messages, pings}), what failed before opening (by message), how open ones closed
 * (by code), and the broadcast being counted (`expected` deliveries since holdArm).
 */
function newHeld() {
    return { entries: [], open: 0, settled: 0, failures: 0, errors: {}, closes: {}, delivered: 0, expected: 0,
        firstAt: 0, lastAt: 0, onDelivery: null };
}

const commands = {
    remotes: {},
    held: newHeld(),
    port: 0, // the last local port holdOpen bound

    /**
     * Retries a connection until one opens (the endpoint is served). Core leaves an upgrade
     * request for a path it does not serve (yet) unanswered, hence the short handshake timeout.
     */
    async probe({ url, timeoutMs = 30000 }) {
        const deadline = Date.now() + timeoutMs;
        let lastError = "";
        while (Date.now() < deadline) {
            const result = await connectAll(url, 1, 1, () => {}, PROBE_OPTIONS);
            if (result.sockets.length) {
                await closeAll(result.sockets);
                return { ok: true };
            }
            lastError = Object.keys(result.errors).join("; ");
            if (lastError.includes("ECONNREFUSED")) break; // Node-RED itself is gone
            await new Promise((resolve) => setTimeout(resolve, 100));
        }
        return { ok: false, error: lastError };
    },

    /** Scenario 1: `clients` clients each keeping `inflight` messages in flight to an echo. */
    async echo({ url, clients, inflight, size, warmup, count, pids, stallMs }) {
        const payload = payloadOf(size);
        const target = warmup + count;
        let sent = 0;
        let received = 0;
        let scheduled = false;
        let start = null;
        let finished = null;
        let closedEarly = 0;
        const state = [];
        return new Promise((resolve) => {
            const finish = (stalled) => {
                if (finished) return;
                finished = closeWindow(start || openWindow(pids), pids);
                stopWatch();
                Object.assign(finished, { sent, received, measured: Math.max(0, received - warmup), stalled,
                    lost: sent - received, closedEarly });
                closeAll(result.sockets).then(() => resolve(finished));
            };
            const flush = () => {
                scheduled = false;
                for (const c of state) {
                    const n = Math.min(c.deficit, target - sent);
                    if (n <= 0) continue;
                    c.deficit -= n;
                    sent += n;
                    sendBatch(c.ws, payload, n);
                }
            };
            let result;
            let stopWatch = () => {};
            connectAll(url, clients, clients, (ws, index) => {
                const c = { ws, deficit: 0 };
                state[index] = c;
                ws.on("message", () => {
                    received++;
                    c.deficit++;
                    if (received === warmup) start = openWindow(pids);
                    if (received === target) {
                        finish(false);
                    } else if (!scheduled) {
                        scheduled = true;
                        setImmediate(flush);
                    }
                });
                ws.on("close", () => { if (!finished) closedEarly++; });
            }).then((connected) => {
                result = connected;
                if (connected.failures) {
                    finished = { error: `connect failures: ${JSON.stringify(connected.errors)}` };
                    closeAll(connected.sockets).then(() => resolve(finished));
                    return;
                }
                if (warmup === 0) start = openWindow(pids);
                stopWatch = watchProgress(() => received, stallMs, () => finish(true));
                for (const c of state) {
                    sent += inflight;
                    sendBatch(c.ws, payload, inflight);
                }
            });
        });
    },

    /** Scenario 2: one client, strictly sequential round trips; latencies in µs. */
    async latency({ url, warmup, count, size, pids, stallMs }) {
        const payload = payloadOf(size);
        const connected = await connectAll(url, 1, 1);
        if (!connected.sockets.length) return { error: `connect failed: ${JSON.stringify(connected.errors)}` };
        const ws = connected.sockets[0];
        const samples = new Float64Array(count);
        let done = 0;
        let sentAt = 0n;
        let start = null;
        return new Promise((resolve) => {
            let finished = false;
            const finish = (stalled) => {
                if (finished) return;
                finished = true;
                stopWatch();
                const window = closeWindow(start || openWindow(pids), pids);
                const measured = Math.max(0, done - warmup);
                const sorted = Array.from(samples.subarray(0, measured)).sort((a, b) => a - b);
                const pct = (p) => percentile(sorted, p);
                Object.assign(window, { measured, stalled, p50: pct(0.5), p99: pct(0.99), p999: pct(0.999),
                    max: pct(1) });
                closeAll([ws]).then(() => resolve(window));
            };
            ws.on("message", () => {
                const t = now();
                if (done >= warmup) samples[done - warmup] = Number(t - sentAt) / 1000;
                done++;
                if (done === warmup) start = openWindow(pids);
                if (done === warmup + count) {
                    finish(false);
                    return;
                }
                sentAt = now();
                ws.send(payload, TEXT);
            });
            const stopWatch = watchProgress(() => done, stallMs, () => finish(true));
            if (warmup === 0) start = openWindow(pids);
            sentAt = now();
            ws.send(payload, TEXT);
        });
    },

    /**
     * Scenario 3: `clients` clients on the fan-out path; one text message "N" on the trigger
     * path makes the flow broadcast N messages. A warm-up broadcast first checks every client
     * is registered; then deliveries are counted from the trigger to the last delivery.
     * `fanoutUrl` may be a list (several Node-RED instances sharing the path through a
     * backplane): the clients are spread over them evenly, in that order. With `latencyRounds`,
     * that many single broadcasts follow, one at a time: for each URL, the p50 and p99 over the
     * rounds of the time from the trigger to the last client of that URL receiving it.
     */
    async broadcast({ fanoutUrl, triggerUrl, clients, messages, warmupMessages, concurrency, pids, stallMs,
        latencyRounds = 0 }) {
        const urls = [].concat(fanoutUrl);
        const counts = new Uint32Array(clients);
        const lastOfGroup = urls.map(() => 0n);
        let total = 0;
        let last = 0n;
        let expected = 0;
        let onComplete = null;
        let closedEarly = 0;
        let measuring = false;
        const connected = { sockets: [], failures: 0, errors: {}, seconds: 0 };
        let offset = 0;
        for (const [group, url] of urls.entries()) {
            const share = Math.floor(clients / urls.length) + (group < clients % urls.length ? 1 : 0);
            const base = offset;
            const part = await connectAll(url, share, concurrency, (ws, index) => {
                const at = base + index;
                ws.on("message", () => {
                    counts[at]++;
                    total++;
                    last = now();
                    lastOfGroup[group] = last;
                    if (total === expected && onComplete) onComplete();
                });
                ws.on("close", () => { if (measuring) closedEarly++; });
            });
            offset += share;
            connected.sockets.push(...part.sockets);
            connected.failures += part.failures;
            Object.assign(connected.errors, part.errors);
            connected.seconds += part.seconds;
        }
        const trigger = await connectAll(triggerUrl, 1, 1);
        const result = { connectSeconds: connected.seconds, connectFailures: connected.failures,
            connectErrors: connected.errors };
        if (!trigger.sockets.length || connected.failures) {
            result.error = `connect failures: ${JSON.stringify(Object.assign({}, connected.errors, trigger.errors))}`;
            await closeAll(connected.sockets.concat(trigger.sockets));
            return result;
        }
        const round = (n, wantWindow) => new Promise((resolve) => {
            counts.fill(0);
            total = 0;
            expected = connected.sockets.length * n;
            let stopWatch = () => {};
            let window = null;
            const sentAt = now();
            const finish = (stalled) => {
                if (!onComplete) return;
                onComplete = null;
                stopWatch();
                const out = wantWindow ? closeWindow(window, pids, last > window.t ? last : now()) : {};
                let clientsShort = 0;
                for (let i = 0; i < clients; i++) if (counts[i] < n) clientsShort++;
                const toLast = lastOfGroup.map((t) => Number(t - sentAt) / 1000);
                resolve(Object.assign(out, { delivered: total, expected, lost: expected - total, stalled,
                    clientsShort, toLast }));
            };
            onComplete = () => finish(false);
            if (wantWindow) window = openWindow(pids);
            trigger.sockets[0].send(String(n));
            stopWatch = watchProgress(() => total, stallMs, () => finish(true));
        });
        const warm = await round(warmupMessages, false);
        result.warmupClientsShort = warm.clientsShort;
        measuring = true;
        Object.assign(result, await round(messages, true));
        if (latencyRounds > 0) {
            const samples = urls.map(() => []);
            for (let i = 0; i < latencyRounds; i++) {
                const one = await round(1, false);
                if (one.lost) break;
                one.toLast.forEach((us, group) => samples[group].push(us));
                await new Promise((resolve) => setTimeout(resolve, 5));
            }
            const quantile = (q) => samples.map((list) => {
                const sorted = list.slice().sort((x, y) => x - y);
                return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] : null;
            });
            result.latencyToLastP50 = quantile(0.5);
            result.latencyToLastP99 = quantile(0.99);
        }
        measuring = false;
        result.closedEarly = closedEarly;
        result.groups = urls.length;
        await closeAll(connected.sockets.concat(trigger.sockets));
        return result;
    },

    /**
     * Scenario 4: n idle connections, `concurrency` handshakes at a time; memory per connection,
     * as RSS growth and as Node-RED's live heap after a full collection (liveHeapUrl).
     */
    async connscale({ url, n, concurrency, pids, settleMs, liveHeapUrl }) {
        const liveHeap = async () => (await (await fetch(liveHeapUrl)).json()).bytes;
        // A first round of connections, closed and settled, so that what the first connection of
        // a process allocates once (code, caches) is not counted per connection.
        const warm = await connectAll(url, Math.min(200, n), concurrency, () => {});
        await closeAll(warm.sockets, 30000);
        await new Promise((resolve) => setTimeout(resolve, settleMs));
        const before = snapshot(pids); // RSS first: the collection for the live figure shrinks it
        const heapBefore = await liveHeap();
        const window = openWindow(pids);
        let closedEarly = 0;
        let open = false;
        const connected = await connectAll(url, n, concurrency, (ws) => {
            ws.on("close", () => { if (open) closedEarly++; });
        });
        open = true;
        const result = closeWindow(window, pids);
        Object.assign(result, { opened: connected.sockets.length, failures: connected.failures,
            errors: connected.errors });
        await new Promise((resolve) => setTimeout(resolve, settleMs));
        const after = snapshot(pids);
        const heapAfter = await liveHeap();
        Object.assign(result, { rssMainBefore: before.mainRss, rssAllBefore: before.allRss,
            rssMainAfter: after.mainRss, rssAllAfter: after.allRss, heapBefore, heapAfter, closedEarly });
        open = false;
        const closed = await closeAll(connected.sockets, 30000);
        result.closeSeconds = closed.seconds;
        result.closeStillOpen = closed.stillOpen;
        return result;
    },

    /**
     * bench/stretch.js: opens `n` more connections to `url` from `localAddress`, `concurrency`
     * handshakes at a time, and keeps them (see newHeld). Resolves when every one has opened or
     * failed; holdStatus answers meanwhile. With `ports` ([first, last]) each connection binds
     * the next port of that range itself: with port 0 the kernel searches the port space of
     * every source address for a free one, which costs more the more are bound (at ~50,000 held
     * connections here it took most of a core and the connect rate fell from ~900/s to ~150/s).
     */
    async holdOpen({ url, n, concurrency, localAddress, ports = null }) {
        const held = this.held;
        // The port goes on from where the last call left it: a dropped connection's port waits out
        // TIME_WAIT.
        const options = ports ? () => {
            this.port = this.port >= ports[0] && this.port < ports[1] ? this.port + 1 : ports[0];
            return Object.assign({}, CLIENT_OPTIONS, { localAddress, localPort: this.port });
        } : Object.assign({}, CLIENT_OPTIONS, { localAddress });
        const r = await connectAll(url, n, concurrency, (ws) => {
            const entry = { ws, open: false, messages: 0, pings: 0 };
            ws.once("open", () => {
                entry.open = true;
                held.open++;
                held.settled++;
                held.entries.push(entry);
            });
            ws.on("error", (err) => {
                if (entry.open || entry.failed) return;
                entry.failed = true;
                held.settled++;
                held.failures++;
                held.errors[err.message] = (held.errors[err.message] || 0) + 1;
            });
            ws.on("message", () => {
                entry.messages++;
                held.delivered++;
                held.lastAt = monotonicUs();
                if (held.delivered === 1) held.firstAt = held.lastAt;
                if (held.onDelivery) held.onDelivery();
            });
            ws.on("ping", () => { entry.pings++; });
            ws.on("close", (code) => {
                if (!entry.open) return;
                entry.open = false;
                held.open--;
                held.closes[code] = (held.closes[code] || 0) + 1;
            });
        }, options);
        return { opened: r.sockets.length, failures: r.failures, errors: r.errors, seconds: r.seconds };
    },

    /** What is held: counts, failures and closes by kind, pings per connection, own RSS. */
    holdStatus({ minPings = 0 }) {
        const held = this.held;
        let pingsMin = Infinity;
        let pingsMax = 0;
        let belowPings = 0;
        for (const entry of held.entries) {
            if (!entry.open) continue;
            pingsMin = Math.min(pingsMin, entry.pings);
            pingsMax = Math.max(pingsMax, entry.pings);
            if (entry.pings < minPings) belowPings++;
        }
        return { opened: held.entries.length, open: held.open, settled: held.settled, failures: held.failures,
            errors: held.errors, closes: held.closes, pingsMin: held.open ? pingsMin : null, pingsMax, belowPings,
            rss: process.memoryUsage().rss };
    },

    /** Starts counting a broadcast of `messages` messages to every open connection. */
    holdArm({ messages }) {
        const held = this.held;
        for (const entry of held.entries) entry.messages = 0;
        held.delivered = 0;
        held.firstAt = 0;
        held.lastAt = 0;
        held.expected = held.open * messages;
        return { expected: held.expected };
    },

    /**
     * Waits for the armed broadcast: every delivery, or no new one for stallMs. Answers the
     * deliveries, the first and last one's time (monotonicUs) and the connections that got fewer.
     */
    async holdWait({ messages, stallMs }) {
        const held = this.held;
        if (held.delivered < held.expected) {
            await new Promise((resolve) => {
                const stop = watchProgress(() => held.delivered, stallMs, () => finish());
                const finish = () => {
                    stop();
                    held.onDelivery = null;
                    resolve();
                };
                held.onDelivery = () => { if (held.delivered >= held.expected) finish(); };
            });
        }
        const short = held.entries.filter((entry) => entry.open && entry.messages < messages).length;
        return { delivered: held.delivered, expected: held.expected, firstAt: held.firstAt, lastAt: held.lastAt,
            short };
    },

    /** Drops every held connection at once (no close handshake) and forgets them. */
    holdRelease() {
        const held = this.held;
        for (const entry of held.entries) entry.ws.terminate();
        const released = held.entries.length;
        this.held = newHeld();
        return { released };
    },

    /**
     * A remote server a flow's client connection connects to (scenario 5's "ingest", the large
     * client scenarios' "large"): keeps its latest connection and passes what arrives on it to
     * the running command's `onMessage`.
     */
    async remoteServer({ name }) {
        const server = new WebSocket.Server({ host: "127.0.0.1", port: 0, perMessageDeflate: false,
            maxPayload: LARGE_MAX_PAYLOAD });
        await new Promise((resolve) => server.once("listening", resolve));
        const state = { server, latest: null, connections: 0, onMessage: null };
        this.remotes[name] = state;
        server.on("connection", (ws) => {
            state.latest = ws;
            state.connections++;
            ws.on("message", (data, isBinary) => { if (state.onMessage) state.onMessage(data, isBinary); });
            ws.on("error", () => {});
        });
        return { port: server.address().port };
    },

    /** Waits for a new connection from the flow (after `connections` seen before the deploy). */
    async remoteWait({ name, after, timeoutMs }) {
        const remote = this.remotes[name];
        return { ok: await waitFor(() => remote.connections > after && isOpen(remote.latest), timeoutMs) };
    },

    remoteConnections({ name }) {
        return { connections: this.remotes[name].connections };
    },

    /** Scenario 5, part 2: streams `count` messages to the connected flow until "done:<count>". */
    async ingest({ count, size, countUrl, pids, stallMs, highWater }) {
        const remote = this.remotes.ingest;
        const ws = remote.latest;
        const payload = payloadOf(size);
        let sent = 0;
        let finished = false;
        let closedEarly = false;
        let lastCount = -1;
        return new Promise((resolve) => {
            const window = openWindow(pids);
            let sentSeconds = null;
            const finish = (extra) => {
                if (finished) return;
                finished = true;
                remote.onMessage = null;
                clearInterval(poller);
                const out = closeWindow(window, pids);
                Object.assign(out, { sent, sendSeconds: sentSeconds, closedEarly }, extra);
                resolve(out);
            };
            remote.onMessage = (data) => {
                const text = data.toString();
                if (!text.startsWith("done:")) return;
                const reported = Number(text.slice(5));
                finish({ received: reported, lost: count - reported, stalled: false });
            };
            ws.once("close", () => {
                closedEarly = true;
                finish({ received: lastCount, lost: lastCount >= 0 ? count - lastCount : null, stalled: true });
            });
            const pump = () => {
                if (finished || ws.readyState !== WebSocket.OPEN) return;
                while (sent < count && ws.bufferedAmount < highWater) {
                    const n = Math.min(512, count - sent);
                    sendBatch(ws, payload, n);
                    sent += n;
                }
                if (sent < count) {
                    ws._socket.once("drain", pump);
                } else {
                    sentSeconds = Number(now() - window.t) / 1e9;
                }
            };
            // Once a second, the flow's count: neither it nor `sent` moving for stallMs = stalled
            // (a server that stops reading leaves the sends waiting for a drain that never comes).
            let since = Date.now();
            let lastSent = 0;
            const poller = setInterval(async () => {
                if (finished) return;
                try {
                    const response = await fetch(countUrl, { signal: AbortSignal.timeout(2000) });
                    const { count: seen } = await response.json();
                    if (seen !== lastCount) {
                        lastCount = seen;
                        since = Date.now();
                    }
                } catch (_) { /* Node-RED busy or gone: counts as no progress */ }
                if (sent !== lastSent) {
                    lastSent = sent;
                    since = Date.now();
                }
                if (!finished && Date.now() - since > stallMs) {
                    finish({ received: lastCount, lost: lastCount >= 0 ? count - lastCount : null, stalled: true });
                }
            }, 1000);
            pump();
        });
    },

    /**
     * Large messages through a listener echo: one client keeps `inflight` messages of `size`
     * bytes (text or binary) in flight; `warmup` round trips first, then at least `min` and at
     * most `max` more, stopping once `seconds` have passed. Round trips in µs.
     */
    async largeEcho({ url, size, binary, inflight, warmup, min, max, seconds, pids, stallMs }) {
        const payload = largePayload(size, binary);
        const connected = await connectAll(url, 1, 1, () => {}, LARGE_OPTIONS);
        if (!connected.sockets.length) return { error: `connect failed: ${JSON.stringify(connected.errors)}` };
        const ws = connected.sockets[0];
        const options = { binary };
        const sentAt = [];
        const rtts = [];
        let sent = 0;
        let received = 0;
        let wrong = 0;
        let start = warmup ? null : openWindow(pids);
        return new Promise((resolve) => {
            const finish = once((extra) => {
                stopWatch();
                rtts.sort((a, b) => a - b);
                const window = Object.assign(closeWindow(start || openWindow(pids), pids), { sent, received,
                    measured: Math.max(0, received - warmup), wrong, lost: sent - received,
                    rttP50: percentile(rtts, 0.5), rttMax: percentile(rtts, 1), stalled: false }, extra);
                closeAll([ws]).then(() => resolve(window));
            });
            const more = () => sent < warmup || within({ min, max, seconds }, sent - warmup, start ? start.t : now());
            const send = () => {
                sentAt.push(now());
                sent++;
                ws.send(payload, options);
            };
            ws.on("message", (data, isBinary) => {
                const t = now();
                if (data.length !== size || isBinary !== binary) wrong++;
                const rtt = Number(t - sentAt.shift()) / 1000;
                received++;
                if (received > warmup) rtts.push(rtt);
                if (received === warmup) start = openWindow(pids);
                if (more()) send();
                else if (received === sent) finish({});
            });
            ws.on("close", () => finish({ stalled: true, closedEarly: true }));
            const stopWatch = watchProgress(() => received, stallMs, () => finish({ stalled: true }));
            for (let i = 0; i < inflight && more(); i++) send();
        });
    },

    /**
     * Large messages into a flow's client connection: after "bench:reset", pushes `size`-byte
     * messages as fast as the connection takes them (at most one message queued here beyond the
     * socket), within the budget, then "bench:end"; the flow answers with what it counted.
     * Progress: what was sent and the flow's count (GET countUrl), which goes on moving while
     * Node-RED works through what its side has already taken in.
     */
    async largeIngest({ size, binary, warmup, min, max, seconds, pids, stallMs, countUrl }) {
        const remote = this.remotes.large;
        const payload = largePayload(size, binary);
        const highWater = Math.max(size, MiB);
        const round = async (budget) => {
            let sent = 0;
            let counted = 0;
            const push = (finish, ws) => {
                remote.onMessage = (data, isBinary) => {
                    if (isBinary || data.length > 64) return;
                    const [, what, count, bytes] = data.toString().split(":");
                    if (what === "done") finish({ sent, received: Number(count), bytes: Number(bytes),
                        lost: sent - Number(count) });
                };
                ws.send("bench:reset");
                const t0 = now();
                const pump = () => {
                    if (ws.readyState !== WebSocket.OPEN) return;
                    while (within(budget, sent, t0) && ws.bufferedAmount < highWater) {
                        ws.send(payload, { binary });
                        sent++;
                    }
                    if (within(budget, sent, t0)) ws._socket.once("drain", pump);
                    else ws.send("bench:end");
                };
                pump();
            };
            const stopPolling = pollCount(countUrl, (count) => { counted = count; });
            try {
                return await remoteRound(remote, { pids, stallMs, progress: () => `${sent} ${counted}` }, push);
            } finally {
                stopPolling();
            }
        };
        if (warmup) {
            const warm = await round({ min: warmup, max: warmup, seconds: 0 });
            if (warm.error || warm.stalled) return Object.assign(warm, { warmup: true });
        }
        return round({ min, max, seconds });
    },

    /**
     * Large messages out of a flow's client connection: keeps `inflight` "bench:send" requests
     * open, each answered by one `size`-byte message from the flow, within the budget.
     */
    async largeEgress({ size, binary, inflight, warmup, min, max, seconds, pids, stallMs }) {
        const remote = this.remotes.large;
        const request = `bench:send:${size}:${binary ? "b" : "t"}`;
        const round = (budget) => {
            let asked = 0;
            let received = 0;
            let bytes = 0;
            let wrong = 0;
            return remoteRound(remote, { pids, stallMs, progress: () => received }, (finish, ws) => {
                const t0 = now();
                const ask = () => {
                    asked++;
                    ws.send(request);
                };
                remote.onMessage = (data, isBinary) => {
                    received++;
                    bytes += data.length;
                    if (data.length !== size || isBinary !== binary) wrong++;
                    if (within(budget, asked, t0)) ask();
                    else if (received === asked) {
                        finish({ sent: asked, received, bytes, wrong, lost: asked - received });
                    }
                };
                for (let i = 0; i < inflight && within(budget, asked, t0); i++) ask();
            });
        };
        if (warmup) {
            const warm = await round({ min: warmup, max: warmup, seconds: 0 });
            if (warm.error || warm.stalled) return Object.assign(warm, { warmup: true });
        }
        return round({ min, max, seconds });
    },
};

process.on("message", async ({ id, command, args }) => {
    try {
        const result = await commands[command].call(commands, args || {});
        process.send({ id, result });
    } catch (err) {
        process.send({ id, error: err.stack || String(err) });
    }
});
process.on("disconnect", () => process.exit(0));
