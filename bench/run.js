#!/usr/bin/env node
/**
 * Benchmark orchestration: core WebSocket nodes vs this package's, in real Node-RED processes.
 *
 *   node bench/run.js [--quick] [--repeat N] [--out bench/results/last.json] [--scenarios a,b]
 *                     [--sizes 64k,1m,16m] [--kinds text,binary] [--workers 1,2,4]
 *
 * `--workers` runs ours once per worker count (pyWebsocketWorkers), each next to core in the
 * same run: "ours" is one worker (the default), "ours-w2" two, and so on.
 * `--scenarios large` names the large-message scenarios (bench/lib/large.js); --sizes and
 * --kinds pick their cases. A scenario that needs other Node-RED settings (relay, HTTPS) gets its
 * own Node-RED.
 *
 * Forks the load generator (bench/loadgen.js), builds each scenario's flow once with core types
 * and converts it by renaming types (bench/flows.js), then per repeat starts a fresh Node-RED
 * for each implementation (order rotating), deploys and runs every scenario
 * (bench/lib/scenarios.js), and prints medians, min–max and ours/core (bench/lib/report.js).
 * A crash, stall or loss is recorded and marked, never fatal. Traffic stays on 127.0.0.1.
 */
"use strict";

const childProcess = require("child_process");
const crypto = require("crypto");
const fs = require("fs");
const os = require("os");
const path = require("path");
const flows = require("./flows");
const { NodeRed, delay, ROOT } = require("./lib/node-red");
const { fileLimits, childPids, clockTicks } = require("./lib/proc");
const { SCENARIOS, SIZES, figureDefs } = require("./lib/scenarios");
const { LARGE_SCENARIOS, LARGE_SIZES, KINDS, largeCases } = require("./lib/large");
const report = require("./lib/report");
const { startLoadgen } = require("./lib/loadgen-client");

const VENV = process.env.NODE_RED_PYTHON_VENV || path.join(ROOT, ".venv");

const DEFAULT_SCENARIOS = ["echo", "latency", "broadcast", "connscale", "ingest"];
const GROUPS = { default: DEFAULT_SCENARIOS, large: Object.keys(LARGE_SCENARIOS) };

/** A comma-separated list, each item one of `known` (or a group name that stands for several). */
function listArg(flag, text, known, groups = {}) {
    const items = text.split(",").map((s) => s.trim()).filter(Boolean)
        .flatMap((item) => groups[item] || [item]);
    for (const item of items) {
        if (!known.includes(item)) throw new Error(`unknown ${flag} value ${item} (known: ${known.join(", ")})`);
    }
    return [...new Set(items)];
}

function parseArgs(argv) {
    const options = { quick: false, repeat: null, out: path.join(__dirname, "results", "last.json"),
        scenarios: DEFAULT_SCENARIOS, sizes: Object.keys(LARGE_SIZES), kinds: KINDS, workers: [1] };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
            return argv[++i];
        };
        if (arg === "--quick") options.quick = true;
        else if (arg === "--repeat") options.repeat = Number(value());
        else if (arg === "--out") options.out = path.resolve(value());
        else if (arg === "--scenarios") {
            options.scenarios = listArg(arg, value(), Object.keys(SCENARIOS), GROUPS);
        } else if (arg === "--sizes") options.sizes = listArg(arg, value(), Object.keys(LARGE_SIZES));
        else if (arg === "--kinds") options.kinds = listArg(arg, value(), KINDS);
        else if (arg === "--workers") {
            options.workers = [...new Set(value().split(",").map(Number))];
            if (!options.workers.every((n) => Number.isInteger(n) && n >= 1 && n <= 16)) {
                throw new Error("--workers takes worker counts from 1 to 16, e.g. 1,2,4");
            }
        }
        else if (arg === "--help" || arg === "-h") {
            console.log("node bench/run.js [--quick] [--repeat N] [--out FILE] " +
                `[--scenarios ${Object.keys(SCENARIOS).join(",")} or default,large] ` +
                `[--sizes ${Object.keys(LARGE_SIZES).join(",")}] [--kinds ${KINDS.join(",")}] [--workers 1,2,4]`);
            process.exit(0);
        } else throw new Error(`unknown argument ${arg}`);
    }
    if (options.repeat === null) options.repeat = options.quick ? 1 : 3;
    if (!(options.repeat >= 1)) throw new Error("--repeat must be ≥ 1");
    return options;
}

