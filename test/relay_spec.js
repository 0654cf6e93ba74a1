/**
 * Listener connections relayed as bytes through the event channel (the HTTPS / Windows fallback,
 * here forced with pyWebsocketListenerHandoff: false): echoes, disconnects, and
 * webSocketNodeVerifyClient applied before any byte reaches the worker.
 */
"use strict";

require("should");
const helper = require("node-red-node-test-helper");
const websocketNodes = require("../nodes/websocket.js");
const { waitFor, connectClient, closeClient, recordStatuses, wsUrl, withHelper } = require("./lib/harness");
const { echoFlow } = require("./lib/flows");

helper.init(require("./lib/node-red-path").redMain);

describe("listener connections relayed as bytes (the HTTPS / Windows fallback)", function () {
    withHelper(helper, { pyWebsocketListenerHandoff: false });

    it("echoes text and binary through the relay", async function () {
        await helper.load(websocketNodes, echoFlow("/relay"));
        const ws = await connectClient(wsUrl(helper, "/relay"));
        ws.send("relayed");
        ws.send(Buffer.from([7, 7, 7]));
        await waitFor("both echoes", () => ws.received.length === 2);
        ws.received[0].should.equal("relayed");
        ws.received[1].should.eql(Buffer.from([7, 7, 7]));
        await closeClient(ws);
    });

    it("reports the disconnect of a relayed client", async function () {
        await helper.load(websocketNodes, echoFlow("/relay"));
        const statuses = recordStatuses(helper.getNode("in"));
        const ws = await connectClient(wsUrl(helper, "/relay"));
        await waitFor("connect", () => statuses.some((s) => s.event === "connect"));
        ws.terminate();
        await waitFor("disconnect", () => statuses.some((s) => s.event === "disconnect"));
    });
});

describe("webSocketNodeVerifyClient on relayed connections", function () {
    withHelper(helper, { pyWebsocketListenerHandoff: false,
            webSocketNodeVerifyClient: (info) => info.req.headers["x-ok"] === "yes" });

    it("rejects a relayed client with 401 before any byte reaches the worker, and relays the allowed one", async function () {
        await helper.load(websocketNodes, echoFlow("/relay"));
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
