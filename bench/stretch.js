#!/usr/bin/env node
/**
 * Issue 13's stretch goal: many idle connections to one Node-RED, with the listener's server
 * heartbeat on and several workers holding the sockets, then a broadcast to all of them.
 *
 *   node bench/stretch.js [--n 100000] [--workers W] [--loadgens L] [--concurrency C]
 *                         [--step 10000] [--hb 30] [--rounds 3] [--messages 1] [--stall 60]
 *                         [--core] [--core-n 19000] [--core-only] [--kernel-ports] [--settings TEXT]
 *                         [--out bench/results/stretch.json]
 *
 * One real Node-RED (bench/lib/node-red.js) with `pyWebsocketWorkers: W` (default: one per 15,000
 * connections, so each worker stays well under a process's 20,000 fds here) and
 * bench/flows.js stretchFlow: /bench/fanout with a server heartbeat of --hb seconds and an in
 * node, the broadcast trigger (/bench/trigger: "N" broadcasts N 64-byte messages). L load
 * generators (bench/loadgen.js, default one per 15,000 connections), each from its own source
 * address (127.0.0.2, 127.0.0.3, ...) and binding its local ports itself, one after another in
 * the ephemeral range (~28,000 per address; --kernel-ports leaves the choice to the kernel, whose
 * search grows costly past ~50,000 bound ports), open their share in steps of --step
 * connections, all to 127.0.0.1, C handshakes in flight each (default: 500 / L, so that all of
 * them fit Node-RED's listen backlog of 511; beyond it the kernel drops SYNs, which the clients
 * send again after 1 s). Reported: connections reached, connects/s and CPU per step, failures
 * and closes by kind, RSS of Node-RED and of each worker before and after (and per connection), Node-RED's heap
 * after a full collection, --rounds broadcasts of --messages messages to every client (trigger to
 * last delivery, deliveries/s, medians), the heartbeat (every client pinged twice, i.e. its pong to
 * the first seen, and still open), and the kernel's TCP counters over the ramp (listen queue
 * overflows, SYN retransmits: what a backlog or somaxconn would cap silently).
 *
 * --core runs the same with core's nodes afterwards, to --core-n (core's Node-RED holds every
 * socket itself, so it stops near the 20,000-fd limit of a process); --core-only runs just that.
 * A step with no connection opened or failed for --stall seconds aborts the run with what was
 * reached. --settings adds settings.js properties (source text) to both Node-REDs. Every process
 * started here is stopped at the end, also on failure or a signal.
 */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const path = require("path");
const WebSocket = require("ws");
const flows = require("./flows");
const { NodeRed, delay, ROOT } = require("./lib/node-red");
const { startLoadgen } = require("./lib/loadgen-client");
const { median, fmt, table } = require("./lib/report");
const { fileLimits, cpuSeconds, rssBytes, fdCount, tcpCounters, sysctl, tcpSockstat, meminfoBytes, snapshot, childPids,
    monotonicUs } = require("./lib/proc");

const VENV = process.env.NODE_RED_PYTHON_VENV || path.join(ROOT, ".venv");
// Connections per worker and per load generator by default: well under a process's fd limit.
const PER_PROCESS = 15000;
// Past Node-RED's 5 s hold on every upgraded socket (inboundWebSocketTimeout), as connscale.
const SETTLE_MS = 6000;
// Handshakes in flight from all load generators together, by default: under Node's listen
// backlog (511), which Node-RED keeps.
const BACKLOG_SHARE = 500;
// Steps after the last one, for connections that failed in it.
const TOP_UPS = 2;
const KERNEL = ["ListenOverflows", "ListenDrops", "TCPReqQFullDrop", "TCPReqQFullDoCookies", "TCPSynRetrans",
    "TCPBacklogDrop", "AttemptFails", "EstabResets", "TCPAbortOnMemory"];
const SYSCTLS = ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_syncookies",
    "net.ipv4.ip_local_port_range", "net.netfilter.nf_conntrack_max", "fs.nr_open"];
const MiB = 1024 * 1024;

