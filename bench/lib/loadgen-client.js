/**
 * The load generator (bench/loadgen.js) as a child process, and a request/response call over its
 * IPC channel; started with a raised open-file limit (`ulimit -n`) when one is given.
 */
"use strict";

const childProcess = require("child_process");
const path = require("path");

const IPC_TIMEOUT_MS = 10 * 60 * 1000;

/** The load generator process and a request/response call over its IPC channel. */
function startLoadgen(fileLimit) {
    const script = path.join(__dirname, "..", "loadgen.js");
    const child = fileLimit
        ? childProcess.spawn("bash", ["-c", `ulimit -n ${fileLimit} && exec '${process.execPath}' '${script}'`],
            { stdio: ["ignore", "inherit", "inherit", "ipc"] })
        : childProcess.fork(script, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const waiting = new Map();
    let nextId = 1;
    child.on("message", ({ id, result, error }) => {
        const entry = waiting.get(id);
        if (!entry) return;
        waiting.delete(id);
        clearTimeout(entry.timer);
        if (error) entry.reject(new Error(`loadgen: ${error}`));
        else entry.resolve(result);
    });
    child.on("exit", (code, signal) => {
        for (const entry of waiting.values()) entry.reject(new Error(`loadgen exited (${code || signal})`));
        waiting.clear();
    });
    const call = (command, args) => new Promise((resolve, reject) => {
        const id = nextId++;
        const timer = setTimeout(() => {
            waiting.delete(id);
            reject(new Error(`loadgen ${command} did not answer in ${IPC_TIMEOUT_MS / 1000} s`));
        }, IPC_TIMEOUT_MS);
        waiting.set(id, { resolve, reject, timer });
        child.send({ id, command, args });
    });
    return { child, call, stop: () => child.connected && child.disconnect() };
}

module.exports = { startLoadgen };
