#!/usr/bin/env node
/**
 * `npm run conformance`: Autobahn|Testsuite against a real Node-RED running this package's nodes.
 *
 * Listener modes: `wstest -m fuzzingclient` connects to an echo flow (`py-websocket in` →
 * `py-websocket out` on one `py-websocket-listener`). Client modes: Autobahn's fuzzing server
 * (testsuite.py, on 127.0.0.1) is the remote end of a `py-websocket-client` whose `in` → `out`
 * echo. The flow is deployed once with automatic connect off; each case is a POST of its URL to
 * an HTTP In node of that flow, which sends `out` a `connect` action to it. core-client (core's
 * nodes have no such action) deploys the flow once per case with the case's URL instead. Prints
 * a table per mode by case group, every case that differs from expected.json, and exits 0 only
 * when all outcomes match it. Autobahn's own environment (Python 2.7) is set up at first use in
 * `.autobahn/`.
 *
 *   npm run conformance                          # handoff, relay, compression, client, client-compression
 *   npm run conformance -- --modes relay --cases '1.*,7.*' --keep
 *   npm run conformance -- --core                # also the core nodes, as a reference
 */
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const WebSocket = require("ws");
const { ensureAutobahn, HOME } = require("./autobahn-env");
const flows = require("./flows");
const { NodeRed } = require("./node-red");
const processes = require("./processes");
const report = require("./report");

const ROOT = path.resolve(__dirname, "..", "..");
const EXPECTED = path.join(__dirname, "expected.json");
const COMPRESSION_CASES = ["12.*", "13.*"];
// 12.x.y / 13.x.y: y = 8–10 and 13–18 echo 1,000 messages of 32–128 KiB each; on this kind of
// machine they are ~85 % of a compression mode's time (15–22 min with them, 2–3 without).
const QUICK_SKIPS = ["8", "9", "10", "13", "14", "15", "16", "17", "18"].flatMap((y) => [`12.*.${y}`, `13.*.${y}`]);
// One client connection serves every case: without this, echoes that reach `out` after a case's
// connection closed would be queued and sent over the next case's connection.
const NO_CLIENT_QUEUE = "pyWebsocketClientQueueSize: 0";

const MODES = {
    handoff: { about: "listener, socket handed over to the worker (default)", kind: "listener", cases: ["*"] },
    relay: { about: "listener, bytes relayed by Node-RED", kind: "listener", cases: ["*"],
        settings: "pyWebsocketListenerHandoff: false" },
    compression: { about: "listener (handoff), permessage-deflate on", kind: "listener", cases: COMPRESSION_CASES,
        settings: "pyWebsocketListenerCompression: true", deflate: true },
    client: { about: "client connection", kind: "client", cases: ["*"], settings: NO_CLIENT_QUEUE },
    "client-compression": { about: "client connection, permessage-deflate on", kind: "client",
        cases: COMPRESSION_CASES, settings: `${NO_CLIENT_QUEUE}, pyWebsocketListenerCompression: true`, deflate: true },
    // Judged by handoff's and client's rules, but never fail the run.
    core: { about: "reference: core websocket nodes, listener", kind: "listener", cases: ["*"], core: true,
        like: "handoff" },
    // Core's client offers permessage-deflate (ws's default), so groups 12 and 13 run for real.
    "core-client": { about: "reference: core websocket nodes, client connection", kind: "client", cases: ["*"],
        core: true, like: "client", deflate: true },
};
const DEFAULT_MODES = ["handoff", "relay", "compression", "client", "client-compression"];
const CORE_MODES = ["core", "core-client"];

const USAGE = `node scripts/conformance/run.js [options]   (npm run conformance -- [options])
  --modes a,b      modes to run (default: ${DEFAULT_MODES.join(",")}); also: ${CORE_MODES.join(",")}
  --core           add the core-node reference modes (${CORE_MODES.join(", ")}); never compared
  --cases p,q      only these cases, as Autobahn patterns (e.g. '1.*,7.1.5'); a case that
                   expected.json skips runs only when named exactly
  --quick          modes that negotiate compression leave out the cases with 32-128 KiB messages (12.x.8-10,
                   12.x.13-18, the same in 13): 2-3 minutes per such mode instead of 15-22 (measured on 2 cores)
  --keep           keep Autobahn's HTML/JSON reports in .autobahn/reports/<run>/<mode>/ (else a temp dir, removed)
  --case-timeout S client modes: seconds to wait for one case (default 150)
  --mode-timeout S listener modes: seconds for the whole fuzzing client (default 1800)`;

