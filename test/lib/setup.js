/**
 * Loaded by mocha before every run (.mocharc.js):
 *  - the checkout's .venv is the worker's Python (set up by `npm test` through
 *    scripts/run-python.js, or at first use by the bridge itself), so tests don't install into
 *    ~/.node-red;
 *  - after the last test, anything still holding the event loop (a server, socket, timer or
 *    process a test left behind) fails the run with its list, instead of mocha waiting forever;
 *  - with PYWS_TEST_WORKERS set, every test helper load asks for that many workers
 *    (pyWebsocketWorkers), unless the test sets its own.
 */
"use strict";
const path = require("path");

process.env.NODE_RED_PYTHON_VENV = process.env.NODE_RED_PYTHON_VENV ||
    path.resolve(__dirname, "..", "..", ".venv");

const { ms, delay, TEST_WORKERS } = require("./harness");

if (TEST_WORKERS !== undefined) {
    const helper = require("node-red-node-test-helper");
    const settings = helper.settings;
    helper.settings = function (userSettings) {
        return settings.call(this, userSettings && Object.assign({ pyWebsocketWorkers: TEST_WORKERS }, userSettings));
    };
    // Specs that drive the bridge without the helper (https_relay_spec) get it too.
    require("../../nodes/lib/bridge").getBridge().configure({ settings: { pyWebsocketWorkers: TEST_WORKERS } });
}

function describe(handle) {
    const name = handle.constructor ? handle.constructor.name : typeof handle;
    if (handle.spawnfile) return `${name} ${handle.spawnfile} (pid ${handle.pid})`;
    if (typeof handle.address === "function") {
        const address = handle.remoteAddress ? `${handle.remoteAddress}:${handle.remotePort}` : handle.address();
        return `${name} ${JSON.stringify(address)}`;
    }
    return name;
}

/**
 * What still holds the event loop (handles but stdio, and timers) once it had ms(10000) to let go:
 * Node-RED itself arms a 5 s timer for every upgrade request (inboundWebSocketTimeout).
 */
async function leftovers() {
    const stdio = [process.stdin, process.stdout, process.stderr];
    const deadline = Date.now() + ms(10000);
    for (;;) {
        const handles = process._getActiveHandles().filter((handle) => !stdio.includes(handle));
        // One timer is mocha's own, for the hook running this.
        const timers = process.getActiveResourcesInfo().filter((type) => type === "Timeout").slice(1);
        const left = handles.map(describe).concat(timers);
        if (left.length === 0 || Date.now() > deadline) return left;
        await delay(50);
    }
}

exports.mochaHooks = {
    async afterAll() {
        this.timeout(ms(20000));
        const left = await leftovers();
        if (left.length > 0) {
            // The handles would keep mocha from exiting: report them, then end the run.
            setTimeout(() => process.exit(process.exitCode || 1), 1000).unref();
            throw new Error(`handles left open after the last test: ${left.join(", ")}`);
        }
    },
};
