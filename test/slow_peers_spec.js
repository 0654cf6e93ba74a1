/**
 * Slow and fast peers, through real sockets: a client that stops reading is dropped at the
 * outgoing buffer limit without holding up the others, and a sender faster than the flow is
 * pushed back (flow control) instead of growing Node-RED's memory.
 */
"use strict";

require("should");
const net = require("net");
const helper = require("node-red-node-test-helper");
const websocketNodes = require("../nodes/websocket.js");
const { waitFor, connectClient, closeClient, startServer, stopServer, wsUrl, ms, withHelper } = require("./lib/harness");

helper.init(require("./lib/node-red-path").redMain);

const listenerFlow = [
    { id: "listener", type: "py-websocket-listener", path: "/fan", wholemsg: "false" },
    { id: "out", type: "py-websocket out", server: "listener", client: "" },
];

/** A client that completes the handshake and then never reads again. */
function stalledClient(port, path) {
    return new Promise((resolve, reject) => {
        const socket = net.connect(port, "127.0.0.1", () => {
            socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        });
        const timer = setTimeout(() => reject(new Error("no handshake")), ms(5000));
        socket.once("data", () => {
            clearTimeout(timer);
            socket.pause();
            resolve(socket);
        });
        socket.on("error", () => {});
    });
}

async function sessions(count) {
    await waitFor(`${count} sessions`, () => helper.getNode("listener").role.sessions.size === count, ms(30000));
}

describe("slow and fast peers", function () {
    this.timeout(ms(120000));
    withHelper(helper, { pyWebsocketListenerWriteLimit: 1024 * 1024 });

    it("broadcasts to 1,000 clients while one stalled client does not hold them up", async function () {
        await helper.load(websocketNodes, listenerFlow);
        const { port } = new URL(helper.url());
        const stalled = await stalledClient(port, "/fan");
        const clients = [];
        for (let batch = 0; batch < 10; batch++) {
            clients.push(...await Promise.all(Array.from({ length: 100 }, () => connectClient(wsUrl(helper, "/fan")))));
        }
        await sessions(1001);
        const out = helper.getNode("out");
        for (let i = 0; i < 200; i++) out.receive({ payload: `broadcast ${i}` });
        await waitFor("200 messages at every client", () => clients.every((ws) => ws.received.length === 200), ms(60000));
        clients.forEach((ws) => ws.received[199].should.equal("broadcast 199"));
        stalled.destroy();
        for (const ws of clients) ws.terminate();
    });

    it("drops a client that stopped reading once its outgoing buffer passes the limit, and warns", async function () {
        await helper.load(websocketNodes, listenerFlow);
        const { port } = new URL(helper.url());
        const stalled = await stalledClient(port, "/fan");
        const reader = await connectClient(wsUrl(helper, "/fan"));
        await sessions(2);
        const out = helper.getNode("out");
        const chunk = Buffer.alloc(256 * 1024, 7);
        for (let i = 0; i < 100; i++) out.receive({ payload: chunk });
        await waitFor("every chunk at the reading client", () => reader.received.length === 100, ms(30000));
        await sessions(1);
        await waitFor("the warning", () => helper.log().args.some((args) =>
            args[0].level === helper.log().WARN && /stopped reading/.test(String(args[0].msg))));
        stalled.destroy();
        await closeClient(reader);
    });

});
