#!/usr/bin/env node
/**
 * The backplane's cost, measured: broadcast to 1,000 clients (bench/flows.js broadcastFlow, 64-byte
 * messages in bursts from a function node) in four set-ups, fresh processes each time, order
 * rotating per repeat, all on 127.0.0.1:
 *
 *   core        one Node-RED with the core nodes (the reference of the target)
 *   ours        one Node-RED with ours, no backplane (the default)
 *   ours+bp     one Node-RED with ours, the fan-out listener on a backplane (Redis): the cost of
 *               publishing each broadcast, with nobody else subscribed
 *   ours+bp×2   two Node-REDs with ours and the same flow, both on the backplane; the clients
 *               spread evenly over both, the broadcasts made on the first
 *
 *   node bench/backplane.js [--repeat 3] [--clients 1000] [--messages 200] [--rounds 300]
 *                           [--out bench/results/backplane.json]
 *
 * Figures (medians, min–max): deliveries/s from the trigger to the last delivery; the CPU of
 * every server process (Node-RED, workers, redis-server) per delivery; and, with one client per
 * instance, `--rounds` single broadcasts one at a time: p50 and p99 of the time from the trigger
 * to the client of each instance (instance 2's minus instance 1's is the backplane's hop). A run
 * is marked when a delivery was lost, a client was short, or a warning was logged.
 */
"use strict";

const fs = require("fs");
const path = require("path");
const flows = require("./flows");
const { NodeRed, delay, ROOT } = require("./lib/node-red");
const { startLoadgen } = require("./lib/loadgen-client");
const { fileLimits } = require("./lib/proc");
const { RedisServer, ensureRedis } = require("../test/lib/redis-server");

const VENV = process.env.NODE_RED_PYTHON_VENV || path.join(ROOT, ".venv");
const SETUPS = ["core", "ours", "ours+bp", "ours+bp×2"];

function parseArgs(argv) {
    const options = { repeat: 3, clients: 1000, messages: 200, rounds: 300,
        out: path.join(__dirname, "results", "backplane.json") };
    for (let i = 0; i < argv.length; i++) {
        const name = argv[i].replace(/^--/, "");
        if (!(name in options) || i + 1 >= argv.length) throw new Error(`unknown or incomplete argument ${argv[i]}`);
        options[name] = name === "out" ? path.resolve(argv[++i]) : Number(argv[++i]);
    }
    return options;
}

function log(text) {
    process.stderr.write(`[bench:backplane] ${text}\n`);
}

/** The broadcast flow for a set-up: core's, or ours with the fan-out listener on the backplane. */
function flowFor(setup) {
    const core = flows.broadcastFlow();
    if (setup === "core") return core;
    const ours = flows.toOurs(core);
    if (setup === "ours") return ours;
    return ours.map((node) => (node.type === "py-websocket-listener" && node.path === flows.PATHS.fanout
        ? Object.assign({}, node, { backplane: true }) : node));
}

async function runSetup(setup, options, loadgen, fileLimit) {
    const instances = setup === "ours+bp×2" ? 2 : 1;
    const redis = setup.startsWith("ours+bp") ? await new RedisServer().start() : null;
    const settings = redis ? `pyWebsocketListenerBackplane: ${JSON.stringify(redis.url)}` : "";
    const reds = [];
    try {
        for (let i = 0; i < instances; i++) {
            reds.push(await new NodeRed({ env: { NODE_RED_PYTHON_VENV: VENV }, fileLimit, settings }).start());
        }
        const marks = reds.map((nr) => nr.output.length); // start-up lines are not the run's
        const nodes = flowFor(setup);
        for (const nr of reds) await nr.deploy(nodes);
        for (const nr of reds) {
            const probe = await loadgen("probe", { url: `ws://127.0.0.1:${nr.port}${flows.PATHS.fanout}`, timeoutMs: 60000 });
            if (!probe.ok) throw new Error(`listener never served: ${probe.error}`);
        }
        await delay(1000); // the backplane's links subscribe
        const [first, ...others] = reds.map((nr) => nr.pids());
        const pids = { main: first.main, children: first.children.concat(...others.map((p) => [p.main, ...p.children]),
            redis ? [redis.child.pid] : []) };
        const fanoutUrl = reds.map((nr) => `ws://127.0.0.1:${nr.port}${flows.PATHS.fanout}`);
        const triggerUrl = `ws://127.0.0.1:${reds[0].port}${flows.PATHS.trigger}`;
        const r = await loadgen("broadcast", { fanoutUrl, triggerUrl, clients: options.clients,
            messages: options.messages, warmupMessages: 5, concurrency: 100, pids, stallMs: 10000 });
        // Latency on its own, one client per instance: with 1,000 clients the time to the last
        // one is mostly the load generator's own reading of 1,000 sockets.
        const lat = await loadgen("broadcast", { fanoutUrl, triggerUrl, clients: instances, messages: 1,
            warmupMessages: 5, concurrency: 1, pids, stallMs: 10000, latencyRounds: options.rounds });
        const problems = [];
        for (const run of [r, lat]) {
            if (run.error) problems.push(run.error);
            if (run.lost) problems.push(`${run.lost} of ${run.expected} deliveries lost`);
            if (run.warmupClientsShort) problems.push(`${run.warmupClientsShort} clients missed the warm-up`);
        }
        reds.forEach((nr, i) => problems.push(...nr.problems(marks[i])));
        const ok = !r.error && r.delivered > 0;
        const at = (list, i) => (list && list.length > i ? list[i] : null);
        return { setup, problems, raw: { throughput: r, latency: lat }, figures: {
            rate: ok ? r.delivered / r.seconds : null,
            cpuPerDelivery: ok ? (r.cpuAll / r.delivered) * 1e6 : null,
            latencyFirst: at(lat.latencyToLastP50, 0),
            latencySecond: at(lat.latencyToLastP50, 1),
            latencyFirstP99: at(lat.latencyToLastP99, 0),
            latencySecondP99: at(lat.latencyToLastP99, 1),
        } };
    } finally {
        for (const nr of reds) await nr.stop();
        if (redis) await redis.kill();
    }
}