function parseArgs(argv) {
    const options = { modes: null, core: false, cases: null, keep: false, quick: false, caseTimeout: 150,
        modeTimeout: 1800 };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) throw new UsageError(`${arg} needs a value`);
            return argv[++i];
        };
        const list = () => value().split(",").map((s) => s.trim()).filter(Boolean);
        if (arg === "--modes" || arg === "--mode") options.modes = list();
        else if (arg === "--core") options.core = true;
        else if (arg === "--cases") options.cases = list();
        else if (arg === "--keep") options.keep = true;
        else if (arg === "--quick") options.quick = true;
        else if (arg === "--case-timeout") options.caseTimeout = Number(value());
        else if (arg === "--mode-timeout") options.modeTimeout = Number(value());
        else if (arg === "--help" || arg === "-h") {
            console.log(USAGE);
            process.exit(0);
        } else throw new UsageError(`unknown argument ${arg}`);
    }
    let modes = options.modes || DEFAULT_MODES.slice();
    if (options.core) modes = modes.concat(CORE_MODES.filter((m) => !modes.includes(m)));
    for (const mode of modes) {
        if (!MODES[mode]) throw new UsageError(`unknown mode ${mode} (known: ${Object.keys(MODES).join(", ")})`);
    }
    for (const name of ["caseTimeout", "modeTimeout"]) {
        if (!(options[name] > 0)) throw new UsageError(`--${name.replace(/[A-Z]/, (c) => `-${c.toLowerCase()}`)} must be > 0`);
    }
    options.modes = modes;
    return options;
}

class UsageError extends Error {}

function log(text) {
    process.stderr.write(`[conformance] ${text}\n`);
}

function seconds(from) {
    return (Date.now() - from) / 1000;
}

function runPython(python, args) {
    const result = require("child_process").spawnSync(python, args, { encoding: "utf8", maxBuffer: 16 << 20,
        env: Object.assign({}, process.env, { PYTHONDONTWRITEBYTECODE: "1" }) });
    if (result.status !== 0) throw new Error(`${path.basename(args[0])} ${args[1]} failed:\n${result.stderr || result.error}`);
    return result.stdout;
}

/** The ids a mode runs: the suite's, filtered by the mode, by --cases, and by expected.json's skips. */
function selectCases(suite, mode, options, expected) {
    const inMode = report.patternMatcher(MODES[mode].cases);
    const wanted = options.cases ? report.patternMatcher(options.cases) : () => true;
    const named = new Set(options.cases || []);
    const quickSkip = options.quick && MODES[mode].deflate ? report.patternMatcher(QUICK_SKIPS) : () => false;
    return suite.cases.filter((id) => inMode(id) && wanted(id) && !quickSkip(id) &&
        (!report.ruleFor(expected, MODES[mode].like || mode, id).skip || named.has(id)));
}

/** Prints a line whenever the run moves on to another case group. */
function progress(mode, total) {
    const started = Date.now();
    let lastGroup = null;
    let done = 0;
    return (id) => {
        done++;
        const g = id.split(".")[0];
        if (g !== lastGroup) {
            lastGroup = g;
            log(`  ${mode}: case ${id} (${done}/${total}) at ${seconds(started).toFixed(0)} s`);
        }
    };
}

function writeSpec(outdir, spec) {
    fs.mkdirSync(outdir, { recursive: true });
    const file = path.join(outdir, "spec.json");
    fs.writeFileSync(file, `${JSON.stringify(spec, null, 2)}\n`);
    return file;
}

async function startNodeRed(mode) {
    const settings = MODES[mode].settings || "";
    const nr = new NodeRed(settings);
    await nr.start();
    await nr.deploy(flows.listenerEcho({ core: !!MODES[mode].core }));
    // Also for client modes: the first echo proves the worker runs (at first use it installs .venv).
    await nr.probeEcho(flows.ECHO_PATH, 10 * 60 * 1000,
        () => log("  waiting for the Python worker to start (a first use installs its packages into .venv)"));
    return nr;
}

/** CPU seconds of Autobahn, Node-RED and its children (the worker), sampled while a mode runs. */
function sampleCpu(autobahn, nr) {
    return processes.cpuSampler(() => ({
        Autobahn: [autobahn.pid],
        "Node-RED": [nr.child.pid],
        worker: processes.childPids(nr.child.pid),
    }));
}

