/**
 * Supervision of the worker behind the nodes: a crashed worker is replaced and listeners and
 * clients come back; a worker stopped by a signal while Node-RED runs is restarted with a warning,
 * not an error; a worker that is alive but stuck is found out, the flow is told what it could
 * not send, and the worker is replaced; a worker that keeps dying young is restarted with backoff.
 */
"use strict";

require("should");
const fs = require("fs");
const os = require("os");
const path = require("path");
const helper = require("node-red-node-test-helper");
const WebSocket = require("ws");
const websocketNodes = require("../nodes/websocket.js");
const catchNode = require(require("./lib/node-red-path").coreNodePath("core/common/25-catch.js"));
const { getBridge, Bridge } = require("../nodes/lib/bridge");
const {
    waitFor, connectClient, closeClient, withHelper, withRemoteServer, recordStatuses, recordMessages, wsUrl, ms,
} = require("./lib/harness");
const { echoFlow, clientConfig } = require("./lib/flows");

helper.init(require("./lib/node-red-path").redMain);

const MiB = 1024 * 1024;

function logged(level, pattern) {
    return helper.log().args.filter((args) => args[0].level === helper.log()[level] && pattern.test(String(args[0].msg)));
}

function closedPromise(ws) {
    return new Promise((resolve) => (ws.readyState === 3 ? resolve() : ws.once("close", (code) => resolve(code))));
}

async function echoes(listenPath, text) {
    const ws = await connectClient(wsUrl(helper, listenPath));
    ws.send(text);
    await waitFor(`the echo of ${text}`, () => ws.received.length === 1);
    ws.received[0].should.equal(text);
    return ws;
}

describe("worker supervision", function () {
    let remote;
    withRemoteServer(helper, (server) => { remote = server; }, () => remote);

    it("replaces killed workers: the listener serves again and the client reconnects", async function () {
        const flow = echoFlow("/relay").concat([
            clientConfig(remote.url),
            { id: "cin", type: "py-websocket in", server: "", client: "client", wires: [["seen"]] },
            { id: "seen", type: "helper" },
        ]);
        await helper.load(websocketNodes, flow);
        const bridge = getBridge();
        await waitFor("the worker", () => bridge.isReady() && remote.connections.length === 1);
        const statuses = recordStatuses(helper.getNode("in"));
        const ws = await connectClient(wsUrl(helper, "/relay"));
        const closed = closedPromise(ws);
        // Every worker (one by default; see workers_spec for one of several).
        const oldPids = bridge.workerPids;
        for (const pid of oldPids) process.kill(pid, "SIGKILL");
        await closed;
        await waitFor("the restarting status", () => statuses.some((s) =>
            s.text === "websocket.status.worker-down: signal SIGKILL"));
        await waitFor("new workers", () => bridge.isReady() && bridge.workerPids.every((pid) => !oldPids.includes(pid)));
        await closeClient(await echoes("/relay", "after restart"));
        await waitFor("the client's new connection", () => remote.connections.length === 2, ms(8000));
        const seen = recordMessages(helper.getNode("seen"));
        remote.connections[1].send("still here");
        await waitFor("the message", () => seen.length === 1);
        await waitFor("the worker error logs", () =>
            logged("ERROR", /Python worker stopped \(signal SIGKILL\)/).length === oldPids.length);
    });

    it("does not fail a reply that reaches out after its client went with a killed worker", async function () {
        const flow = [
            { id: "f1", type: "tab" },
            { id: "listener", type: "py-websocket-listener", path: "/late", wholemsg: "false" },
            { id: "in", type: "py-websocket in", z: "f1", server: "listener", client: "", wires: [["seen"]] },
            { id: "seen", type: "helper", z: "f1" },
            { id: "out", type: "py-websocket out", z: "f1", server: "listener", client: "" },
            { id: "catcher", type: "catch", z: "f1", scope: null, uncaught: false, wires: [["caught"]] },
            { id: "caught", type: "helper", z: "f1" },
        ];
        await helper.load([websocketNodes, catchNode], flow);
        const bridge = getBridge();
        const seen = recordMessages(helper.getNode("seen"));
        const caught = recordMessages(helper.getNode("caught"));
        const ws = await connectClient(wsUrl(helper, "/late"));
        ws.send("hello");
        await waitFor("the message", () => seen.length === 1);
        const closed = closedPromise(ws);
        const oldPids = bridge.workerPids;
        for (const pid of oldPids) process.kill(pid, "SIGKILL");
        await closed;
        await waitFor("the session's end", () => helper.getNode("listener").whyGone(seen[0]._session.id));
        helper.getNode("out").receive({ payload: "too late", _session: seen[0]._session });
        helper.getNode("out").receive({ action: "shout" }); // caught: the control that comes after
        await waitFor("the control", () => caught.length > 0);
        caught.map((msg) => msg.error.message.replace(/^Error: /, "")).should.eql(["websocket.errors.bad-action"]);
        await waitFor("new workers", () => bridge.isReady() && bridge.workerPids.every((pid) => !oldPids.includes(pid)));
    });

    it("restarts a worker stopped by SIGTERM while Node-RED runs, with a warning and no error", async function () {
        await helper.load(websocketNodes, echoFlow("/relay"));
        const bridge = getBridge();
        await closeClient(await echoes("/relay", "before"));
        const oldPid = bridge.workerPid;
        process.kill(oldPid, "SIGTERM");
        await waitFor("a new worker", () => bridge.isReady() && bridge.workerPid !== oldPid, ms(10000));
        await closeClient(await echoes("/relay", "after"));
        logged("WARN", /Python worker was stopped by a signal \(exit code 0\) while Node-RED runs; restarting in \d+ ms/)
            .length.should.equal(1);
        logged("ERROR", /worker/).should.eql([]);
    });

    it("finds a worker that is alive but stuck: refuses what it cannot take, then replaces it", async function () {
        const bridge = getBridge();
        const saved = Object.assign({}, bridge.limits);
        Object.assign(bridge.limits, { stallTimeoutMs: ms(1500), maxWaitingBytes: 4 * MiB });
        let stuckPid = null;
        try {
            await helper.load(websocketNodes, echoFlow("/stuck"));
            const ws = await echoes("/stuck", "before");
            const closed = closedPromise(ws);
            const listener = helper.getNode("listener");
            // The worker that serves this session (the only one, by default).
            stuckPid = bridge.sessionWorkerPid(listener.role.ownerId, Array.from(listener.role.sessions.keys())[0]);
            process.kill(stuckPid, "SIGSTOP");
            const out = helper.getNode("out");
            const errors = [];
            out.on("call:error", (call) => errors.push(call.args[0]));
            const chunk = Buffer.alloc(MiB, 1);
            // Broadcasts pile up in front of the stopped worker until the channel refuses one.
            await waitFor("a message refused", () => {
                out.receive({ payload: chunk });

                return errors.length > 0;
            });
            String(errors[0]).should.match(/websocket\.errors\.worker-busy/);
            await waitFor("a new worker", () => bridge.isReady() && !bridge.workerPids.includes(stuckPid), ms(10000));
            logged("ERROR", /has taken nothing from its event channel for 1\.?\d* s/).length.should.equal(1);
            await closed;
            await closeClient(await echoes("/stuck", "after"));
        } finally {
            Object.assign(bridge.limits, saved);
            try { process.kill(stuckPid, "SIGCONT"); } catch (_) { /* replaced: gone */ }
        }
    });
});

