/**
 * Several workers (pyWebsocketWorkers: 2), real processes and real `ws` clients: listener
 * sessions are spread over the workers, a reply reaches its own client and a broadcast every
 * client once, the connection count adds up across workers, a worker killed with SIGKILL takes
 * only its own sessions and is replaced, and client connections are placed one per worker.
 */
"use strict";

require("should");
const helper = require("node-red-node-test-helper");
const websocketNodes = require("../nodes/websocket.js");
const { getBridge } = require("../nodes/lib/bridge");
const {
    waitFor, connectClient, closeClient, withHelper, startServer, stopServer, recordStatuses, wsUrl, ms,
} = require("./lib/harness");
const { echoFlow, clientConfig } = require("./lib/flows");

helper.init(require("./lib/node-red-path").redMain);

const WORKERS = 2;

/** The echo flow, loaded, once every worker serves it. */
async function loadEcho(path) {
    await helper.load(websocketNodes, echoFlow(path));
    const bridge = getBridge();
    const listener = helper.getNode("listener");
    await waitFor("every worker to serve the endpoint", () => bridge.isReady() &&
        bridge.owners.get(listener.role.ownerId).listening.size === WORKERS);
    return listener;
}

/** n clients, connected one after another, each once its session is open. */
async function connectMany(listener, path, n) {
    const clients = [];
    for (let i = 0; i < n; i++) {
        const before = listener.role.sessions.size;
        clients.push(await connectClient(wsUrl(helper, path)));
        await waitFor("the session", () => listener.role.sessions.size === before + 1);
    }
    return clients;
}

/** pid -> number of the listener's open sessions on that worker. */
function sessionsByWorker(listener) {
    const bridge = getBridge();
    const counts = new Map();
    for (const sid of listener.role.sessions.keys()) {
        const pid = bridge.sessionWorkerPid(listener.role.ownerId, sid);
        counts.set(pid, (counts.get(pid) || 0) + 1);
    }
    return counts;
}

async function echoes(ws, text) {
    const before = ws.received.length;
    ws.send(text);
    await waitFor(`the echo of ${text}`, () => ws.received.length > before);
    ws.received.slice(before).should.eql([text]);
}