/** Listener modes: Autobahn's fuzzing client against the echo flow. */
async function runListenerMode(mode, ids, env, outdir, options) {
    const nr = await startNodeRed(mode);
    try {
        const agent = mode;
        const specFile = writeSpec(outdir, {
            outdir,
            servers: [{ agent, url: `ws://127.0.0.1:${nr.port}${flows.ECHO_PATH}` }],
            cases: ids,
            "exclude-cases": [],
            "exclude-agent-cases": {},
        });
        const wstest = processes.spawn(env.wstest, ["-m", "fuzzingclient", "-s", specFile],
            { cwd: outdir, env: Object.assign({}, process.env, { PYTHONUNBUFFERED: "1" }) });
        const cpu = sampleCpu(wstest, nr);
        const step = progress(mode, ids.length);
        let buffered = "";
        wstest.stdout.on("data", (chunk) => {
            buffered += chunk;
            const lines = buffered.split("\n");
            buffered = lines.pop();
            for (const line of lines) {
                const match = /^Running test case ID (\S+) for agent/.exec(line);
                if (match) step(match[1]);
            }
        });
        let timer;
        const result = await Promise.race([wstest.exited,
            new Promise((resolve) => { timer = setTimeout(resolve, options.modeTimeout * 1000, "timeout"); })]);
        clearTimeout(timer);
        if (result === "timeout") {
            await processes.stop(wstest);
            throw new Error(`wstest did not finish within ${options.modeTimeout} s (--mode-timeout)`);
        }
        if (result.code !== 0) {
            throw new Error(`wstest exited with ${result.code === null ? result.signal : result.code}:\n` +
                wstest.output.trim().split("\n").slice(-20).join("\n"));
        }
        if (!nr.alive()) throw new Error(`Node-RED exited during the run:\n${nr.logTail()}`);
        return { results: report.readIndex(outdir, agent), notes: [], cpu: cpu.stop() };
    } finally {
        await nr.stop();
    }
}

/** Opens `ws://host/path?query` on the fuzzing server; resolves with its messages once it closes. */
function serverCall(port, pathAndQuery, timeoutMs) {
    const socket = new WebSocket(`ws://127.0.0.1:${port}${pathAndQuery}`);
    const messages = [];
    let opened;
    const open = new Promise((resolve, reject) => {
        opened = { resolve, reject };
    });
    const done = new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            socket.terminate();
            reject(new Error(`no answer to ${pathAndQuery.split("?")[0]} within ${timeoutMs / 1000} s`));
        }, timeoutMs);
        socket.on("open", () => opened.resolve());
        socket.on("message", (data) => messages.push(String(data)));
        socket.on("error", (err) => {
            clearTimeout(timer);
            opened.reject(err);
            reject(err);
        });
        socket.on("close", () => {
            clearTimeout(timer);
            resolve(messages);
        });
    });
    done.catch(() => {});
    open.catch(() => {});
    return { open, done, socket };
}

/** core-client: core's client cannot be told a URL at runtime, so each case is a deploy with its URL. */
function deployPerCase(nr) {
    let type = "full";
    return async (url) => {
        await nr.deploy(flows.clientEcho(url, { core: true }), type);
        type = "nodes";
    };
}

/**
 * Our client modes: one deploy, where nothing connects until told to (`serverUrl` is only a
 * valid placeholder), then per case a POST of its URL that becomes a `connect` action on `out`.
 */
async function connectPerCase(nr, serverUrl) {
    await nr.deploy(flows.clientControl(serverUrl), "full");
    return async (url) => {
        const deadline = Date.now() + 30000;
        for (;;) {
            // HTTP In nodes are served on the admin port (httpNodeRoot and httpAdminRoot are both "/").
            const result = await nr.api("POST", flows.CONNECT_PATH, { url });
            if (result.status === 200) return;
            // Node-RED answers a deploy before it starts the flows: until then the route is not there.
            if (result.status !== 404 || Date.now() > deadline) {
                throw new Error(`POST ${flows.CONNECT_PATH} answered HTTP ${result.status}: ${JSON.stringify(result.body)}`);
            }
            await processes.delay(50);
        }
    };
}