describe("connections waiting for a busy worker", function () {
    withHelper(helper);

    /**
     * Stops every worker and opens `count` clients to `listenPath` (they queue in front of the
     * workers' channels); with `control`, then one to a path nobody serves, and waits until
     * Node-RED's runtime has hung that one up (inboundWebSocketTimeout, 5 s: the control, opened
     * after the others, whose timers have fired by then too). Returns the clients, each with
     * `.outcome` (a promise of "open" or the error's message), and the stopped pids.
     */
    async function queueBehindStoppedWorkers(listenPath, count, { control = false } = {}) {
        const bridge = getBridge();
        const pids = bridge.workerPids;
        const server = helper._server;
        let upgrades = 0;
        const seen = (req) => { if (req.url === listenPath) upgrades++; };
        server.on("upgrade", seen);
        for (const pid of pids) process.kill(pid, "SIGSTOP");
        const clients = [];
        try {
            for (let i = 0; i < count; i++) {
                const ws = new WebSocket(wsUrl(helper, listenPath), { handshakeTimeout: ms(60000) });
                ws.outcome = new Promise((resolve) => {
                    ws.once("open", () => resolve("open"));
                    ws.once("error", (err) => resolve(err.message));
                });
                clients.push(ws);
            }
            await waitFor("every upgrade to reach Node-RED", () => upgrades === count);
            if (control) {
                const ws = new WebSocket(wsUrl(helper, "/nobody-serves-this"));
                await new Promise((resolve) => ws.once("error", resolve));
            }
        } finally {
            server.off("upgrade", seen);
        }
        return { clients, pids };
    }

    it("keeps connections that wait longer than Node-RED's upgrade timeout (5 s) for a busy worker", async function () {
        await helper.load(websocketNodes, echoFlow("/busy"));
        await closeClient(await echoes("/busy", "before"));
        const { clients, pids } = await queueBehindStoppedWorkers("/busy", 5, { control: true });
        for (const pid of pids) process.kill(pid, "SIGCONT");
        (await Promise.all(clients.map((ws) => ws.outcome))).should.eql(clients.map(() => "open"));
        for (const ws of clients) {
            ws.received = [];
            ws.on("message", (data) => ws.received.push(data.toString()));
            ws.send("after");
        }
        await waitFor("every echo", () => clients.every((ws) => ws.received.length === 1));
        await Promise.all(clients.map(closeClient));
    });

    it("closes a connection that a stuck worker does not take within pendingConnectionMs, with a warning", async function () {
        const bridge = getBridge();
        const saved = Object.assign({}, bridge.limits);
        let pids = [];
        try {
            await helper.load(websocketNodes, echoFlow("/never"));
            await closeClient(await echoes("/never", "before"));
            bridge.limits.pendingConnectionMs = 1000;
            const queued = await queueBehindStoppedWorkers("/never", 3);
            pids = queued.pids;
            // The first socket of each channel is on its way (in the worker's receive queue, no
            // answer while it is stopped); the others wait in Node's queue and are closed.
            let hungUp = 0;
            queued.clients.forEach((ws) => ws.outcome.then((outcome) => { if (outcome === "socket hang up") hungUp++; }));
            await waitFor("the queued clients hung up", () => hungUp === 3 - pids.length);
            await waitFor("a warning for each", () => logged("WARN", /not taken by the worker within 1 s/).length ===
                3 - pids.length);
            queued.clients.forEach((ws) => ws.terminate());
        } finally {
            Object.assign(bridge.limits, saved);
            for (const pid of pids) process.kill(pid, "SIGCONT");
        }
    });
});