function log(text) {
    process.stderr.write(`[bench] ${text}\n`);
}

/**
 * Core, then ours once per worker count: {name, flows ("core" or "ours"), settings (settings.js
 * source)}. One worker is plain "ours" with no setting (the default, as a user runs it).
 */
function implementations(workers) {
    return [{ name: "core", flows: "core", settings: "" }].concat(workers.map((n) => (n === 1
        ? { name: "ours", flows: "ours", settings: "" }
        : { name: `ours-w${n}`, flows: "ours", settings: `pyWebsocketWorkers: ${n}` })));
}

/**
 * Deploys the scenario's flow and waits until it serves (listener path) or its client connection
 * reaches the load generator's remote server.
 */
async function prepare(nr, loadgen, scenario, nodes) {
    if (scenario.remote) {
        const name = scenario.remote;
        const { connections } = await loadgen("remoteConnections", { name });
        await nr.deploy(nodes);
        const waited = await loadgen("remoteWait", { name, after: connections, timeoutMs: 60000 });
        if (!waited.ok) throw new Error("the flow's client never connected to the load generator");
    } else {
        await nr.deploy(nodes);
        const probe = await loadgen("probe", { url: nr.wsBase + scenario.path, timeoutMs: 60000 });
        if (!probe.ok) throw new Error(`listener ${scenario.path} never served: ${probe.error}`);
    }
    await delay(300);
}

async function runOne({ nr, loadgen, impl, repeat, name, nodes, size, cases }) {
    const scenario = SCENARIOS[name];
    const record = { impl, repeat, scenario: name, figures: {}, problems: [], window: null, log: [] };
    const mark = nr.output.length;
    const started = Date.now();
    try {
        await prepare(nr, loadgen, scenario, nodes);
        const pids = nr.pids();
        record.pids = pids;
        const result = await scenario.run({ nr, loadgen, size, pids, cases, wsBase: nr.wsBase });
        Object.assign(record, result);
        const after = childPids(nr.pid);
        if (pids.children.join() !== after.join() && nr.alive()) {
            record.problems.push(`worker pid changed during the scenario (${pids.children} → ${after})`);
        }
    } catch (err) {
        record.problems.push(`failed: ${err.message.split("\n")[0]}`);
    }
    await delay(200);
    if (!nr.alive()) {
        const { code, signal } = await nr.exited;
        record.problems.push(`Node-RED crashed (exit ${code === null ? signal : code})`);
    }
    record.log = nr.problems(mark);
    // Lines a scenario already gave to one of its cases (large ones) are not the whole run's.
    const elsewhere = record.log.filter((line) => !(record.caseLog || []).includes(line));
    if (elsewhere.length) record.problems.push(`${elsewhere.length} warn/error log lines, first: ${elsewhere[0]}`);
    record.seconds = (Date.now() - started) / 1000;
    return record;
}

/**
 * Open files: Node.js raises its own soft limit to the hard one at startup (so Node-RED, its
 * worker and the load generator usually have enough); if the soft limit read here is still too
 * low but the hard one allows, the children start through `ulimit -n`; if the hard limit is too
 * low, the connection counts are capped and the output says so.
 */
function fileLimitPlan(sizes) {
    const needed = Math.max(sizes.connscale.n, sizes.broadcast.clients) + 512;
    const [soft, hard] = fileLimits();
    const plan = { soft, hard, needed, raiseTo: 0, warning: null };
    if (soft >= needed) return plan;
    if (hard >= needed) {
        plan.raiseTo = needed;
        return plan;
    }
    plan.warning = `open-file limit too low: soft ${soft}, hard ${hard}, need ${needed}; ` +
        "connection counts are capped";
    const cap = Math.max(100, Math.min(soft, hard) - 512);
    sizes.connscale.n = Math.min(sizes.connscale.n, cap);
    sizes.broadcast.clients = Math.min(sizes.broadcast.clients, cap);
    return plan;
}

