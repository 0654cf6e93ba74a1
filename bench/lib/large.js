/**
 * The large-message scenarios (issue 9): 64 KiB, 1 MiB and 16 MiB messages, text and binary,
 * through a listener (handoff, one message or a few in flight; relay), and through a client
 * connection (ingest from and egress to a remote `ws` server in the load generator; egress with
 * one request or a few in flight).
 *
 * Each scenario runs its cases (size × kind) one after another on one deployed flow, each within
 * a budget: `warmup` messages, then at least `min` and at most `max` measured ones, stopping once
 * `seconds` have passed. During each case the peak RSS of Node-RED and of the worker is read.
 */
"use strict";

const { PATHS, LARGE_COUNT_URL } = require("../flows");
const { rssBytes, peakRssBytes, resetPeakRss } = require("./proc");

const KiB = 1024;
const MiB = 1024 * KiB;

const LARGE_SIZES = { "64k": 64 * KiB, "1m": MiB, "16m": 16 * MiB };
const SIZE_LABELS = { "64k": "64 KiB", "1m": "1 MiB", "16m": "16 MiB" };
const KINDS = ["text", "binary"];
const INFLIGHT = 4;
// A 16 MiB round trip took ~1.2 s in relay mode before any work on large messages.
const STALL_MS = 30000;

const BUDGETS = {
    full: { "64k": { warmup: 20, min: 50, max: 5000, seconds: 1.5 },
        "1m": { warmup: 4, min: 10, max: 500, seconds: 1.5 },
        "16m": { warmup: 2, min: 4, max: 40, seconds: 2 } },
    quick: { "64k": { warmup: 10, min: 20, max: 1000, seconds: 0.5 },
        "1m": { warmup: 2, min: 5, max: 100, seconds: 0.5 },
        "16m": { warmup: 1, min: 2, max: 10, seconds: 0.5 } },
};

const RSS_FIGURES = [
    { metric: "rssMain", label: "peak RSS Node-RED (MiB)", better: "lower" },
    { metric: "rssWorker", label: "peak RSS worker (MiB)", better: "lower" },
    { metric: "rssWorkerGrowth", label: "worker RSS growth to peak (MiB)", better: "lower" },
    { metric: "rssAll", label: "peak RSS Node-RED + worker (MiB)", better: "lower" },
];
const RATE = { metric: "rate", label: "MiB/s", better: "higher" };
const CPU = { metric: "cpu", label: "CPU Node-RED + worker (ms/MiB)", better: "lower" };
const RTT = { metric: "rtt", label: "round trip p50 (ms)", better: "lower" };

/**
 * Peak RSS of Node-RED and of its workers over one case: the kernel's own peak (VmHWM, reset
 * at the start), and a 20 ms sample as the fallback where the reset is not allowed.
 */
function trackPeaks(pids) {
    const all = [pids.main].concat(pids.children);
    const exact = all.map(resetPeakRss).every(Boolean);
    const sampled = new Map(all.map((pid) => [pid, rssBytes(pid) || 0]));
    const base = new Map(sampled);
    const timer = setInterval(() => {
        for (const pid of all) sampled.set(pid, Math.max(sampled.get(pid), rssBytes(pid) || 0));
    }, 20);
    return () => {
        clearInterval(timer);
        const peak = (pid) => Math.max(sampled.get(pid), (exact && peakRssBytes(pid)) || 0);
        const sum = (pidList, f) => pidList.reduce((total, pid) => total + f(pid), 0);
        const workers = pids.children;
        return { exact, main: peak(pids.main), mainBase: base.get(pids.main),
            workers: workers.length ? sum(workers, peak) : null,
            workersBase: workers.length ? sum(workers, (pid) => base.get(pid)) : null };
    };
}

