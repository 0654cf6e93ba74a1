/**
 * 10,000 connect/close cycles on a listener leave the worker's and Node-RED's open file
 * descriptors and memory back at their baseline.
 */
"use strict";

require("should");
const fs = require("fs");
const helper = require("node-red-node-test-helper");
const websocketNodes = require("../nodes/websocket.js");
const { getBridge } = require("../nodes/lib/bridge");
const { waitFor, connectClient, closeClient, wsUrl, ms, withHelper } = require("./lib/harness");

helper.init(require("./lib/node-red-path").redMain);

const CYCLES = Number(process.env.CYCLES || 10000);
const PARALLEL = 25;

function openFds(pid) {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
}

function rssKiB(pid) {
    const line = fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
    return Number(line.split(/\s+/)[1]);
}

describe("connect/close cycles", function () {
    this.timeout(ms(300000));
    withHelper(helper);

    it(`returns to the baseline of fds and memory after ${CYCLES} cycles`, async function () {
        await helper.load(websocketNodes, [
            { id: "listener", type: "py-websocket-listener", path: "/cycle", wholemsg: "false" },
            { id: "in", type: "py-websocket in", server: "listener", client: "", wires: [["out"]] },
            { id: "out", type: "py-websocket out", server: "listener", client: "" },
        ]);
        const listener = helper.getNode("listener");
        const cycle = async () => {
            const ws = await connectClient(wsUrl(helper, "/cycle"));
            ws.send("x");
            await waitFor("the echo", () => ws.received.length === 1);
            await closeClient(ws);
        };
        const settle = () => waitFor("no sessions", () => listener.role.sessions.size === 0, ms(10000));
        for (let i = 0; i < 200; i += PARALLEL) await Promise.all(Array.from({ length: PARALLEL }, cycle));
        await settle();
        const worker = getBridge().workerPid;
        const before = { workerFds: openFds(worker), nodeFds: openFds(process.pid), workerRss: rssKiB(worker) };
        for (let i = 0; i < CYCLES; i += PARALLEL) await Promise.all(Array.from({ length: PARALLEL }, cycle));
        await settle();
        getBridge().workerPid.should.equal(worker);
        await waitFor("the worker's fds back at baseline", () => openFds(worker) <= before.workerFds, ms(10000));
        await waitFor("Node-RED's fds back at baseline", () => openFds(process.pid) <= before.nodeFds + 2, ms(10000));
        const growthMiB = (rssKiB(worker) - before.workerRss) / 1024;
        growthMiB.should.be.below(8, `worker RSS grew by ${growthMiB.toFixed(1)} MiB`);
    });
});