describe("worker crash loop", function () {
    const VENV_PYTHON = path.resolve(__dirname, "..", ".venv", "bin", "python");
    let dir;
    let bridge;
    let id;
    before(function () {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyws-crash-"));
        // An interpreter that passes the set-up checks but whose worker exits at once.
        const fake = path.join(dir, "python");
        fs.writeFileSync(fake, `#!/bin/sh\ncase "$*" in *--events-fd*) echo "boom" >&2; exit 1;; esac\n` +
            `exec "${VENV_PYTHON}" "$@"\n`);
        fs.chmodSync(fake, 0o755);
        // One whose worker finds its packages do not fit when it starts (compat.py's exit 3).
        const unfit = path.join(dir, "python-unfit");
        fs.writeFileSync(unfit, "#!/bin/sh\ncase \"$*\" in *--events-fd*) echo \"websocket_worker cannot run: " +
            `websockets 12.0 is installed\" >&2; exit 3;; esac\nexec "${VENV_PYTHON}" "$@"\n`);
        fs.chmodSync(unfit, 0o755);
    });
    after(async function () {
        if (bridge && id) await bridge.remove(id);
        if (bridge) {
            await waitFor("the last start to settle", () => !bridge.pool.workers[0].machine.is("starting", "installing"), ms(20000));
            clearTimeout(bridge.pool.workers[0].restartTimer);
        }
        fs.rmSync(dir, { recursive: true, force: true });
    });

    it("backs off 0.2 s, 0.4 s, 0.8 s … and shows why in the status", async function () {
        const logs = [];
        const states = [];
        bridge = new Bridge();
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
        logs.find((m) => /restarting in/.test(m)).should.match(/worker stopped \(exit code 1\)/);
        logs.some((m) => /boom/.test(m)).should.be.true();
        states.some(([state, why]) => state === "restarting" && why === "exit code 1").should.be.true();
    });

    it("does not restart a worker whose packages do not fit: a red status and the reason, once", async function () {
        if (bridge && id) await bridge.remove(id);
        const logs = [];
        const states = [];
        bridge = new Bridge();
        bridge.configure({
            settings: { pyWebsocketListenerPython: path.join(dir, "python-unfit") },
            log: { info: () => {}, debug: () => {}, warn: (m) => logs.push(m), error: (m) => logs.push(m) },
        });
        id = bridge.add("listen", { path: "/x" }, {
            open() {}, message() {}, close() {}, error() {}, workerLost() {},
            workerState: (state, detail) => states.push([state, detail && detail.code]),
        });
        await waitFor("the failed state", () => states.some(([state]) => state === "failed"), ms(20000));
        states.filter(([state]) => state === "failed").should.eql([["failed", "install-failed"]]);
        logs.some((m) => /websocket_worker cannot run: websockets 12\.0 is installed/.test(m)).should.be.true();
        logs.filter((m) => /cannot run with the packages its interpreter has/.test(m)).should.have.length(1);
        logs.some((m) => /restarting in/.test(m)).should.be.false();
        bridge.pool.workers[0].machine.is("failed").should.be.true();
    });
});