/** `run` for one large scenario: every selected case, each with its own peak RSS. */
function runCases(command, extra, metrics) {
    return async ({ nr, loadgen, wsBase, pids, size: budgets, cases }) => {
        const figures = {};
        const problems = [];
        const windows = {};
        const caseLog = [];
        for (const { size, kind } of cases) {
            const key = caseKey(size, kind);
            const mark = nr.output.length;
            const stop = trackPeaks(pids);
            let r;
            try {
                r = await loadgen(command, Object.assign({ size: LARGE_SIZES[size], binary: kind === "binary",
                    pids, stallMs: STALL_MS }, budgets[size], extra({ wsBase, nr })));
            } catch (err) {
                r = { error: err.message.split("\n")[0] };
            }
            r.peaks = stop();
            windows[key] = r;
            const own = [];
            if (r.error) own.push(r.error);
            if (r.stalled) {
                own.push(`stalled${r.closedEarly ? " (connection closed)" : ""}${r.warmup ? " in warm-up" : ""}`);
            }
            if (r.lost) own.push(`${r.lost} of ${r.sent} lost`);
            if (r.wrong) own.push(`${r.wrong} arrived with the wrong size or type`);
            problems.push(...own.map((text) => `${key}: ${text}`));
            const ok = !r.error && !r.stalled;
            const mib = ((r.measured !== undefined ? r.measured : r.received) * LARGE_SIZES[size]) / MiB;
            const { peaks } = r;
            const values = {
                rate: ok && r.seconds > 0 ? mib / r.seconds : null,
                rtt: ok && r.rttP50 ? r.rttP50 / 1000 : null,
                cpu: ok && mib > 0 ? (r.cpuAll * 1000) / mib : null,
                rssMain: peaks.main / MiB,
                rssWorker: peaks.workers === null ? null : peaks.workers / MiB,
                rssWorkerGrowth: peaks.workers === null ? null : (peaks.workers - peaks.workersBase) / MiB,
                rssAll: (peaks.main + (peaks.workers || 0)) / MiB,
            };
            for (const metric of metrics) figures[`${key}:${metric}`] = values[metric];
            await new Promise((resolve) => setTimeout(resolve, 200));
            const log = nr.problems(mark);
            if (log.length) problems.push(`${key}: ${log.length} warn/error log lines, first: ${log[0]}`);
            caseLog.push(...log);
        }
        return { window: null, windows, problems, figures, caseLog };
    };
}

function caseKey(size, kind) {
    return `${size}:${kind}`;
}

const echo = (inflight) => ({ wsBase }) => ({ url: wsBase + PATHS.echo, inflight });

function scenario(command, extra, properties, withRtt) {
    const caseFigures = [RATE, ...(withRtt ? [RTT] : []), CPU, ...RSS_FIGURES];
    return Object.assign({ sizes: "large", caseFigures,
        run: runCases(command, extra, caseFigures.map((f) => f.metric)) }, properties);
}

const LISTENER = { flow: "echo", path: PATHS.echo };
const CLIENT = { flow: "large", remote: "large" };

/** Listed in the order `--scenarios large` runs them: relay last, each needs its own Node-RED. */
const LARGE_SCENARIOS = {
    "large-echo": scenario("largeEcho", echo(1),
        Object.assign({ title: "listener echo, 1 in flight (handoff)" }, LISTENER), true),
    "large-pipeline": scenario("largeEcho", echo(INFLIGHT),
        Object.assign({ title: `listener echo, ${INFLIGHT} in flight (handoff)` }, LISTENER)),
    "large-ingest": scenario("largeIngest",
        ({ nr }) => ({ countUrl: `http://127.0.0.1:${nr.port}${LARGE_COUNT_URL}` }),
        Object.assign({ title: "client ingest (the remote server pushes)" }, CLIENT)),
    "large-egress": scenario("largeEgress", () => ({ inflight: 1 }),
        Object.assign({ title: "client egress, 1 request in flight" }, CLIENT)),
    "large-egress-pipeline": scenario("largeEgress", () => ({ inflight: INFLIGHT }),
        Object.assign({ title: `client egress, ${INFLIGHT} requests in flight` }, CLIENT)),
    // Core has no relay mode: its plain listener is measured again, in the same run.
    "large-relay": scenario("largeEcho", echo(1), Object.assign({ settings: "pyWebsocketListenerHandoff: false",
        title: "listener echo, 1 in flight, ours relayed (handoff off) vs core's plain listener" }, LISTENER), true),
    // Where relaying is what users get: Node-RED serving HTTPS, where core runs TLS in the same process.
    "large-relay-tls": scenario("largeEcho", echo(1), Object.assign({ tls: true,
        title: "listener echo over wss:// (Node-RED on HTTPS), 1 in flight: ours relayed vs core's" }, LISTENER), true),
};

/** [{size, kind}] for the selected sizes and kinds, in size order. */
function largeCases(sizes = Object.keys(LARGE_SIZES), kinds = KINDS) {
    const cases = [];
    for (const size of Object.keys(LARGE_SIZES)) {
        if (!sizes.includes(size)) continue;
        for (const kind of KINDS) if (kinds.includes(kind)) cases.push({ size, kind });
    }
    return cases;
}

/** Figure definitions of one large scenario over its cases (shown in the large table). */
function largeFigureDefs(name, cases) {
    const scenario = LARGE_SCENARIOS[name];
    const defs = [];
    for (const { size, kind } of cases) {
        for (const f of scenario.caseFigures) {
            defs.push({ scenario: name, key: `${caseKey(size, kind)}:${f.metric}`, metric: f.metric,
                size, kind, label: `${scenario.title}, ${SIZE_LABELS[size]} ${kind}: ${f.label}`,
                better: f.better, table: "large" });
        }
    }
    return defs;
}

module.exports = { LARGE_SCENARIOS, LARGE_SIZES, SIZE_LABELS, KINDS, BUDGETS, INFLIGHT, largeCases,
    largeFigureDefs };
