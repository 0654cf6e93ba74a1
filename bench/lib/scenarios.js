/**
 * The five scenarios: their counts (full and --quick), the figures each reports (label, unit,
 * which direction is better), and how each one runs against a started Node-RED with its flow
 * deployed: which load generator command, what is sampled here (ingest RSS), and what counts as
 * a problem (lost messages, stalls, connection failures). The large-message scenarios
 * (bench/lib/large.js) join them here.
 */
"use strict";

const { PATHS, COUNT_URL, LIVE_HEAP_URL } = require("../flows");
const { rssBytes } = require("./proc");
const { LARGE_SCENARIOS, BUDGETS, largeFigureDefs } = require("./large");

const SIZES = {
    full: { echo: { clients: 8, inflight: 32, warmup: 20000, count: 200000 },
        latency: { warmup: 500, count: 5000 },
        broadcast: { clients: 1000, messages: 200, warmupMessages: 5 },
        connscale: { n: 5000 },
        ingest: { count: 200000 },
        large: BUDGETS.full },
    quick: { echo: { clients: 8, inflight: 32, warmup: 2000, count: 20000 },
        latency: { warmup: 100, count: 1000 },
        broadcast: { clients: 200, messages: 200, warmupMessages: 5 },
        connscale: { n: 500 },
        ingest: { count: 20000 },
        large: BUDGETS.quick },
};

const MESSAGE_BYTES = 64;
const CONCURRENCY = 100;
const STALL_MS = 10000;

const perUnit = (cpu, units) => (units > 0 && cpu !== undefined ? (cpu / units) * 1e6 : null);
const MiB = 1024 * 1024;

