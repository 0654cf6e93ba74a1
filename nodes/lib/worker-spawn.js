/**
 * How the worker process is started (`python -m websocket_worker`, the fds of docs/protocol.md,
 * its environment) and how its stdout and stderr become log lines.
 */
"use strict";

const childProcess = require("child_process");
const { workerEnv } = require("./python-env");

/**
 * `python -m websocket_worker` with the event channel on fd 4 and Node's IPC channel on fd 3,
 * none of it keeping Node-RED from exiting: the worker then sees the end of its channel and exits.
 */
function spawnWorker(python) {
    const env = Object.assign(workerEnv(), { PYTHONUNBUFFERED: "1" });
    const child = childProcess.spawn(python, ["-m", "websocket_worker", "--events-fd", "4", "--handoff-fd", "3"],
        { stdio: ["ignore", "pipe", "pipe", "ipc", "pipe"], env, windowsHide: true });
    child.unref();
    if (child.channel && child.channel.unref) child.channel.unref();
    for (const stream of [child.stdout, child.stderr, child.stdio[4]]) {
        if (!stream) continue;
        stream.on("error", () => {});
        if (stream.unref) stream.unref();
    }
    return child;
}

/** Calls onLine for every non-blank line written to stream. */
function pipeLines(stream, onLine) {
    let rest = "";
    stream.on("data", (chunk) => {
        const lines = (rest + chunk.toString()).split(/\r?\n/);
        rest = lines.pop();
        for (const line of lines) if (line.trim()) onLine(line);
    });
}

module.exports = { spawnWorker, pipeLines };