function parseArgs(argv) {
    const options = { n: 100000, workers: 0, loadgens: 0, concurrency: 0, step: 10000, hb: 30, rounds: 3, messages: 1,
        stall: 60, core: false, "core-n": 19000, "core-only": false, "kernel-ports": false, settings: "",
        out: path.join(__dirname, "results", "stretch.json") };
    for (let i = 0; i < argv.length; i++) {
        const name = argv[i].replace(/^--/, "");
        if (name === "help" || name === "h") {
            console.log("node bench/stretch.js [--n 100000] [--workers W] [--loadgens L] [--concurrency C] " +
                "[--step 10000] [--hb 30] [--rounds 3] [--messages 1] [--stall 60] [--core] [--core-n 19000] " +
                "[--core-only] [--kernel-ports] [--settings 'name: value, ...'] [--out FILE]");
            process.exit(0);
        }
        if (!(name in options)) throw new Error(`unknown argument ${argv[i]}`);
        if (typeof options[name] === "boolean") {
            options[name] = true;
            continue;
        }
        if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value`);
        if (typeof options[name] === "string") {
            options[name] = name === "out" ? path.resolve(argv[++i]) : argv[++i];
            continue;
        }
        options[name] = Number(argv[++i]);
        if (!(options[name] >= 0)) throw new Error(`${argv[i - 1]} takes a number >= 0`);
    }
    if (options["core-only"]) options.core = true;
    const largest = Math.max(options["core-only"] ? 0 : options.n, options.core ? options["core-n"] : 0);
    options.workers = options.workers || Math.min(16, Math.ceil(options.n / PER_PROCESS));
    options.loadgens = options.loadgens || Math.ceil(largest / PER_PROCESS);
    options.concurrency = options.concurrency || Math.max(1, Math.floor(BACKLOG_SHARE / options.loadgens));
    options.perSource = Math.ceil(largest / options.loadgens);
    if (options.loadgens > 250) throw new Error("at most 250 load generators (source addresses 127.0.0.2–251)");
    return options;
}

function log(text) {
    process.stderr.write(`[bench:stretch] ${text}\n`);
}

const sum = (list) => list.reduce((a, b) => a + b, 0);
const source = (i) => `127.0.0.${2 + i}`;
/** CPU seconds of the load generators, all together. */
const loadgenCpu = (lgs) => sum(lgs.map((lg) => cpuSeconds(lg.child.pid) || 0));
/** `total` split into `parts` shares that differ by at most one. */
const split = (total, parts) => Array.from({ length: parts }, (_, i) => Math.floor(total / parts) +
    (i < total % parts ? 1 : 0));

/** Error messages of the same kind, with their addresses and ports left out, added up. */
function kinds(maps) {
    const out = {};
    for (const map of maps) {
        for (const [message, count] of Object.entries(map || {})) {
            const kind = message.replace(/\b\d{1,3}(\.\d{1,3}){3}(:\d+)?/g, "<addr>");
            out[kind] = (out[kind] || 0) + count;
        }
    }
    return out;
}

/**
 * What stops here when a run stops: the load generators and Node-REDs still running. A signal
 * stops them all too, so that no process started here outlives this one.
 */
const live = { loadgens: new Set(), reds: new Set() };

async function stopLoadgens(lgs) {
    await Promise.all(lgs.map(async (lg) => {
        const child = lg.child;
        if (child.exitCode === null && child.signalCode === null) {
            const exited = new Promise((resolve) => child.once("exit", resolve));
            lg.stop();
            const timer = setTimeout(() => child.kill("SIGKILL"), 10000);
            await exited;
            clearTimeout(timer);
        }
        live.loadgens.delete(lg);
    }));
}

async function stopRed(nr) {
    await nr.stop();
    live.reds.delete(nr);
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.once(signal, () => {
        log(`${signal}: stopping every process started here`);
        for (const lg of live.loadgens) lg.child.kill("SIGKILL");
        Promise.all([...live.reds].map((nr) => nr.stop())).finally(() => process.exit(130));
    });
}

/** The Node-RED listener's accept queue: [now, capacity] from `ss` (Recv-Q, Send-Q), or null. */
function acceptQueue(port) {
    try {
        // "state listening": plain -l also asks for closed sockets, for which the kernel walks
        // every connection (most of a core at 100,000 when sampled twice a second).
        const line = childProcess.execFileSync("ss", ["-Htn", "state", "listening", `sport = :${port}`]).toString()
            .trim().split("\n")[0];
        const [recvQ, sendQ] = line.split(/\s+/);
        return [Number(recvQ), Number(sendQ)];
    } catch (_) {
        return null;
    }
}

/**
 * RSS of Node-RED and of each worker, their fds, Node-RED's heap after a full collection (null
 * when Node-RED does not answer: core's at its fd limit accepts no HTTP connection either), the
 * load generators' RSS, the kernel's sockets and slab.
 */
async function memory(nr, pids, lgs) {
    const out = { main: rssBytes(pids.main), workers: pids.children.map(rssBytes), mainFds: fdCount(pids.main),
        workerFds: pids.children.map(fdCount), heap: null };
    try {
        const heap = await nr.api("GET", flows.LIVE_HEAP_URL);
        if (heap.status === 200) out.heap = heap.body.bytes;
    } catch (_) { /* no answer: left out */ }
    out.loadgens = (await statuses(lgs)).map((s) => s.rss);
    out.sockstat = tcpSockstat();
    out.slab = meminfoBytes("Slab");
    return out;
}

function statuses(lgs, minPings = 0) {
    return Promise.all(lgs.map((lg) => lg.call("holdStatus", { minPings })));
}

/**
 * Resolves with `work`, or rejects once no connection of any load generator has opened or
 * failed for `stallSeconds`; samples the accept queue into `queue` meanwhile.
 */
function watched(work, lgs, stallSeconds, port, queue, what) {
    return new Promise((resolve, reject) => {
        let last = -1;
        let since = Date.now();
        let tick = 0;
        let busy = false;
        const timer = setInterval(async () => {
            const q = acceptQueue(port);
            if (q) {
                queue.peak = Math.max(queue.peak, q[0]);
                queue.capacity = q[1];
            }
            if (tick++ % 4 || busy) return;
            busy = true;
            try {
                const settled = sum((await statuses(lgs)).map((s) => s.settled));
                if (settled !== last) {
                    last = settled;
                    since = Date.now();
                } else if (Date.now() - since > stallSeconds * 1000) {
                    clearInterval(timer);
                    reject(new Error(`${what}: stalled, no connection opened or failed for ${stallSeconds} s ` +
                        `(${settled} settled so far)`));
                }
            } catch (_) { /* a load generator gone: the work itself fails */ }
            busy = false;
        }, 500);
        work.then((value) => {
            clearInterval(timer);
            resolve(value);
        }, (err) => {
            clearInterval(timer);
            reject(err);
        });
    });
}

/**
 * Opens `n` connections in steps of options.step; each step's figures go to record.steps. What
 * failed in a step is tried again in the next; up to TOP_UPS more steps make up for the last one's.
 */
async function ramp(lgs, url, n, options, pids, port, record) {
    let total = 0;
    let topUps = 0;
    const q = acceptQueue(port);
    record.acceptQueue = { peak: q ? q[0] : 0, capacity: q ? q[1] : null };
    for (let to = Math.min(options.step, n); total < n; to = Math.min(to + options.step, n)) {
        const last = record.steps[record.steps.length - 1];
        if (to === n && last && last.target === n && ++topUps > TOP_UPS) break;
        const want = to - total;
        const shares = split(want, lgs.length);
        const t0 = Date.now();
        const s0 = snapshot(pids);
        const l0 = loadgenCpu(lgs);
        const results = await watched(Promise.all(lgs.map((lg, i) => (shares[i]
            ? lg.call("holdOpen", { url, n: shares[i], concurrency: options.concurrency, localAddress: source(i),
                ports: options.ports })
            : { opened: 0, failures: 0, errors: {} }))), lgs, options.stall, port, record.acceptQueue,
        `step to ${to.toLocaleString("en-US")}`);
        const seconds = (Date.now() - t0) / 1000;
        const s1 = snapshot(pids);
        const opened = sum(results.map((r) => r.opened));
        total += opened;
        const step = { to: total, target: to, opened, failures: sum(results.map((r) => r.failures)),
            errors: kinds(results.map((r) => r.errors)), seconds, rate: opened / seconds,
            cpuMain: (100 * (s1.main - s0.main)) / seconds,
            cpuWorkers: (100 * ((s1.all - s1.main) - (s0.all - s0.main))) / seconds,
            cpuLoadgens: (100 * (loadgenCpu(lgs) - l0)) / seconds,
            // Node-RED and the workers together, per connection opened (µs).
            cpuPerConnection: opened ? ((s1.all - s0.all) / opened) * 1e6 : null };
        record.steps.push(step);
        log(`  ${total.toLocaleString("en-US")} open: ${step.rate.toFixed(0)}/s over ${seconds.toFixed(1)} s, ` +
            `CPU Node-RED ${step.cpuMain.toFixed(0)} %, workers ${step.cpuWorkers.toFixed(0)} %, ` +
            `load generators ${step.cpuLoadgens.toFixed(0)} %` +
            (step.failures ? `, ${step.failures} failed: ${JSON.stringify(step.errors)}` : ""));
        if (opened < want / 2) {
            record.stopped = `the step to ${to.toLocaleString("en-US")} opened ${opened} of ${want}`;
            break;
        }
    }
    return total;
}

/** `rounds` broadcasts of `messages` messages through /bench/trigger, one after another. */
async function broadcasts(lgs, trigger, pids, options) {
    const out = [];
    for (let r = 0; r < options.rounds; r++) {
        await Promise.all(lgs.map((lg) => lg.call("holdArm", { messages: options.messages })));
        const s0 = snapshot(pids);
        const l0 = loadgenCpu(lgs);
        const t0 = monotonicUs();
        trigger.send(String(options.messages));
        const waits = await Promise.all(lgs.map((lg) => lg.call("holdWait", { messages: options.messages,
            stallMs: options.stall * 1000 })));
        const s1 = snapshot(pids);
        const delivered = sum(waits.map((w) => w.delivered));
        const last = Math.max(...waits.map((w) => w.lastAt));
        const firsts = waits.map((w) => w.firstAt).filter(Boolean);
        const seconds = (last - t0) / 1e6;
        const round = { delivered, expected: sum(waits.map((w) => w.expected)), short: sum(waits.map((w) => w.short)),
            seconds, rate: delivered / seconds, firstMs: firsts.length ? (Math.min(...firsts) - t0) / 1000 : null,
            cpuMain: s1.main - s0.main, cpuWorkers: (s1.all - s1.main) - (s0.all - s0.main),
            cpuLoadgens: loadgenCpu(lgs) - l0 };
        out.push(round);
        log(`  broadcast ${r + 1}: ${delivered.toLocaleString("en-US")} of ${round.expected.toLocaleString("en-US")} ` +
            `in ${(seconds * 1000).toFixed(0)} ms (first after ${fmt(round.firstMs)} ms), ` +
            `${round.rate.toFixed(0)} deliveries/s; CPU s Node-RED ${round.cpuMain.toFixed(2)}, workers ` +
            `${round.cpuWorkers.toFixed(2)}, load generators ${round.cpuLoadgens.toFixed(2)}`);
        await delay(1000);
    }
    return out;
}

/**
 * Waits until every open client has had `pings` pings (the second one comes only if the worker
 * saw the pong to the first) or (pings + 0.7) heartbeat intervals have passed.
 */
async function heartbeat(lgs, hb, pings = 2) {
    const started = Date.now();
    const deadline = started + (pings + 0.7) * hb * 1000;
    let list;
    for (;;) {
        list = await statuses(lgs, pings);
        if (sum(list.map((s) => s.belowPings)) === 0 || Date.now() > deadline) break;
        await delay(2000);
    }
    return { seconds: (Date.now() - started) / 1000, open: sum(list.map((s) => s.open)),
        below: sum(list.map((s) => s.belowPings)), pingsMin: Math.min(...list.map((s) => s.pingsMin ?? Infinity)),
        pingsMax: Math.max(...list.map((s) => s.pingsMax)), closes: kinds(list.map((s) => s.closes)) };
}

function openTrigger(url) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 30000 });
        ws.once("open", () => resolve(ws));
        ws.once("error", (err) => reject(new Error(`the trigger's connection failed: ${err.message}`)));
    });
}

