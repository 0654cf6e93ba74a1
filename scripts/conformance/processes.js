/**
 * Every process the conformance run starts, so that none outlives it: on a normal end, on an
 * error, and on SIGINT/SIGTERM/SIGHUP (ctrl-C). Each is stopped by its own pid, politely first.
 * Node-RED's Python worker is its child: it is looked up (pgrep -P) before Node-RED is stopped
 * and ended by pid if it has not left with Node-RED.
 */
"use strict";

const childProcess = require("child_process");
const { cpuSeconds, childPids } = require("../../bench/lib/proc");
const { alive } = require("../../test/lib/node-red-process");

const live = new Set();

/**
 * Samples the CPU time of named processes every second; `roles()` returns {name: [pids]}.
 * stop() returns {name: seconds} (the last reading of each pid, so exited ones count too).
 */
function cpuSampler(roles) {
    const last = {};
    const sample = () => {
        for (const [name, pids] of Object.entries(roles())) {
            for (const pid of pids) {
                const value = cpuSeconds(pid);
                if (value !== null) last[`${name}:${pid}`] = value;
            }
        }
    };
    const timer = setInterval(sample, 1000);
    return {
        stop() {
            sample();
            clearInterval(timer);
            const total = {};
            for (const [key, value] of Object.entries(last)) {
                const name = key.split(":")[0];
                total[name] = (total[name] || 0) + value;
            }
            return total;
        },
    };
}

function delay(milliseconds) {
    return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

async function waitGone(pids, milliseconds) {
    const deadline = Date.now() + milliseconds;
    while (pids.some(alive) && Date.now() < deadline) await delay(50);
    return !pids.some(alive);
}

/**
 * Spawns a tracked process. Returns the ChildProcess with `exited` (a promise of {code, signal})
 * and `output` (stdout + stderr, the last `keep` characters).
 */
function spawn(command, args, options = {}, keep = 1 << 20) {
    const child = childProcess.spawn(command, args, Object.assign({ stdio: ["ignore", "pipe", "pipe"] }, options));
    child.output = "";
    const collect = (chunk) => {
        child.output += chunk;
        if (child.output.length > keep * 2) child.output = child.output.slice(-keep);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.exited = new Promise((resolve) => {
        child.once("error", (err) => resolve({ code: null, signal: null, error: err }));
        child.once("exit", (code, signal) => resolve({ code, signal }));
    });
    child.exited.then(() => live.delete(child));
    live.add(child);
    return child;
}

function running(child) {
    return child.exitCode === null && child.signalCode === null && live.has(child);
}

/** SIGTERM, then SIGKILL after `grace` ms; then its children (found first) the same way. */
async function stop(child, grace = 10000) {
    if (!child.pid) return;
    const children = running(child) ? childPids(child.pid) : [];
    if (running(child)) {
        try { child.kill("SIGTERM"); } catch (_) { /* gone */ }
        if (!(await waitGone([child.pid], grace))) {
            try { child.kill("SIGKILL"); } catch (_) { /* gone */ }
        }
        await Promise.race([child.exited, delay(grace)]);
    }
    // Node-RED's worker leaves by itself when its channel closes; give it a moment first.
    if (children.length && !(await waitGone(children, 5000))) {
        for (const pid of children) {
            try { process.kill(pid, "SIGKILL"); } catch (_) { /* gone */ }
        }
        await waitGone(children, 2000);
    }
}

async function stopAll() {
    await Promise.all([...live].map((child) => stop(child, 5000)));
}

/** Installs the handlers that stop everything on ctrl-C and kill what is left at exit. */
function installCleanup(onSignal) {
    let stopping = false;
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
        process.on(signal, () => {
            if (stopping) return;
            stopping = true;
            if (onSignal) onSignal(signal);
            stopAll().finally(() => process.exit(130));
        });
    }
    process.on("exit", () => {
        for (const child of live) {
            for (const pid of childPids(child.pid)) {
                try { process.kill(pid, "SIGKILL"); } catch (_) { /* gone */ }
            }
            try { child.kill("SIGKILL"); } catch (_) { /* gone */ }
        }
    });
}

module.exports = { spawn, stop, stopAll, installCleanup, delay, alive, childPids, cpuSampler };
