/**
 * Soak, bounded (SOAK_SECONDS, default 30), in a real `node-red` process: echo, broadcast and
 * client-mode traffic while the worker is killed with SIGKILL again and again. After every
 * recovery nothing the worker accepted is lost, and Node-RED's heap stays flat.
 *
 * Flow: clients of /soak send "e:…" (echoed to the sender), "b:…" (broadcast to every client) and
 * "r:…" (sent through a client connection to a remote echo server, whose answer is broadcast).
 */
"use strict";

const path = require("path");
require("should");
const { NodeRedProcess, alive, ROOT } = require("./lib/node-red-process");
const { LIMITS } = require("../nodes/lib/options");
const { waitFor, connectClient, startServer, stopServer, delay, ms } = require("./lib/harness");

const SOAK_MS = Number(process.env.SOAK_SECONDS || 30) * 1000;
const PER_CLIENT = 200;

const ROUTE = `
if (msg.payload.startsWith("b:")) { delete msg._session; return [msg, null]; }
if (msg.payload.startsWith("r:")) { delete msg._session; return [null, msg]; }
return [msg, null];`;

function soakFlow(remoteUrl) {
    const z = "tab0000000000001";
    return [
        { id: z, type: "tab", label: "Soak" },
        { id: "listener00000001", type: "py-websocket-listener", path: "/soak", wholemsg: "false" },
        { id: "client0000000001", type: "py-websocket-client", path: remoteUrl, tls: "", wholemsg: "false",
            subprotocol: "", hb: "0", headers: [] },
        { id: "in00000000000001", type: "py-websocket in", z, server: "listener00000001", client: "",
            wires: [["route00000000001"]] },
        { id: "route00000000001", type: "function", z, func: ROUTE, outputs: 2,
            wires: [["out0000000000001"], ["cout000000000001"]] },
        { id: "out0000000000001", type: "py-websocket out", z, server: "listener00000001", client: "", wires: [] },
        { id: "cout000000000001", type: "py-websocket out", z, server: "", client: "client0000000001", wires: [] },
        { id: "cin0000000000001", type: "py-websocket in", z, server: "", client: "client0000000001",
            wires: [["tobroad000000001"]] },
        { id: "tobroad000000001", type: "function", z, outputs: 1, func: "delete msg._session; return msg;",
            wires: [["out0000000000001"]] },
        { id: "heap000000000001", type: "http in", z, url: "/heap", method: "get", wires: [["heapfn0000000001"]] },
        { id: "heapfn0000000001", type: "function", z, outputs: 1,
            func: "msg.payload = { heap: global.get('heapAfterGc')() }; return msg;", wires: [["heapres000000001"]] },
        { id: "heapres000000001", type: "http response", z, statusCode: "", headers: {}, wires: [] },
    ];
}

describe("soak: traffic while the worker is killed repeatedly", function () {
    this.timeout(SOAK_MS + ms(180000));

    it("loses nothing accepted after each recovery and keeps Node-RED's heap flat", async function () {
        const remote = await startServer();
        remote.on("connection", (ws) => ws.on("message", (data) => ws.send(data.toString())));
        const red = await new NodeRedProcess({
            nodeArgs: ["--expose-gc"],
            settings: "functionGlobalContext: { heapAfterGc: () => { global.gc(); global.gc(); " +
                "return process.memoryUsage().heapUsed; } }",
            env: { NODE_RED_PYTHON_VENV: path.join(ROOT, ".venv") },
        }).start();
        const heap = async () => (await red.api("GET", "/heap")).body.heap;
        try {
            await red.deploy(soakFlow(remote.url));
            let baseline = null;
            let rounds = 0;
            const started = Date.now();
            while (Date.now() - started < SOAK_MS || rounds < 3) {
                const workers = await red.allWorkers();
                const bornAt = Date.now();
                await waitFor("the remote connection", () => remote.clients.size === 1, ms(15000));
                const clients = [];
                for (let c = 0; c < 4; c++) {
                    clients.push(await waitFor("the listener", () => connectClient(`ws://127.0.0.1:${red.port}/soak`,
                        { handshakeTimeout: ms(1000) }).catch(() => null), ms(15000)));
                }
                // Everyone is connected when a broadcast probe reaches all four.
                await waitFor("the sessions", async () => {
                    clients[0].send(`b:probe ${rounds}`);
                    await delay(100);
                    return clients.every((ws) => ws.received.includes(`b:probe ${rounds}`));
                }, ms(10000));
                clients.forEach((ws) => { ws.received.length = 0; });
                for (let i = 0; i < PER_CLIENT; i++) {
                    clients.forEach((ws, c) => ws.send(`e:${rounds}:${c}:${i}`));
                    if (i % 20 === 0) clients[i % 4].send(`b:${rounds}:${i}`);
                    if (i % 20 === 10) clients[i % 4].send(`r:${rounds}:${i}`);
                }
                const expectedShared = 2 * (PER_CLIENT / 20);
                await waitFor("every echo, broadcast and remote answer", () =>
                    clients.every((ws) => ws.received.length === PER_CLIENT + expectedShared), ms(20000))
                    .catch((err) => {
                        throw new Error(`${err.message}: round ${rounds}, received ` +
                            clients.map((ws) => `${ws.received.length} (${["e:", "b:", "r:"].map((p) =>
                                ws.received.filter((t) => t.startsWith(p)).length).join("/")})`).join(", "));
                    });
                clients.forEach((ws, c) => {
                    ws.received.filter((t) => t.startsWith("e:")).should.eql(
                        Array.from({ length: PER_CLIENT }, (_, i) => `e:${rounds}:${c}:${i}`));
                    ws.received.filter((t) => t.startsWith("b:")).length.should.equal(PER_CLIENT / 20);
                    ws.received.filter((t) => t.startsWith("r:")).length.should.equal(PER_CLIENT / 20);
                });
                rounds++;
                if (rounds === 2) baseline = await heap();
                // A worker that served this long counts as healthy and is replaced at once (no crash-loop backoff).
                await delay(Math.max(0, LIMITS.stableAfterMs + 100 - (Date.now() - bornAt)));
                clients.forEach((ws) => ws.send(`e:in flight`));
                for (const pid of workers) process.kill(pid, "SIGKILL"); // every worker (one by default)
                await waitFor("the old workers to go", () => workers.every((pid) => !alive(pid)));
                await Promise.all(clients.map((ws) => new Promise((resolve) =>
                    (ws.readyState === 3 ? resolve() : ws.once("close", resolve)))));
                await waitFor("the remote connection to drop", () => remote.clients.size === 0, ms(10000));
            }
            const growthMiB = ((await heap()) - baseline) / (1024 * 1024);
            growthMiB.should.be.below(8, `heap grew by ${growthMiB.toFixed(1)} MiB over ${rounds} rounds`);
            red.output.split("\n").filter((line) => /\[error\]/.test(line) && !/worker stopped/.test(line))
                .should.eql([]);
        } finally {
            await red.cleanup();
            await stopServer(remote);
        }
    });
});