async function waitForWorkers(nr, workers) {
    const deadline = Date.now() + 60000;
    while (childPids(nr.pid).length < workers) {
        if (Date.now() > deadline) throw new Error(`${childPids(nr.pid).length} of ${workers} workers after 60 s`);
        await delay(200);
    }
}

/** The fd limit to start a process with (ulimit -n) so that it may hold `needed`: 0 = as it is. */
function limitFor(needed, [soft, hard]) {
    if (needed > hard) log(`WARNING: ${needed} fds wanted, the hard limit is ${hard}`);
    return soft >= needed ? 0 : Math.min(needed, hard);
}

async function runSetup(impl, n, options, limits) {
    const ours = impl === "ours";
    const record = { impl, target: n, workers: ours ? options.workers : 0, loadgens: options.loadgens,
        messages: options.messages, steps: [],
        problems: [] };
    const shares = split(n, options.loadgens);
    const lgs = [];
    for (let i = 0; i < options.loadgens; i++) {
        const lg = startLoadgen(limitFor(shares[i] + 512, limits));
        lgs.push(lg);
        live.loadgens.add(lg);
    }
    const nr = new NodeRed({ env: { NODE_RED_PYTHON_VENV: VENV },
        fileLimit: limitFor((ours ? Math.ceil(n / options.workers) : n) + 512, limits),
        settings: [ours ? `pyWebsocketWorkers: ${options.workers}` : "", options.settings].filter(Boolean)
            .join(", ") });
    live.reds.add(nr);
    let trigger = null;
    let pids = null;
    let mark = 0;
    try {
        await nr.start();
        mark = nr.output.length;
        const nodes = flows.stretchFlow(options.hb);
        await nr.deploy(ours ? flows.toOurs(nodes) : nodes);
        const url = `ws://127.0.0.1:${nr.port}${flows.PATHS.fanout}`;
        const probe = await lgs[0].call("probe", { url, timeoutMs: 60000 });
        if (!probe.ok) throw new Error(`listener never served: ${probe.error}`);
        if (ours) await waitForWorkers(nr, options.workers);
        // A first round, opened and dropped, so that what a process allocates once is not counted.
        await Promise.all(lgs.map((lg, i) => lg.call("holdOpen", { url, n: 100, concurrency: 50,
            localAddress: source(i), ports: options.ports })));
        await Promise.all(lgs.map((lg) => lg.call("holdRelease")));
        await delay(SETTLE_MS);
        pids = nr.pids();
        record.pids = pids;
        record.before = await memory(nr, pids, lgs);
        record.sysctls = Object.fromEntries(SYSCTLS.map((name) => [name, sysctl(name)]));
        const kernelBefore = tcpCounters();
        log(`${impl}: Node-RED pid ${pids.main}, workers ${pids.children.join(" ") || "–"}; ramp to ` +
            `${n.toLocaleString("en-US")} from ${options.loadgens} load generators ` +
            `(${options.concurrency} handshakes in flight each)`);
        const began = Date.now();
        record.reached = await ramp(lgs, url, n, options, pids, nr.port, record);
        record.rampSeconds = (Date.now() - began) / 1000;
        const kernelAfter = tcpCounters();
        record.kernel = Object.fromEntries(KERNEL.map((name) => [name, kernelAfter[name] - kernelBefore[name]]));
        await delay(SETTLE_MS);
        record.after = await memory(nr, pids, lgs);
        trigger = await openTrigger(`ws://127.0.0.1:${nr.port}${flows.PATHS.trigger}`);
        record.broadcasts = await broadcasts(lgs, trigger, pids, options);
        if (ours && options.hb > 0) {
            log(`  heartbeat: waiting for two pings to every client (every ${options.hb} s) …`);
            record.heartbeat = await heartbeat(lgs, options.hb);
        }
    } catch (err) {
        record.error = err.message.split("\n")[0];
        log(`${impl}: ${record.error}`);
    }
    try {
        const list = await statuses(lgs);
        record.end = { open: sum(list.map((s) => s.open)), opened: sum(list.map((s) => s.opened)),
            failures: sum(list.map((s) => s.failures)), errors: kinds(list.map((s) => s.errors)),
            closes: kinds(list.map((s) => s.closes)) };
        if (pids && nr.alive()) record.final = await memory(nr, pids, lgs);
    } catch (err) {
        record.problems.push(`no final status: ${err.message.split("\n")[0]}`);
    }
    if (trigger) trigger.terminate();
    if (!nr.alive()) record.problems.push(`Node-RED exited (${JSON.stringify(await nr.exited)})`);
    else if (pids && childPids(nr.pid).join() !== pids.children.join()) {
        record.problems.push(`workers changed during the run: ${pids.children} → ${childPids(nr.pid)}`);
    }
    await stopLoadgens(lgs);
    await delay(2000); // the workers see their clients go before Node-RED is stopped
    record.problems.push(...nr.problems(mark));
    await stopRed(nr);
    return record;
}

