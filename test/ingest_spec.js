/**
 * Flow control end to end, in a real `node-red` process (the test helper keeps every sent msg in
 * its spies, so it cannot measure memory): a remote server streaming 200,000 messages to a
 * client-mode `in` node faster than the flow takes them is pushed back by TCP instead of growing
 * Node-RED's memory, and every message arrives once, in order.
 */
"use strict";

const fs = require("fs");
require("should");
const path = require("path");
const { NodeRedProcess, ROOT } = require("./lib/node-red-process");
const { waitFor, startServer, stopServer, ms } = require("./lib/harness");

const TOTAL = 200000;

function rssMiB(pid) {
    const line = fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
    return Number(line.split(/\s+/)[1]) / 1024;
}

describe("client ingest under flow control", function () {
    this.timeout(ms(180000));

    it(`takes ${TOTAL} streamed messages in order while Node-RED's memory grows less than 64 MiB`, async function () {
        const remote = await startServer();
        let done = null;
        remote.on("connection", (ws) => {
            ws.on("message", (data) => { done = data.toString(); });
            let sent = 0;
            const pump = () => {
                while (sent < TOTAL && ws.bufferedAmount < 256 * 1024) {
                    ws.send(`${sent} ${"x".repeat(48)}`);
                    sent++;
                }
                if (sent < TOTAL && ws.readyState === 1) setImmediate(pump);
            };
            pump();
        });
        const red = await new NodeRedProcess({ env: { NODE_RED_PYTHON_VENV: path.join(ROOT, ".venv") } }).start();
        try {
            await red.deploy([
                { id: "tab0000000000001", type: "tab", label: "Ingest" },
                { id: "client0000000001", type: "py-websocket-client", path: remote.url, tls: "", wholemsg: "false",
                    subprotocol: "", hb: "0", headers: [] },
                { id: "in00000000000001", type: "py-websocket in", z: "tab0000000000001", server: "",
                    client: "client0000000001", wires: [["count00000000001"]] },
                { id: "count00000000001", type: "function", z: "tab0000000000001", name: "count", outputs: 1,
                    func: "const n = context.get('n') || 0;\n" +
                        "if (Number(msg.payload.split(' ')[0]) !== n) context.set('bad', true);\n" +
                        "context.set('n', n + 1);\n" +
                        `if (n + 1 === ${TOTAL}) return { payload: 'done ' + (n + 1) + ' ' + (context.get('bad') ? 'out-of-order' : 'in-order') };\n` +
                        "return null;",
                    wires: [["out0000000000001"]] },
                { id: "out0000000000001", type: "py-websocket out", z: "tab0000000000001", server: "",
                    client: "client0000000001", wires: [] },
            ]);
            await waitFor("the connection", () => remote.connections.length === 1, ms(15000));
            const baseline = rssMiB(red.child.pid);
            let peak = baseline;
            const sampler = setInterval(() => { peak = Math.max(peak, rssMiB(red.child.pid)); }, 50);
            try {
                await waitFor("every message through the flow", () => done !== null, ms(150000));
            } finally {
                clearInterval(sampler);
            }
            done.should.equal(`done ${TOTAL} in-order`);
            (peak - baseline).should.be.below(64, `Node-RED's RSS grew by ${(peak - baseline).toFixed(1)} MiB`);
        } finally {
            await red.cleanup();
            await stopServer(remote);
        }
    });
});
