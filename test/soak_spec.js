/**
 * Soak, bounded (SOAK_SECONDS, default 30): echo and broadcast traffic through a listener and a
 * client connection while the worker is killed again and again. After every recovery nothing the
 * worker accepted is lost, and Node-RED's memory stays flat.
 */
"use strict";

const helper = require("node-red-node-test-helper");
const websocketNodes = require("../nodes/websocket.js");
const { getBridge } = require("../nodes/lib/bridge");
const { waitFor, connectClient, startServer, stopServer, wsUrl, delay, ms } = require("./lib/harness");

helper.init(require.resolve("node-red"));

const SOAK_MS = Number(process.env.SOAK_SECONDS || 30) * 1000;

function heapAfterGc() {
    if (global.gc) {
        global.gc();
        global.gc();
    }
    return process.memoryUsage().heapUsed;
}

describe("soak: traffic while the worker is killed repeatedly", function () {
    this.timeout(SOAK_MS + 120000);
    let remote;
    before(async function () {
        await helper.startServer();
        remote = await startServer();
        remote.on("connection", (ws) => ws.on("message", (data) => ws.send(data.toString())));
    });
    after(async function () {
        await helper.unload();
        await stopServer(remote);
        await helper.stopServer();
    });

    it("loses nothing accepted after each recovery and keeps memory flat", async function () {
        await helper.load(websocketNodes, [
            { id: "listener", type: "py-websocket-listener", path: "/soak", wholemsg: "false" },
            { id: "in", type: "py-websocket in", server: "listener", client: "", wires: [["out"]] },
            { id: "out", type: "py-websocket out", server: "listener", client: "" },
            { id: "client", type: "py-websocket-client", path: remote.url, tls: "", wholemsg: "false",
                subprotocol: "", hb: "0", headers: [] },
            { id: "cin", type: "py-websocket in", server: "", client: "client", wires: [["seen"]] },
            { id: "cout", type: "py-websocket out", server: "", client: "client" },
            { id: "seen", type: "helper" },
        ]);
        const bridge = getBridge();
        const fromRemote = [];
        helper.getNode("seen").on("input", (msg) => fromRemote.push(msg.payload));
        let baseline = null;
        let rounds = 0;
        let kills = 0;
        const started = Date.now();
        while (Date.now() - started < SOAK_MS) {
            await waitFor("the worker", () => bridge.isReady() && helper.getNode("client").clientOpen, ms(15000));
            const clients = await Promise.all([0, 1, 2, 3].map(() => connectClient(wsUrl(helper, "/soak"))));
            await waitFor("4 sessions", () => Object.keys(helper.getNode("listener")._clients).length === 4);
            fromRemote.length = 0;
            for (let i = 0; i < 250; i++) {
                clients.forEach((ws, c) => ws.send(`r${rounds} c${c} m${i}`));
                helper.getNode("cout").receive({ payload: `r${rounds} remote m${i}` });
            }
            for (let b = 0; b < 20; b++) helper.getNode("out").receive({ payload: `r${rounds} broadcast ${b}` });
            await waitFor("every echo and broadcast", () => clients.every((ws) => ws.received.length === 270), ms(20000));
            clients.forEach((ws, c) => {
                const echoes = ws.received.filter((text) => text.includes(` c${c} `));
                echoes.should.eql(Array.from({ length: 250 }, (_, i) => `r${rounds} c${c} m${i}`));
                ws.received.filter((text) => text.includes("broadcast")).length.should.equal(20);
            });
            await waitFor("the remote echoes", () => fromRemote.length === 250, ms(20000));
            fromRemote.should.eql(Array.from({ length: 250 }, (_, i) => `r${rounds} remote m${i}`));
            rounds++;
            if (baseline === null && rounds === 2) baseline = heapAfterGc();
            // Kill the worker with traffic in flight, then let the next round prove recovery.
            clients.forEach((ws) => ws.send("in flight"));
            process.kill(bridge.child.pid, "SIGKILL");
            kills++;
            await Promise.all(clients.map((ws) => new Promise((resolve) =>
                (ws.readyState === 3 ? resolve() : ws.once("close", resolve)))));
            await delay(50);
        }
        rounds.should.be.aboveOrEqual(3);
        kills.should.equal(rounds);
        const growthMiB = (heapAfterGc() - baseline) / (1024 * 1024);
        growthMiB.should.be.below(16, `heap grew by ${growthMiB.toFixed(1)} MiB over ${rounds} rounds`);
    });
});
