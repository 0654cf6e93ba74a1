/**
 * The load generator: a separate process (forked by bench/run.js, commands over the IPC channel)
 * driving real `ws` clients against Node-RED on 127.0.0.1, and a `ws` server for client-mode
 * ingest. Sends are batched per event-loop turn with the socket corked; no per-message promises
 * or timers. Every command reports its window's duration, the Node-RED (and worker) CPU seconds
 * from /proc, and the load generator's own CPU time (process.cpuUsage).
 */
"use strict";

const WebSocket = require("ws");
const { snapshot } = require("./lib/proc");

const CLIENT_OPTIONS = { perMessageDeflate: false, handshakeTimeout: 30000 };
const PROBE_OPTIONS = { perMessageDeflate: false, handshakeTimeout: 500 };
const TEXT = { binary: false };

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
 * before each one opens. Calls done({sockets, failures, seconds, errors}).
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
        const ws = new WebSocket(url, options);
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

const commands = {
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
                const pct = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1,
                    Math.ceil(p * sorted.length) - 1)] : null);
                Object.assign(window, { measured, stalled, p50: pct(0.5), p99: pct(0.99), p999: pct(0.999),
                    max: sorted.length ? sorted[sorted.length - 1] : null });
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
     */
    async broadcast({ fanoutUrl, triggerUrl, clients, messages, warmupMessages, concurrency, pids, stallMs }) {
        const counts = new Uint32Array(clients);
        let total = 0;
        let last = 0n;
        let expected = 0;
        let onComplete = null;
        let closedEarly = 0;
        let measuring = false;
        const connected = await connectAll(fanoutUrl, clients, concurrency, (ws, index) => {
            ws.on("message", () => {
                counts[index]++;
                total++;
                last = now();
                if (total === expected && onComplete) onComplete();
            });
            ws.on("close", () => { if (measuring) closedEarly++; });
        });
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
            const finish = (stalled) => {
                if (!onComplete) return;
                onComplete = null;
                stopWatch();
                const out = wantWindow ? closeWindow(window, pids, last > window.t ? last : now()) : {};
                let clientsShort = 0;
                for (let i = 0; i < clients; i++) if (counts[i] < n) clientsShort++;
                resolve(Object.assign(out, { delivered: total, expected, lost: expected - total, stalled,
                    clientsShort }));
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
        measuring = false;
        result.closedEarly = closedEarly;
        await closeAll(connected.sockets.concat(trigger.sockets));
        return result;
    },

    /** Scenario 4: n idle connections, `concurrency` handshakes at a time; memory per connection. */
    async connscale({ url, n, concurrency, pids, settleMs }) {
        const before = snapshot(pids);
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
        Object.assign(result, { rssMainBefore: before.mainRss, rssAllBefore: before.allRss,
            rssMainAfter: after.mainRss, rssAllAfter: after.allRss, closedEarly });
        open = false;
        const closed = await closeAll(connected.sockets, 30000);
        result.closeSeconds = closed.seconds;
        result.closeStillOpen = closed.stillOpen;
        return result;
    },

    /** Scenario 5, part 1: the remote server the flow's client config connects to. */
    async ingestServer() {
        const server = new WebSocket.Server({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
        await new Promise((resolve) => server.once("listening", resolve));
        this.ingestState = { server, latest: null, connections: 0, onDone: null };
        server.on("connection", (ws) => {
            this.ingestState.latest = ws;
            this.ingestState.connections++;
            ws.on("message", (data) => {
                const text = data.toString();
                if (text.startsWith("done:") && this.ingestState.onDone) this.ingestState.onDone(Number(text.slice(5)));
            });
            ws.on("error", () => {});
        });
        return { port: server.address().port };
    },

    /** Waits for a new connection from the flow (after `connections` seen before the deploy). */
    async ingestWait({ after, timeoutMs }) {
        const deadline = Date.now() + timeoutMs;
        while (Date.now() < deadline) {
            const { latest, connections } = this.ingestState;
            if (connections > after && latest && latest.readyState === WebSocket.OPEN) return { ok: true };
            await new Promise((resolve) => setTimeout(resolve, 20));
        }
        return { ok: false };
    },

    ingestConnections() {
        return { connections: this.ingestState.connections };
    },

    /** Scenario 5, part 2: streams `count` messages to the connected flow until "done:<count>". */
    async ingest({ count, size, countUrl, pids, stallMs, highWater }) {
        const ws = this.ingestState.latest;
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
                this.ingestState.onDone = null;
                clearInterval(poller);
                const out = closeWindow(window, pids);
                Object.assign(out, { sent, sendSeconds: sentSeconds, closedEarly }, extra);
                resolve(out);
            };
            this.ingestState.onDone = (reported) => finish({ received: reported, lost: count - reported, stalled: false });
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