const kib = (bytes) => (bytes / 1024).toFixed(2);
const mib = (bytes) => (bytes / MiB).toFixed(0);
const num = (value) => Math.round(value).toLocaleString("en-US");

function describe(r) {
    const lines = [`\n== ${r.impl}: ${r.workers ? `${r.workers} workers` : "core's nodes"}, ` +
        `${r.loadgens} load generators, target ${num(r.target)} ==`];
    if (r.error) lines.push(`ABORTED: ${r.error}`);
    if (r.stopped) lines.push(`stopped: ${r.stopped}`);
    lines.push(`reached: ${num(r.reached || 0)} open (${num(r.end ? r.end.open : 0)} still open at the end), ` +
        `ramp ${(r.rampSeconds || 0).toFixed(1)} s`);
    lines.push("", table(["connections", "step s", "connects/s", "failed", "CPU % Node-RED", "workers",
        "load generators", "Node-RED + workers µs/connection"], r.steps.map((s) => [num(s.to), s.seconds.toFixed(1),
        num(s.rate), s.failures, s.cpuMain.toFixed(0), s.cpuWorkers.toFixed(0), s.cpuLoadgens.toFixed(0),
        fmt(s.cpuPerConnection)])));
    if (r.end) {
        lines.push("", `failures by kind: ${JSON.stringify(r.end.errors)}`,
            `closes after opening, by code: ${JSON.stringify(r.end.closes)}`);
    }
    if (r.before && r.after && r.reached) {
        const n = r.reached;
        const workersBefore = sum(r.before.workers);
        const workersAfter = sum(r.after.workers);
        lines.push("", `memory (RSS) before → after the ramp (+${SETTLE_MS / 1000} s), per connection:`,
            `  Node-RED ${mib(r.before.main)} → ${mib(r.after.main)} MiB: ` +
                `${kib((r.after.main - r.before.main) / n)} KiB`,
            ...r.after.workers.map((w, i) => `  worker ${i + 1} ${mib(r.before.workers[i])} → ${mib(w)} MiB, ` +
                `${r.after.workerFds[i]} fds`),
            r.workers ? `  workers together ${mib(workersBefore)} → ${mib(workersAfter)} MiB: ` +
                `${kib((workersAfter - workersBefore) / n)} KiB` : "  (no workers)",
            `  Node-RED + workers: ${kib((r.after.main + workersAfter - r.before.main - workersBefore) / n)} KiB`,
            r.after.heap === null ? "  Node-RED's heap: no answer from Node-RED"
                : `  Node-RED's heap after a full collection: ${mib(r.before.heap)} → ${mib(r.after.heap)} MiB: ` +
                `${kib((r.after.heap - r.before.heap) / n)} KiB`,
            `  load generators: ${mib(sum(r.before.loadgens))} → ${mib(sum(r.after.loadgens))} MiB; ` +
                `kernel TCP sockets in use ${num(r.after.sockstat.inuse || 0)}, ` +
                `their buffers ${num((r.after.sockstat.mem || 0) * 4)} KiB`,
            `  kernel slab (whole machine, both ends of every connection) ${mib(r.before.slab)} → ` +
                `${mib(r.after.slab)} MiB: ${kib((r.after.slab - r.before.slab) / n)} KiB`);
    }
    if (r.final) {
        lines.push(`at the end: Node-RED ${mib(r.final.main)} MiB, ` +
            `workers ${r.final.workers.map(mib).join(", ") || "–"} MiB`);
    }
    if (r.broadcasts && r.broadcasts.length) {
        const m = (key) => median(r.broadcasts.map((b) => b[key]).filter((v) => v !== null));
        lines.push("", `broadcast of ${r.messages} × 64 B to every client, ${r.broadcasts.length} rounds, medians: ` +
            `${num(m("delivered"))} of ${num(m("expected"))} delivered, ` +
            `trigger → last delivery ${(m("seconds") * 1000).toFixed(0)} ms ` +
            `(first after ${fmt(m("firstMs"))} ms), ${num(m("rate"))} deliveries/s ` +
            `(rounds: ${r.broadcasts.map((b) => `${(b.seconds * 1000).toFixed(0)} ms`).join(", ")})`);
        if (r.broadcasts.some((b) => b.short)) {
            lines.push(`  clients short: ${r.broadcasts.map((b) => b.short).join(", ")}`);
        }
    }
    if (r.heartbeat) {
        const h = r.heartbeat;
        lines.push(`heartbeat: after ${h.seconds.toFixed(0)} s more, ${num(h.open)} open, pings per client ` +
            `${h.pingsMin}–${h.pingsMax}, ${h.below} with fewer than 2; closes: ${JSON.stringify(h.closes)}`);
    }
    if (r.kernel) {
        lines.push("", `kernel over the ramp (system-wide): ${JSON.stringify(r.kernel)}`,
            `accept queue of Node-RED's port: peak ${r.acceptQueue.peak} of ${r.acceptQueue.capacity} ` +
            "(sampled every 0.5 s); " +
            `sysctls ${JSON.stringify(r.sysctls)}`);
    }
    if (r.problems.length) {
        lines.push("", `log / problems (${r.problems.length}):`, ...r.problems.slice(0, 10).map((p) => `  ${p}`));
    }
    return lines.join("\n");
}

