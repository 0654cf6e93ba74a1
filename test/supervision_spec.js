/**
 * The worker behind the nodes: byte relay instead of socket handoff, and supervision (a worker
 * killed with SIGKILL is replaced, listeners and clients come back, statuses show it).
 */
"use strict";

const helper = require("node-red-node-test-helper");
const websocketNodes = require("../nodes/websocket.js");
const { getBridge } = require("../nodes/lib/bridge");
const {
    waitFor, connectClient, closeClient, withRemoteServer, recordStatuses, recordMessages, wsUrl, ms,
} = require("./lib/harness");

helper.init(require("./lib/node-red-path").redMain);

function echoFlow() {
    return [
        { id: "listener", type: "py-websocket-listener", path: "/relay", wholemsg: "false" },
        { id: "in", type: "py-websocket in", server: "listener", client: "", wires: [["out"]] },
        { id: "out", type: "py-websocket out", server: "listener", client: "" },
    ];
}

describe("listener connections relayed as bytes (the HTTPS / Windows fallback)", function () {
    before(async function () {
        helper.settings({ pyWebsocketListenerHandoff: false });
        await helper.startServer();
    });
    after(async function () {
        helper.settings({ pyWebsocketListenerHandoff: true });
        await helper.stopServer();
    });
    afterEach(() => helper.unload());

    it("echoes text and binary through the relay", async function () {
        await helper.load(websocketNodes, echoFlow());
        const ws = await connectClient(wsUrl(helper, "/relay"));
        ws.send("relayed");
        ws.send(Buffer.from([7, 7, 7]));
        await waitFor("both echoes", () => ws.received.length === 2);
        ws.received[0].should.equal("relayed");
        ws.received[1].should.eql(Buffer.from([7, 7, 7]));
        await closeClient(ws);
    });

    it("reports the disconnect of a relayed client", async function () {
        await helper.load(websocketNodes, echoFlow());
        const statuses = recordStatuses(helper.getNode("in"));
        const ws = await connectClient(wsUrl(helper, "/relay"));
        await waitFor("connect", () => statuses.some((s) => s.event === "connect"));
        ws.terminate();
        await waitFor("disconnect", () => statuses.some((s) => s.event === "disconnect"));
    });
});

describe("webSocketNodeVerifyClient on relayed connections", function () {
    before(async function () {
        helper.settings({ pyWebsocketListenerHandoff: false,
            webSocketNodeVerifyClient: (info) => info.req.headers["x-ok"] === "yes" });
        await helper.startServer();
    });
    after(async function () {
        helper.settings({ pyWebsocketListenerHandoff: true, webSocketNodeVerifyClient: undefined });
        await helper.stopServer();
    });
    afterEach(() => helper.unload());

    it("rejects a relayed client with 401 before any byte reaches the worker, and relays the allowed one", async function () {
        await helper.load(websocketNodes, echoFlow());
        const statuses = recordStatuses(helper.getNode("in"));
        const err = await connectClient(wsUrl(helper, "/relay")).then(() => null, (e) => e);
        err.statusCode.should.equal(401);
        const ok = await connectClient(wsUrl(helper, "/relay"), { headers: { "x-ok": "yes" } });
        ok.send("allowed");
        await waitFor("the echo", () => ok.received.length === 1);
        statuses.filter((s) => s.event === "connect").length.should.equal(1);
        await closeClient(ok);
    });
});

describe("worker supervision", function () {
    let remote;
    withRemoteServer(helper, (server) => { remote = server; }, () => remote);

    it("replaces a killed worker: the listener serves again and the client reconnects", async function () {
        const flow = echoFlow().concat([
            { id: "client", type: "py-websocket-client", path: remote.url, tls: "", wholemsg: "false",
                subprotocol: "", hb: "0", headers: [] },
            { id: "cin", type: "py-websocket in", server: "", client: "client", wires: [["seen"]] },
            { id: "seen", type: "helper" },
        ]);
        await helper.load(websocketNodes, flow);
        const bridge = getBridge();
        await waitFor("the worker", () => bridge.isReady() && remote.connections.length === 1);
        const statuses = recordStatuses(helper.getNode("in"));
        const ws = await connectClient(wsUrl(helper, "/relay"));
        const closed = new Promise((resolve) => ws.once("close", (code) => resolve(code)));
        const oldPid = bridge.child.pid;
        process.kill(oldPid, "SIGKILL");
        await closed;
        await waitFor("the restarting status", () => statuses.some((s) =>
            s.text === "websocket.status.worker-down: signal SIGKILL"));
        await waitFor("a new worker", () => bridge.isReady() && bridge.child && bridge.child.pid !== oldPid, ms(5000));
        const again = await connectClient(wsUrl(helper, "/relay"));
        again.send("after restart");
        await waitFor("the echo", () => again.received.length === 1);
        again.received[0].should.equal("after restart");
        await closeClient(again);
        await waitFor("the client's new connection", () => remote.connections.length === 2, ms(8000));
        const seen = recordMessages(helper.getNode("seen"));
        remote.connections[1].send("still here");
        await waitFor("the message", () => seen.length === 1);
        await waitFor("the worker error log", () => helper.log().args.some((args) =>
            /Python worker stopped \(signal SIGKILL\)/.test(String(args[0].msg))));
    });
});