function environment() {
    let python = null;
    try {
        python = childProcess.execFileSync(path.join(VENV, "bin", "python"), ["-c",
            "import sys, websockets; print(sys.version.split()[0], 'websockets', websockets.__version__)"])
            .toString().trim();
    } catch (_) { /* no venv */ }
    return { node: process.version, nodeRed: require("node-red/package.json").version, python,
        cpus: os.cpus().length, cpuModel: (os.cpus()[0] || {}).model, memoryGiB: os.totalmem() / 2 ** 30,
        kernel: os.release(), gitHead: gitHead(), codeFingerprint: codeFingerprint() };
}

/** A hash of what runs (nodes/ and the worker), to tell runs of different working trees apart. */
function codeFingerprint() {
    const hash = crypto.createHash("sha1");
    const walk = (dir) => {
        for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
            const full = path.join(dir, entry.name);
            if (entry.isDirectory()) {
                if (entry.name !== "__pycache__") walk(full);
            } else if (/\.(js|py|json|html)$/.test(entry.name)) {
                hash.update(path.relative(ROOT, full)).update(fs.readFileSync(full));
            }
        }
    };
    for (const dir of ["nodes", path.join("python", "websocket_worker")]) walk(path.join(ROOT, dir));
    return hash.digest("hex").slice(0, 12);
}

function gitHead() {
    try {
        const head = childProcess.execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT }).toString().trim();
        const dirty = childProcess.execFileSync("git", ["status", "--porcelain", "--", "nodes", "python"], { cwd: ROOT })
            .toString().trim();
        return head + (dirty ? " (+ uncommitted changes in nodes/ or python/)" : "");
    } catch (_) {
        return null;
    }
}

