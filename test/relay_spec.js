/**
 * A worker that keeps dying right after it starts is restarted with growing backoff, the status
 * says why, and the log says each time how long the next wait is.
 */
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
require("should");
const { WorkerBridge } = require("../nodes/lib/bridge");
const { waitFor, ms } = require("./lib/harness");

const VENV_PYTHON = path.resolve(__dirname, "..", ".venv", "bin", "python");

describe("worker crash loop", function () {
    let dir;
    let bridge;
    let id;
    before(function () {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyws-crash-"));
        // An interpreter that answers the set-up probes but whose worker exits at once.
        const fake = path.join(dir, "python");
        fs.writeFileSync(fake, `#!/bin/sh\nif [ "$1" = "-m" ]; then echo "boom" >&2; exit 3; fi\nexec "${VENV_PYTHON}" "$@"\n`);
        fs.chmodSync(fake, 0o755);
    });
    after(async function () {
        if (bridge && id) await bridge.remove(id);
        if (bridge) clearTimeout(bridge.restartTimer);
        fs.rmSync(dir, { recursive: true, force: true });
    });

    it("backs off 0.2 s, 0.4 s, 0.8 s … and shows why in the status", async function () {
        const logs = [];
        const states = [];
        bridge = new WorkerBridge();
        bridge.configure({
            settings: { pyWebsocketListenerPython: path.join(dir, "python") },
            log: { info: () => {}, debug: () => {}, warn: (m) => logs.push(m), error: (m) => logs.push(m) },
        });
        id = bridge.add("listen", { path: "/x" }, {
            open() {}, message() {}, close() {}, error() {}, workerLost() {},
            workerState: (state, detail) => states.push([state, detail && detail.message]),
        });
        await waitFor("four restarts", () => logs.filter((m) => /restarting in/.test(m)).length >= 4, ms(20000));
        const waits = logs.filter((m) => /restarting in/.test(m)).map((m) => Number(m.match(/restarting in (\d+) ms/)[1]));
        waits.slice(0, 4).should.eql([200, 400, 800, 1600]);
        logs.find((m) => /restarting in/.test(m)).should.match(/worker stopped \(exit code 3\)/);
        logs.some((m) => /boom/.test(m)).should.be.true();
        states.some(([state, why]) => state === "restarting" && why === "exit code 3").should.be.true();
    });
});