function median(values) {
    const list = values.filter((v) => v !== null && v !== undefined).sort((a, b) => a - b);
    return list.length ? list[Math.floor(list.length / 2)] : null;
}

function fmt(value, digits = 0) {
    return value === null ? "–" : value.toLocaleString("en-US", { maximumFractionDigits: digits,
        minimumFractionDigits: digits });
}

function table(runs) {
    const rows = [["set-up", "deliveries/s", "× core", "CPU µs/delivery (all servers)",
        "latency p50 / p99, instance 1 (µs)", "instance 2 (µs)", "problems"]];
    const coreRate = median(runs.filter((r) => r.setup === "core").map((r) => r.figures.rate));
    for (const setup of SETUPS) {
        const mine = runs.filter((r) => r.setup === setup);
        if (!mine.length) continue;
        const pick = (key) => mine.map((r) => r.figures[key]);
        const span = (key, digits) => {
            const list = pick(key).filter((v) => v !== null);
            return list.length > 1 ? ` (${fmt(Math.min(...list), digits)}–${fmt(Math.max(...list), digits)})` : "";
        };
        const rate = median(pick("rate"));
        rows.push([setup, fmt(rate) + span("rate", 0), rate && coreRate ? fmt(rate / coreRate, 2) : "–",
            fmt(median(pick("cpuPerDelivery")), 2),
            `${fmt(median(pick("latencyFirst")))} / ${fmt(median(pick("latencyFirstP99")))}`,
            `${fmt(median(pick("latencySecond")))} / ${fmt(median(pick("latencySecondP99")))}`,
            `${mine.filter((r) => r.problems.length).length}/${mine.length}`]);
    }
    const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
    return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i])).join(" | ")).join("\n");
}

async function main() {
    const options = parseArgs(process.argv.slice(2));
    ensureRedis();
    const [soft, hard] = fileLimits();
    const needed = options.clients + 512;
    if (hard < needed) throw new Error(`open-file limit ${hard} is below the ${needed} needed`);
    const fileLimit = soft < needed ? needed : 0;
    const lg = startLoadgen(fileLimit);
    const runs = [];
    const began = Date.now();
    try {
        for (let repeat = 1; repeat <= options.repeat; repeat++) {
            const shift = (repeat - 1) % SETUPS.length;
            for (const setup of SETUPS.slice(shift).concat(SETUPS.slice(0, shift))) {
                log(`repeat ${repeat}/${options.repeat} ${setup} …`);
                let record;
                try {
                    record = await runSetup(setup, options, lg.call, fileLimit);
                } catch (err) {
                    record = { setup, problems: [`failed: ${err.message.split("\n")[0]}`], figures: {} };
                }
                record.repeat = repeat;
                runs.push(record);
                log(`  ${JSON.stringify(record.figures)}${record.problems.length ? "  PROBLEMS: " +
                    record.problems.slice(0, 3).join("; ") : ""}`);
            }
        }
    } finally {
        lg.stop();
    }
    const text = table(runs);
    console.log(`\nbroadcast to ${options.clients} clients, ${options.messages} messages of 64 B per burst, ` +
        `${options.repeat} repeats, ${((Date.now() - began) / 1000).toFixed(0)} s; medians (min–max)\n\n${text}`);
    fs.mkdirSync(path.dirname(options.out), { recursive: true });
    fs.writeFileSync(options.out, JSON.stringify({ options, runs }, null, 2) + "\n");
    console.log(`\nresults: ${path.relative(process.cwd(), options.out)}`);
}

main().catch((err) => {
    console.error(err.stack || String(err));
    process.exit(1);
});