async function main() {
    const options = parseArgs(process.argv.slice(2));
    const sizes = JSON.parse(JSON.stringify(SIZES[options.quick ? "quick" : "full"]));
    const limits = fileLimitPlan(sizes);
    if (limits.warning) log(`WARNING: ${limits.warning}`);
    if (!fs.existsSync(path.join(VENV, "bin", "python"))) {
        throw new Error(`no Python venv at ${VENV}: run \`node scripts/run-python.js -c pass\` first`);
    }
    const began = Date.now();
    const lg = startLoadgen(limits.raiseTo);
    const loadgen = lg.call;
    const results = { meta: { started: new Date().toISOString(), options, sizes, fileLimits: limits,
        environment: environment(), venv: VENV }, runs: [] };
    try {
        const remote = async (name) => `ws://127.0.0.1:${(await loadgen("remoteServer", { name })).port}/bench/${name}`;
        const core = {
            echo: flows.echoFlow(),
            broadcast: flows.broadcastFlow(),
            idle: flows.idleFlow(),
            ingest: flows.ingestFlow(await remote("ingest"), sizes.ingest.count),
            large: flows.largeClientFlow(await remote("large")),
        };
        const cases = largeCases(options.sizes, options.kinds);
        const built = { core, ours: {} };
        for (const [key, nodes] of Object.entries(core)) built.ours[key] = flows.toOurs(nodes);
        const impls = implementations(options.workers);
        for (let repeat = 1; repeat <= options.repeat; repeat++) {
            const shift = (repeat - 1) % impls.length;
            const order = impls.slice(shift).concat(impls.slice(0, shift));
            for (const { name: impl, flows: kind, settings: implSettings } of order) {
                let nr = null;
                for (const name of options.scenarios) {
                    const settings = [SCENARIOS[name].settings, implSettings].filter(Boolean).join(", ");
                    const tls = Boolean(SCENARIOS[name].tls);
                    if (!nr || !nr.alive() || nr.options.settings !== settings || Boolean(nr.options.tls) !== tls) {
                        if (nr) {
                            if (!nr.alive()) log(`${impl}: Node-RED is gone, starting a new one`);
                            await nr.stop();
                        }
                        const t = Date.now();
                        nr = new NodeRed({ env: { NODE_RED_PYTHON_VENV: VENV }, fileLimit: limits.raiseTo, settings, tls });
                        await nr.start();
                        log(`${impl}: Node-RED pid ${nr.pid} on port ${nr.port}, started in ${((Date.now() - t) / 1000).toFixed(1)} s`);
                    }
                    log(`repeat ${repeat}/${options.repeat} ${impl} ${name} …`);
                    const record = await runOne({ nr, loadgen, impl, repeat, name,
                        nodes: built[kind][SCENARIOS[name].flow], size: sizes[SCENARIOS[name].sizes || name], cases });
                    results.runs.push(record);
                    const shown = Object.entries(record.figures)
                        .map(([k, v]) => `${k}=${report.fmt(v)}`).join(" ");
                    log(`  ${shown}${record.problems.length ? `  PROBLEMS: ${record.problems.join("; ")}` : ""}`);
                }
                if (nr) await nr.stop();
            }
        }
    } finally {
        lg.stop();
    }
    const defs = figureDefs(options.scenarios, largeCases(options.sizes, options.kinds));
    const implNames = implementations(options.workers).map((impl) => impl.name);
    results.summary = report.summarize(defs, results.runs, implNames);
    results.meta.seconds = (Date.now() - began) / 1000;
    results.meta.codeFingerprintAtEnd = codeFingerprint();
    const changed = results.meta.codeFingerprintAtEnd !== results.meta.environment.codeFingerprint;

    const env = results.meta.environment;
    const lines = [
        "",
        `node-red-contrib-python-websocket benchmark — ${options.quick ? "quick" : "full"}, ` +
            `${options.repeat} repeat${options.repeat > 1 ? "s" : ""}, ${results.meta.seconds.toFixed(0)} s`,
        `Node ${env.node}, Node-RED ${env.nodeRed}, Python ${env.python}, ${env.cpus} × ${env.cpuModel}, ` +
            `git ${env.gitHead}, code ${env.codeFingerprint}`,
        `sizes: ${JSON.stringify(sizes)}`,
        limits.warning ? `WARNING: ${limits.warning}` : `open-file limit ${limits.soft} (need ${limits.needed})`,
        ...(changed ? [`WARNING: nodes/ or python/websocket_worker/ changed during the run (code ` +
            `${results.meta.environment.codeFingerprint} → ${results.meta.codeFingerprintAtEnd})`] : []),
        "",
    ];
    const main = results.summary.filter((row) => row.table !== "large");
    if (main.length) lines.push(report.mainTable(main), "");
    lines.push(...report.largeTable(results.summary.filter((row) => row.table === "large"), LARGE_SCENARIOS),
        "↑ higher is better, ↓ lower is better; ! k/n = a problem (crash, stall, loss, log error) in k of n runs",
        "CPU seconds come from /proc/<pid>/stat in 1/" + clockTicks + " s ticks: figures from windows under ~1 s " +
            "(see below) are coarse.");
    const windows = options.scenarios.filter((name) => !LARGE_SCENARIOS[name]);
    if (windows.length) {
        lines.push("", "CPU over each measurement window (medians): the load generator next to the server " +
            "(all = Node-RED + worker + load generator)", report.cpuTable(windows, results.runs, implNames));
    }
    const notes = report.notes(results.runs);
    if (notes.length) lines.push("", "Problems:", ...notes);
    console.log(lines.join("\n"));
    fs.mkdirSync(path.dirname(options.out), { recursive: true });
    fs.writeFileSync(options.out, JSON.stringify(results, null, 2) + "\n");
    console.log(`\nresults: ${path.relative(process.cwd(), options.out)}`);
}

main().catch((err) => {
    console.error(err.stack || String(err));
    process.exit(1);
});
