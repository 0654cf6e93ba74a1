/**
 * The bridge and upgrade router on their own, behind a server Node-RED's test helper cannot give:
 * an HTTPS server, whose TLS sockets cannot be handed over and are relayed instead.
 */
"use strict";

require("should");
const WebSocket = require("ws");
const { getBridge } = require("../nodes/lib/bridge");
const { listenOptions } = require("../nodes/lib/options");
const { routesFor } = require("../nodes/lib/upgrade-router");
const { waitFor, startHttpsServer } = require("./lib/harness");

describe("bridge behind an HTTPS server", function () {
    let server;
    let ownerId;
    const events = [];

    before(async function () {
        server = await startHttpsServer();
        const bridge = getBridge();
        ownerId = bridge.add("listen", listenOptions(bridge.settings(), "/secure"), {
            open: (sid) => events.push(["open", sid]),
            message: (sid, data) => bridge.send(ownerId, sid, data),
            close: (sid, code) => events.push(["close", sid, code]),
            error: () => {},
            workerState: () => {},
            workerLost: () => {},
        });
        let next = 0;
        routesFor(server).set("/secure", {
            accept: (req, socket, head) => bridge.accept(ownerId, `feedbeef0000000${next++}`, req, socket, head),
        });
    });

    after(async function () {
        await getBridge().remove(ownerId);
        await server.cleanup();
    });

    it("relays a wss:// connection's bytes to the worker and echoes through it", async function () {
        const ws = new WebSocket(`wss://127.0.0.1:${server.address().port}/secure`, { rejectUnauthorized: false });
        const received = [];
        ws.on("message", (data, isBinary) => received.push(isBinary ? data : data.toString()));
        await new Promise((resolve, reject) => {
            ws.once("open", resolve);
            ws.once("error", reject);
        });
        ws.send("over https");
        ws.send(Buffer.alloc(70000, 1));
        await waitFor("both echoes", () => received.length === 2);
        received[0].should.equal("over https");
        received[1].should.eql(Buffer.alloc(70000, 1));
        ws.close(4000, "bye");
        await waitFor("the close", () => events.some((e) => e[0] === "close"));
        events.find((e) => e[0] === "close")[2].should.equal(4000);
    });
});