describe("several workers", function () {
    withHelper(helper, { pyWebsocketWorkers: WORKERS });

    it("spreads listener sessions over the workers, and each reply reaches its own client", async function () {
        const listener = await loadEcho("/spread");
        const bridge = getBridge();
        const clients = await connectMany(listener, "/spread", 8);
        const counts = sessionsByWorker(listener);
        Array.from(counts.keys()).sort().should.eql(bridge.workerPids.slice().sort());
        Array.from(counts.values()).should.eql([4, 4]);
        clients.forEach((ws, i) => ws.send(`only for ${i}`));
        await waitFor("every echo", () => clients.every((ws) => ws.received.length === 1));
        clients.forEach((ws, i) => ws.received.should.eql([`only for ${i}`]));
        await Promise.all(clients.map(closeClient));
    });

    it("delivers a broadcast to every client of every worker, once, in order", async function () {
        const listener = await loadEcho("/all");
        const clients = await connectMany(listener, "/all", 6);
        sessionsByWorker(listener).size.should.equal(WORKERS);
        const out = helper.getNode("out");
        for (let i = 0; i < 50; i++) out.receive({ payload: `all ${i}` });
        out.receive({ payload: Buffer.from([1, 2, 3]) });
        await waitFor("51 broadcasts at every client", () => clients.every((ws) => ws.received.length === 51));
        const expected = Array.from({ length: 50 }, (_, i) => `all ${i}`).concat([Buffer.from([1, 2, 3])]);
        for (const ws of clients) ws.received.should.eql(expected);
        await Promise.all(clients.map(closeClient));
    });

    it("counts the sessions of every worker in the status, and closes one or all by msg.action", async function () {
        const listener = await loadEcho("/count");
        const statuses = recordStatuses(helper.getNode("in"));
        const counts = [];
        listener.on("opened", (event) => counts.push(event.count));
        listener.on("closed", (event) => counts.push(event.count));
        const clients = await connectMany(listener, "/count", 4);
        counts.should.eql([1, 2, 3, 4]);
        const closed = clients.map((ws) => new Promise((resolve) => ws.once("close", (code) => resolve(code))));
        // One client by its session (on whichever worker holds it), then the rest with no _session.
        const first = Array.from(listener.role.sessions.keys())[0];
        helper.getNode("out").receive({ action: "close", code: 4001, _session: { type: "websocket", id: first } });
        await waitFor("one session closed", () => counts.length === 5);
        counts[4].should.equal(3);
        helper.getNode("out").receive({ action: "close", code: 4002 });
        const codes = await Promise.all(closed);
        codes.filter((code) => code === 4001).length.should.equal(1);
        codes.filter((code) => code === 4002).length.should.equal(3);
        await waitFor("every session closed", () => counts.length === 8);
        counts.slice(4).should.eql([3, 2, 1, 0]);
        const disconnects = statuses.filter((s) => s.event === "disconnect");
        disconnects.slice(0, 3).forEach((s) => s.fill.should.equal("green"));
        disconnects[3].should.have.properties({ fill: "red", text: "node-red:common.status.disconnected" });
    });

    it("loses only the killed worker's sessions: the others keep echoing, and it is replaced", async function () {
        const listener = await loadEcho("/kill");
        const bridge = getBridge();
        const clients = await connectMany(listener, "/kill", 6);
        const sidOf = new Map(); // ws -> its session id, from the echo's _session
        const sessionOrder = Array.from(listener.role.sessions.keys()); // in connect order
        clients.forEach((ws, i) => sidOf.set(ws, sessionOrder[i]));
        const victim = bridge.workerPids[0];
        const survivor = bridge.workerPids[1];
        const doomed = clients.filter((ws) => bridge.sessionWorkerPid(listener.role.ownerId, sidOf.get(ws)) === victim);
        const kept = clients.filter((ws) => !doomed.includes(ws));
        doomed.length.should.equal(3);
        const statuses = recordStatuses(helper.getNode("in"));
        const gone = doomed.map((ws) => new Promise((resolve) => ws.once("close", (code) => resolve(code))));
        process.kill(victim, "SIGKILL");
        (await Promise.all(gone)).should.eql([1006, 1006, 1006]);
        await waitFor("the three sessions closed", () => listener.role.sessions.size === 3);
        // The endpoint kept serving: no worker status, only the three disconnects (still connected).
        statuses.filter((s) => s.event === "disconnect").map((s) => s.fill).should.eql(["green", "green", "green"]);
        statuses.some((s) => /worker-down/.test(s.text || "")).should.be.false();
        for (const ws of kept) await echoes(ws, "still here");
        bridge.workerPids[1].should.equal(survivor);
        await waitFor("the replacement", () => bridge.isReady() && bridge.workerPids[0] !== victim &&
            bridge.owners.get(listener.role.ownerId).listening.size === WORKERS, ms(10000));
        const more = await connectMany(listener, "/kill", 4);
        const counts = sessionsByWorker(listener);
        counts.get(bridge.workerPids[0]).should.equal(2);
        counts.get(survivor).should.equal(5);
        for (const ws of more) await echoes(ws, "new worker");
        await Promise.all(kept.concat(more).map(closeClient));
    });
});

describe("several workers with client connections", function () {
    let remote;
    withHelper(helper, { pyWebsocketWorkers: WORKERS });
    beforeEach(async () => { remote = await startServer(); });
    afterEach(async () => { await stopServer(remote); });

    it("places client connections one per worker; a killed worker's connection comes back, the other stays", async function () {
        const flow = [];
        for (const name of ["a", "b"]) {
            flow.push(Object.assign(clientConfig(`${remote.url}/${name}`), { id: name }),
                { id: `in-${name}`, type: "py-websocket in", server: "", client: name, wires: [] },
                { id: `out-${name}`, type: "py-websocket out", server: "", client: name });
        }
        await helper.load(websocketNodes, flow);
        const bridge = getBridge();
        const a = helper.getNode("a");
        const b = helper.getNode("b");
        await waitFor("both connections", () => remote.connections.length === 2 &&
            a.role.state === "connected" && b.role.state === "connected");
        const pidA = bridge.sessionWorkerPid(a.role.ownerId, null);
        const pidB = bridge.sessionWorkerPid(b.role.ownerId, null);
        [pidA, pidB].sort().should.eql(bridge.workerPids.slice().sort());
        const toB = remote.connections.find((ws) => ws.request.url === "/b");
        process.kill(pidA, "SIGKILL");
        await waitFor("a's new connection", () => remote.connections.filter((ws) => ws.request.url === "/a").length === 2,
            ms(10000));
        await waitFor("a connected", () => a.role.state === "connected");
        bridge.sessionWorkerPid(a.role.ownerId, null).should.not.equal(pidA);
        bridge.sessionWorkerPid(b.role.ownerId, null).should.equal(pidB);
        helper.getNode("out-a").receive({ payload: "from a" });
        helper.getNode("out-b").receive({ payload: "from b" });
        await waitFor("both messages", () => remote.received.length === 2);
        remote.received.slice().sort().should.eql(["from a", "from b"]);
        // b's connection never closed: the message came over the same one.
        toB.readyState.should.equal(1);
        remote.connections.filter((ws) => ws.request.url === "/b").length.should.equal(1);
    });
});