async function main() {
    const options = parseArgs(process.argv.slice(2));
    if (!fs.existsSync(path.join(VENV, "bin", "python"))) {
        throw new Error(`no Python venv at ${VENV}: run \`node scripts/run-python.js -c pass\` first`);
    }
    const limits = fileLimits();
    const [low, high] = (sysctl("net.ipv4.ip_local_port_range") || "32768 60999").split(" ").map(Number);
    options.ports = options["kernel-ports"] ? null : [low, high];
    if (options.perSource > high - low) {
        throw new Error(`${options.perSource} connections per source address, more than the ${high - low} ephemeral ports: ` +
            "raise --loadgens");
    }
    const began = Date.now();
    const runs = [];
    const plan = (options["core-only"] ? [] : [["ours", options.n]])
        .concat(options.core ? [["core", options["core-n"]]] : []);
    for (const [impl, n] of plan) {
        log(`${impl}: to ${n.toLocaleString("en-US")} connections …`);
        runs.push(await runSetup(impl, n, options, limits));
    }
    console.log(`stretch: ${((Date.now() - began) / 1000).toFixed(0)} s, fd limits ${limits.join("/")}, ` +
        `options ${JSON.stringify(Object.assign({}, options, { out: undefined }))}`);
    for (const r of runs) console.log(describe(r));
    fs.mkdirSync(path.dirname(options.out), { recursive: true });
    fs.writeFileSync(options.out, JSON.stringify({ options, runs }, null, 2) + "\n");
    console.log(`\nresults: ${path.relative(process.cwd(), options.out)}`);
    if (runs.some((r) => r.error)) process.exitCode = 1;
}

main().catch(async (err) => {
    console.error(err.stack || String(err));
    for (const lg of live.loadgens) lg.child.kill("SIGKILL");
    await Promise.all([...live.reds].map((nr) => nr.stop()));
    process.exit(1);
});
