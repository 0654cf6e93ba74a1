/**
 * Whether this Node-RED process is shutting down. Set when the process gets SIGTERM, SIGINT or
 * SIGHUP: the signals Node-RED's red.js answers by stopping the runtime and exiting, and the ones
 * a service manager sends to the whole process group at once (systemd's default: SIGTERM to every
 * process of the service). A worker that exits then was stopped along with Node-RED: it is not a
 * crash, and it is not restarted.
 */
"use strict";

const SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP"];

let stopping = false;
let watching = false;

function onSignal(signal) {
    stopping = true;
    // A listener takes away Node's default action (exit). Where no one else listens (Node-RED
    // embedded without red.js, a test runner), do what would have happened without us.
    if (process.listenerCount(signal) === 1) {
        for (const name of SIGNALS) process.removeListener(name, onSignal);
        watching = false;
        process.kill(process.pid, signal);
    }
}

/** Starts watching for the shutdown signals (once per process). */
function watchShutdown() {
    if (watching) return;
    watching = true;
    for (const signal of SIGNALS) process.on(signal, onSignal);
}

function nodeRedStopping() {
    return stopping;
}

module.exports = { watchShutdown, nodeRedStopping };