/** Client modes: Autobahn's fuzzing server; each case's URL reaches the client by connectPerCase or deployPerCase. */
async function runClientMode(mode, ids, env, outdir, options) {
    const nr = await startNodeRed(mode);
    let server = null;
    try {
        const agent = mode;
        const specFile = writeSpec(outdir, {
            url: "ws://127.0.0.1:9001", // replaced by the ephemeral port testsuite.py listens on
            outdir,
            cases: ids,
            "exclude-cases": [],
            "exclude-agent-cases": {},
        });
        server = processes.spawn(env.python, [path.join(__dirname, "testsuite.py"), "server", specFile],
            { cwd: outdir, env: Object.assign({}, process.env, { PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" }) });
        const runs = {};
        let port = null;
        let serverCases = null;
        let buffered = "";
        server.stdout.on("data", (chunk) => {
            buffered += chunk;
            const lines = buffered.split("\n");
            buffered = lines.pop();
            for (const line of lines) {
                let match;
                if ((match = /^LISTENING (\d+)/.exec(line))) port = Number(match[1]);
                else if ((match = /^CASES (.*)$/.exec(line))) serverCases = JSON.parse(match[1]);
                else if ((match = /^Running test case ID (\S+) for agent/.exec(line))) runs[match[1]] = (runs[match[1]] || 0) + 1;
            }
        });
        const deadline = Date.now() + 60000;
        while (port === null) {
            if (server.exitCode !== null || Date.now() > deadline) {
                throw new Error(`the fuzzing server did not start:\n${server.output.trim().split("\n").slice(-20).join("\n")}`);
            }
            await processes.delay(50);
        }
        if (JSON.stringify(serverCases) !== JSON.stringify(ids)) {
            throw new Error(`the fuzzing server selected other cases than asked: ${JSON.stringify(serverCases)}`);
        }
        const notes = [];
        const cpu = sampleCpu(server, nr);
        const step = progress(mode, ids.length);
        const query = (id) => `casetuple=${encodeURIComponent(id)}&agent=${encodeURIComponent(agent)}`;
        const runCase = MODES[mode].core ? deployPerCase(nr) : await connectPerCase(nr, `ws://127.0.0.1:${port}`);
        for (const id of ids) {
            step(id);
            // Answered once the case's connection is gone and its result recorded.
            const status = serverCall(port, `/getCaseStatus?${query(id)}`, options.caseTimeout * 1000);
            await status.open;
            await runCase(`ws://127.0.0.1:${port}/runCase?${query(id)}`);
            try {
                await status.done;
            } catch (err) {
                notes.push(`${id}: ${err.message} (--case-timeout); moved on`);
            }
            if (!nr.alive()) throw new Error(`Node-RED exited during case ${id}:\n${nr.logTail()}`);
        }
        await nr.deploy([], "full"); // stops the last client (core's would reconnect)
        const update = serverCall(port, `/updateReports?agent=${encodeURIComponent(agent)}`, 120000);
        await update.done;
        for (const [id, count] of Object.entries(runs)) {
            if (count > 1) notes.push(`${id} ran ${count} times (the client reconnected by itself); the report has the last run`);
        }
        return { results: report.readIndex(outdir, agent), notes, cpu: cpu.stop() };
    } finally {
        if (server) await processes.stop(server);
        await nr.stop();
    }
}

async function main() {
    const options = parseArgs(process.argv.slice(2));
    const began = Date.now();
    let interrupted = false;
    processes.installCleanup((signal) => {
        interrupted = true;
        log(`${signal}: stopping every process this run started`);
    });
    const expected = report.loadExpected(EXPECTED, Object.keys(MODES));

    const env = ensureAutobahn((line) => log(line));
    if (env.created) log(`Autobahn|Testsuite set up in ${env.seconds.toFixed(0)} s`);
    const suite = JSON.parse(runPython(env.python, [path.join(__dirname, "testsuite.py"), "cases"]));

    if (!options.modes.some((mode) => selectCases(suite, mode, options, expected).length)) {
        throw new UsageError(`no case of the modes ${options.modes.join(", ")} matches --cases ${options.cases.join(",")}`);
    }

    // One folder per run: runs side by side (another worktree sharing .autobahn/) keep theirs.
    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
    const reportsRoot = options.keep ? path.join(HOME, "reports", `${stamp}-${process.pid}`) :
        fs.mkdtempSync(path.join(os.tmpdir(), "pyws-autobahn-"));
    fs.mkdirSync(reportsRoot, { recursive: true });
    if (!options.keep) process.on("exit", () => fs.rmSync(reportsRoot, { recursive: true, force: true }));

    const outcomes = [];
    try {
        for (const mode of options.modes) {
            if (interrupted) break;
            const ids = selectCases(suite, mode, options, expected);
            if (!ids.length) {
                log(`${mode}: no selected case, skipped`);
                continue;
            }
            const outdir = path.join(reportsRoot, mode);
            log(`${mode} (${MODES[mode].about}): ${ids.length} cases`);
            const started = Date.now();
            const run = MODES[mode].kind === "listener" ? runListenerMode : runClientMode;
            let result;
            try {
                result = await run(mode, ids, env, outdir, options);
            } catch (err) {
                result = { results: null, notes: [], error: err.message };
                if (!interrupted) log(`${mode}: ERROR ${err.message}`);
            }
            const took = seconds(started);
            log(`${mode}: done in ${took.toFixed(1)} s`);
            outcomes.push(Object.assign({ mode, ids, outdir, seconds: took },
                result, report.judge(expected, MODES[mode].like || mode, ids, result.results, outdir)));
        }
    } finally {
        await processes.stopAll();
    }
    if (interrupted) return new Promise(() => {}); // the signal handler exits (130) once all is stopped

    const lines = [""];
    for (const o of outcomes) {
        const reference = !!MODES[o.mode].core;
        lines.push(`== ${o.mode}: ${MODES[o.mode].about}: ${o.ids.length} cases in ${o.seconds.toFixed(1)} s`);
        if (o.cpu) {
            lines.push(`    CPU seconds: ${Object.entries(o.cpu).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")}` +
                " (Node-RED's and the worker's include their start)");
        }
        if (o.error) lines.push(`    ERROR: ${o.error.split("\n").join("\n    ")}`);
        lines.push(...report.groupTable(o.counts, suite.categories));
        for (const note of o.notes) lines.push(`    note: ${note}`);
        lines.push(...report.acceptedLines(o.rows, expected.acceptable));
        if (reference) {
            if (o.differences.length) {
                lines.push(`    would differ from expected.json (reference only, ${o.differences.length}):`);
                lines.push(...report.caseLines(o.differences, suite.descriptions));
            }
        } else if (o.differences.length) {
            lines.push(`    differences from expected.json (${o.differences.length}):`);
            lines.push(...report.caseLines(o.differences, suite.descriptions));
        } else {
            lines.push("    every outcome as expected.json says");
        }
        if (options.keep) lines.push(`    reports: ${path.relative(process.cwd(), path.join(o.outdir, "index.html"))}`);
        lines.push("");
    }

    const compared = outcomes.filter((o) => !MODES[o.mode].core);
    const differing = compared.filter((o) => o.differences.length || o.error);
    const total = seconds(began);
    lines.push("== summary");
    for (const o of outcomes) {
        const counts = {};
        for (const row of o.rows) counts[row.outcome] = (counts[row.outcome] || 0) + 1;
        const text = Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ");
        const verdict = MODES[o.mode].core ? "reference" :
            o.error ? "ERROR" : o.differences.length ? `${o.differences.length} differ` : "as expected";
        lines.push(`    ${o.mode.padEnd(20)}${o.seconds.toFixed(1).padStart(7)} s  ${verdict.padEnd(12)} ${text}`);
    }
    lines.push(`    total ${total.toFixed(0)} s` + (env.created ? ` (of which ${env.seconds.toFixed(0)} s setting up .autobahn/)` : ""));
    if (options.keep) lines.push(`    reports kept in ${path.relative(process.cwd(), reportsRoot)}/`);
    if (differing.length) {
        lines.push(`RESULT: outcomes differ from scripts/conformance/expected.json in ${differing.map((o) => o.mode).join(", ")}`);
    } else if (compared.length) {
        lines.push("RESULT: every outcome matches scripts/conformance/expected.json");
    } else {
        lines.push("RESULT: nothing compared (reference modes only)");
    }
    console.log(lines.join("\n"));

    if (options.keep) {
        fs.writeFileSync(path.join(reportsRoot, "summary.json"), `${JSON.stringify({
            seconds: total, modes: outcomes.map((o) => ({ mode: o.mode, seconds: o.seconds, error: o.error || null,
                notes: o.notes, counts: o.counts,
                differences: o.differences.map((row) => ({ id: row.id, outcome: row.outcome, expected: row.rule.accept })) })),
        }, null, 2)}\n`);
    } else {
        fs.rmSync(reportsRoot, { recursive: true, force: true });
    }
    return differing.length ? 1 : 0;
}

main().then((code) => process.exit(code), (err) => {
    console.error(`[conformance] ${err instanceof UsageError ? `${err.message}\n${USAGE}` : err.message}`);
    processes.stopAll().finally(() => process.exit(2));
});