const SCENARIOS = {
    echo: {
        flow: "echo",
        path: PATHS.echo,
        figures: [
            { key: "echoRate", label: "echo throughput (msg/s)", better: "higher" },
            { key: "echoCpuMain", label: "echo CPU Node-RED (µs/msg)", better: "lower" },
            { key: "echoCpuAll", label: "echo CPU Node-RED+worker (µs/msg)", better: "lower" },
            { key: "echoCpuWorkers", label: "echo CPU of the workers, all together (µs/msg)", better: "lower" },
            { key: "echoLost", label: "echo messages lost", better: "lower" },
        ],
        async run({ loadgen, wsBase, size, pids }) {
            const r = await loadgen("echo", { url: wsBase + PATHS.echo, clients: size.clients, inflight: size.inflight,
                size: MESSAGE_BYTES, warmup: size.warmup, count: size.count, pids, stallMs: STALL_MS });
            const problems = [];
            if (r.error) problems.push(r.error);
            if (r.stalled) problems.push(`stalled: ${r.received} of ${r.sent} sent came back (${r.lost} lost)`);
            if (r.closedEarly) problems.push(`${r.closedEarly} clients closed by the server`);
            const ok = !r.error && !r.stalled;
            return { window: ok ? r : null, problems, figures: {
                echoRate: ok ? r.measured / r.seconds : null,
                echoCpuMain: ok ? perUnit(r.cpuMain, r.measured) : null,
                echoCpuAll: ok ? perUnit(r.cpuAll, r.measured) : null,
                echoCpuWorkers: ok && pids.children.length ? perUnit(r.cpuAll - r.cpuMain, r.measured) : null,
                echoLost: r.error ? null : r.lost,
            } };
        },
    },

    latency: {
        flow: "echo",
        path: PATHS.echo,
        figures: [
            { key: "latP50", label: "latency p50 (µs)", better: "lower" },
            { key: "latP99", label: "latency p99 (µs)", better: "lower" },
            { key: "latP999", label: "latency p99.9 (µs)", better: "lower" },
            { key: "latCpuAll", label: "latency CPU Node-RED+worker (µs/round trip)", better: "lower" },
        ],
        async run({ loadgen, wsBase, size, pids }) {
            const r = await loadgen("latency", { url: wsBase + PATHS.echo, warmup: size.warmup, count: size.count,
                size: MESSAGE_BYTES, pids, stallMs: STALL_MS });
            const problems = [];
            if (r.error) problems.push(r.error);
            if (r.stalled) problems.push(`stalled after ${r.measured} of ${size.count} round trips`);
            const ok = !r.error && !r.stalled;
            return { window: ok ? r : null, problems, figures: {
                latP50: ok ? r.p50 : null, latP99: ok ? r.p99 : null, latP999: ok ? r.p999 : null,
                latCpuAll: ok ? perUnit(r.cpuAll, r.measured) : null,
            } };
        },
    },

    broadcast: {
        flow: "broadcast",
        path: PATHS.fanout,
        figures: [
            { key: "bcRate", label: "broadcast deliveries/s", better: "higher" },
            { key: "bcLost", label: "broadcast deliveries lost", better: "lower" },
            { key: "bcCpuMain", label: "broadcast CPU Node-RED (µs/delivery)", better: "lower" },
            { key: "bcCpuAll", label: "broadcast CPU Node-RED+worker (µs/delivery)", better: "lower" },
            { key: "bcCpuWorkers", label: "broadcast CPU of the workers, all together (µs/delivery)", better: "lower" },
        ],
        async run({ loadgen, wsBase, size, pids }) {
            const r = await loadgen("broadcast", { fanoutUrl: wsBase + PATHS.fanout, triggerUrl: wsBase + PATHS.trigger,
                clients: size.clients, messages: size.messages, warmupMessages: size.warmupMessages,
                concurrency: CONCURRENCY, pids, stallMs: STALL_MS });
            const problems = [];
            if (r.error) problems.push(r.error);
            if (r.warmupClientsShort) problems.push(`${r.warmupClientsShort} clients missed warm-up broadcasts`);
            if (r.lost) problems.push(`${r.lost} of ${r.expected} deliveries lost (${r.clientsShort} clients short)`);
            if (r.closedEarly) problems.push(`${r.closedEarly} clients closed by the server`);
            const ok = !r.error && r.delivered > 0;
            return { window: ok ? r : null, problems, figures: {
                bcRate: ok ? r.delivered / r.seconds : null,
                bcLost: r.error ? null : r.lost,
                bcCpuMain: ok ? perUnit(r.cpuMain, r.delivered) : null,
                bcCpuAll: ok ? perUnit(r.cpuAll, r.delivered) : null,
                bcCpuWorkers: ok && pids.children.length ? perUnit(r.cpuAll - r.cpuMain, r.delivered) : null,
            } };
        },
    },

    connscale: {
        flow: "idle",
        path: PATHS.idle,
        figures: [
            { key: "connRate", label: "connection scale connects/s", better: "higher" },
            { key: "connMemAll", label: "memory per connection Node-RED+worker (KiB)", better: "lower" },
            { key: "connMemMain", label: "memory per connection Node-RED alone (KiB)", better: "lower" },
            { key: "connLiveAll", label: "live memory per connection: NR heap after GC + worker RSS (KiB)",
                better: "lower" },
            { key: "connLiveMain", label: "live memory per connection: NR heap after GC (KiB)", better: "lower" },
            { key: "connCpuAll", label: "connect CPU Node-RED+worker (µs/connection)", better: "lower" },
        ],
        async run({ loadgen, wsBase, size, pids, nr }) {
            // Settle past Node-RED's own hold on every upgraded socket (inboundWebSocketTimeout,
            // 5 s: a timer per socket that keeps it, handed over or not, until it fires).
            const r = await loadgen("connscale", { url: wsBase + PATHS.idle, n: size.n, concurrency: CONCURRENCY, pids,
                settleMs: 6000, liveHeapUrl: `http://127.0.0.1:${nr.port}${LIVE_HEAP_URL}` });
            const problems = [];
            if (r.failures) problems.push(`${r.failures} of ${size.n} connects failed: ${JSON.stringify(r.errors)}`);
            if (r.closedEarly) problems.push(`${r.closedEarly} idle connections closed by the server`);
            if (r.closeStillOpen) problems.push(`${r.closeStillOpen} connections did not close within 30 s`);
            const n = r.opened;
            return { window: r, problems, figures: {
                connRate: n ? n / r.seconds : null,
                connMemAll: n ? (r.rssAllAfter - r.rssAllBefore) / n / 1024 : null,
                connMemMain: n ? (r.rssMainAfter - r.rssMainBefore) / n / 1024 : null,
                connLiveMain: n ? (r.heapAfter - r.heapBefore) / n / 1024 : null,
                connLiveAll: n ? ((r.heapAfter - r.heapBefore) + (r.rssAllAfter - r.rssAllBefore) -
                    (r.rssMainAfter - r.rssMainBefore)) / n / 1024 : null,
                connCpuAll: perUnit(r.cpuAll, n),
            } };
        },
    },

    ingest: {
        flow: "ingest",
        remote: "ingest",
        path: null,
        figures: [
            { key: "ingRate", label: "client ingest (msg/s)", better: "higher" },
            { key: "ingRssMain", label: "ingest peak RSS growth Node-RED (MiB)", better: "lower" },
            { key: "ingRssWorker", label: "ingest peak RSS growth of the worker (MiB)", better: "lower" },
            { key: "ingCpuMain", label: "ingest CPU Node-RED (µs/msg)", better: "lower" },
            { key: "ingCpuAll", label: "ingest CPU Node-RED+worker (µs/msg)", better: "lower" },
            { key: "ingLost", label: "ingest messages lost", better: "lower" },
        ],
        async run({ loadgen, size, pids, nr }) {
            // Peaks per process: a worker that hands memory back mid-stream would hide Node-RED's
            // growth in a peak of the sum.
            const sample = () => {
                let workers = 0;
                for (const pid of pids.children) workers += rssBytes(pid) || 0;
                return { main: rssBytes(pids.main) || 0, workers };
            };
            const base = sample();
            const peak = Object.assign({}, base);
            const timer = setInterval(() => {
                const s = sample();
                peak.main = Math.max(peak.main, s.main);
                peak.workers = Math.max(peak.workers, s.workers);
            }, 50);
            let r;
            try {
                r = await loadgen("ingest", { count: size.count, size: MESSAGE_BYTES, pids, stallMs: STALL_MS,
                    countUrl: `http://127.0.0.1:${nr.port}${COUNT_URL}`, highWater: 1024 * 1024 });
            } finally {
                clearInterval(timer);
            }
            const problems = [];
            if (r.stalled) problems.push(`stalled: flow counted ${r.received} of ${size.count}`);
            if (r.lost) problems.push(`${r.lost} of ${size.count} messages lost`);
            if (r.closedEarly) problems.push("the flow's client connection closed during the stream");
            const ok = !r.stalled;
            Object.assign(r, { rssMainBase: base.main, rssMainPeak: peak.main, rssWorkerBase: base.workers,
                rssWorkerPeak: peak.workers });
            return { window: ok ? r : null, problems, figures: {
                ingRate: ok ? size.count / r.seconds : null,
                ingRssMain: (peak.main - base.main) / MiB,
                ingRssWorker: pids.children.length ? (peak.workers - base.workers) / MiB : null,
                ingCpuMain: ok ? perUnit(r.cpuMain, size.count) : null,
                ingCpuAll: ok ? perUnit(r.cpuAll, size.count) : null,
                ingLost: r.lost,
            } };
        },
    },
};

Object.assign(SCENARIOS, LARGE_SCENARIOS);

/** The figures of the named scenarios; `cases` ({size, kind}) for the large ones. */
function figureDefs(names, cases) {
    const defs = [];
    for (const name of names) {
        if (LARGE_SCENARIOS[name]) defs.push(...largeFigureDefs(name, cases));
        else for (const def of SCENARIOS[name].figures) defs.push(Object.assign({ scenario: name }, def));
    }
    return defs;
}

module.exports = { SCENARIOS, SIZES, figureDefs, MESSAGE_BYTES, CONCURRENCY };
