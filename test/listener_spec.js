/**
 * Listen-on mode through real sockets: real `ws` clients against Node-RED's own HTTP port, the
 * upgrade handed to the real Python worker.
 */
"use strict";

const http = require("http");
const should = require("should");
const helper = require("node-red-node-test-helper");
const websocketNodes = require("../nodes/websocket.js");
const {
    waitFor, connectClient, closeClient, recordStatuses, recordMessages, wsUrl, withHelper,
} = require("./lib/harness");

helper.init(require("./lib/node-red-path").redMain);

function echoFlow(options = {}) {
    return [
        { id: "listener", type: "py-websocket-listener", path: options.path || "/ws/echo",
            wholemsg: options.wholemsg ? "true" : "false" },
        { id: "in", type: "py-websocket in", server: "listener", client: "", wires: [["echo", "seen"]] },
        { id: "echo", type: "helper", wires: [["out"]] },
        { id: "seen", type: "helper" },
        { id: "out", type: "py-websocket out", server: "listener", client: "" },
    ];
}

/** Wires the helper node "echo" to pass every message straight on (an in -> out echo). */
function passThrough(id = "echo") {
    const node = helper.getNode(id);
    node.on("input", (msg) => node.send(msg));
}

describe("py-websocket listener (listen on)", function () {
    withHelper(helper);

    it("registers the four node types", async function () {
        await helper.load(websocketNodes, echoFlow());
        should.exist(helper.getNode("listener"));
        should.exist(helper.getNode("in"));
        should.exist(helper.getNode("out"));
        const listener = helper.getNode("listener");
        listener.isServer.should.be.true();
        listener.wholemsg.should.be.false();
        listener.subprotocol.should.eql([]);
        listener.path.should.equal("/ws/echo");
    });

    it("echoes a text frame as a string payload with msg._session", async function () {
        await helper.load(websocketNodes, echoFlow());
        passThrough();
        const seen = recordMessages(helper.getNode("seen"));
        const ws = await connectClient(wsUrl(helper, "/ws/echo"));
        ws.send("hello");
        await waitFor("the echo", () => ws.received.length === 1);
        ws.received[0].should.equal("hello");
        seen[0].payload.should.equal("hello");
        seen[0]._session.type.should.equal("websocket");
        seen[0]._session.id.should.match(/^[0-9a-f]{16}$/);
        await closeClient(ws);
    });

    it("gives a binary frame as a Buffer and sends a Buffer back as binary", async function () {
        await helper.load(websocketNodes, echoFlow());
        passThrough();
        const seen = recordMessages(helper.getNode("seen"));
        const ws = await connectClient(wsUrl(helper, "/ws/echo"));
        ws.send(Buffer.from([0, 1, 2, 255]));
        await waitFor("the binary echo", () => ws.received.length === 1);
        Buffer.isBuffer(seen[0].payload).should.be.true();
        seen[0].payload.should.eql(Buffer.from([0, 1, 2, 255]));
        Buffer.isBuffer(ws.received[0]).should.be.true();
        ws.received[0].should.eql(Buffer.from([0, 1, 2, 255]));
        await closeClient(ws);
    });

    it("keeps the order of many messages from several clients", async function () {
        await helper.load(websocketNodes, echoFlow());
        passThrough();
        const clients = await Promise.all([1, 2, 3].map(() => connectClient(wsUrl(helper, "/ws/echo"))));
        clients.forEach((ws, c) => {
            for (let i = 0; i < 200; i++) ws.send(`${c}:${i}`);
        });
        await waitFor("every echo", () => clients.every((ws) => ws.received.length === 200));
        clients.forEach((ws, c) => ws.received.should.eql(Array.from({ length: 200 }, (_, i) => `${c}:${i}`)));
        await Promise.all(clients.map(closeClient));
    });

    it("replies to the sender only, and broadcasts when msg._session is removed", async function () {
        await helper.load(websocketNodes, echoFlow());
        const echo = helper.getNode("echo");
        echo.on("input", (msg) => {
            echo.send({ payload: "reply:" + msg.payload, _session: msg._session });
            echo.send({ payload: "all:" + msg.payload });
        });
        const a = await connectClient(wsUrl(helper, "/ws/echo"));
        const b = await connectClient(wsUrl(helper, "/ws/echo"));
        await waitFor("two sessions", () => helper.getNode("listener").role.sessions.size === 2);
        a.send("x");
        await waitFor("a's reply and the broadcast", () => a.received.length === 2 && b.received.length === 1);
        a.received.should.eql(["reply:x", "all:x"]);
        b.received.should.eql(["all:x"]);
        await Promise.all([closeClient(a), closeClient(b)]);
    });

    it("sends what core sends for each payload type, and nothing without a payload", async function () {
        await helper.load(websocketNodes, echoFlow());
        const ws = await connectClient(wsUrl(helper, "/ws/echo"));
        await waitFor("the session", () => helper.getNode("listener").role.sessions.size === 1);
        const out = helper.getNode("out");
        const date = new Date(0);
        const inputs = [
            { payload: "text" }, { payload: 42 }, { payload: true }, { payload: null },
            { payload: { a: 1 } }, { payload: [1, "b"] }, { payload: date }, { topic: "no payload" },
            { payload: "" }, { payload: 0 }, { payload: false }, { payload: undefined },
        ];
        for (const msg of inputs) out.receive(msg);
        out.receive({ payload: "last" }); // whatever the others sent came before it
        const expected = ["text", "42", "true", "null", '{"a":1}', '[1,"b"]', JSON.stringify(date),
            "0", "false", "undefined", "last"];
        await waitFor("the last frame", () => ws.received.includes("last"));
        ws.received.should.eql(expected);
        await closeClient(ws);
    });

    it("in entire-message mode parses JSON in and sends the msg without _session out", async function () {
        await helper.load(websocketNodes, echoFlow({ wholemsg: true }));
        passThrough();
        const seen = recordMessages(helper.getNode("seen"));
        const ws = await connectClient(wsUrl(helper, "/ws/echo"));
        ws.send(JSON.stringify({ topic: "t", payload: { n: 1 } }));
        ws.send("not json");
        ws.send("7");
        ws.send("null");
        ws.send("[1,2]");
        await waitFor("five messages in", () => seen.length === 5);
        seen[0].topic.should.equal("t");
        seen[0].payload.should.eql({ n: 1 });
        seen[1].payload.should.equal("not json");
        seen[2].payload.should.equal(7);
        should(seen[3].payload).be.null();
        seen[4].payload.should.eql([1, 2]);
        seen.forEach((msg) => msg._session.type.should.equal("websocket"));
        await waitFor("five echoes", () => ws.received.length === 5);
        const first = JSON.parse(ws.received[0]);
        first.should.have.properties({ topic: "t", payload: { n: 1 } });
        first.should.not.have.property("_session");
        JSON.parse(ws.received[1]).payload.should.equal("not json");
        await closeClient(ws);
    });

    it("shows connected N with event and _session on connect and disconnect", async function () {
        await helper.load(websocketNodes, echoFlow());
        const statuses = recordStatuses(helper.getNode("in"));
        const a = await connectClient(wsUrl(helper, "/ws/echo"));
        await waitFor("connect status", () => statuses.some((s) => s.event === "connect"));
        const b = await connectClient(wsUrl(helper, "/ws/echo"));
        await waitFor("two connected", () => statuses.filter((s) => s.event === "connect").length === 2);
        const connects = statuses.filter((s) => s.event === "connect");
        connects[1].should.have.properties({ fill: "green", shape: "dot", text: "websocket.status.connected" });
        connects[1]._session.type.should.equal("websocket");
        connects[0]._session.id.should.not.equal(connects[1]._session.id);
        await closeClient(a);
        await waitFor("disconnect", () => statuses.some((s) => s.event === "disconnect"));
        statuses.find((s) => s.event === "disconnect").should.have.properties({ fill: "green" });
        await closeClient(b);
        await waitFor("last disconnect", () => statuses.filter((s) => s.event === "disconnect").length === 2);
        const last = statuses.filter((s) => s.event === "disconnect")[1];
        last.should.have.properties({ fill: "red", shape: "ring", text: "node-red:common.status.disconnected" });
        last._session.id.should.equal(connects[1]._session.id);
    });

    it("logs an error for a second listener on the same path", async function () {
        const flow = echoFlow();
        flow.push({ id: "listener2", type: "py-websocket-listener", path: "ws/echo", wholemsg: "false" });
        await helper.load(websocketNodes, flow);
        await waitFor("the duplicate-path error", () => helper.log().args.some(
            (args) => args[0].level === helper.log().ERROR && args[0].msg === "websocket.errors.duplicate-path"));
        const ws = await connectClient(wsUrl(helper, "/ws/echo"));
        await closeClient(ws);
    });

    it("logs an error when in or out has no config node", async function () {
        await helper.load(websocketNodes, [
            { id: "in", type: "py-websocket in", server: "nope", client: "", wires: [] },
            { id: "out", type: "py-websocket out", server: "nope", client: "" },
        ]);
        const errors = helper.log().args.filter((args) => args[0].level === helper.log().ERROR);
        errors.map((args) => args[0].msg).should.eql(["websocket.errors.missing-conf", "websocket.errors.missing-conf"]);
    });

    it("accepts the client's first subprotocol, as core's server does", async function () {
        await helper.load(websocketNodes, echoFlow());
        const ws = await connectClient(wsUrl(helper, "/ws/echo"), { protocols: ["mqtt", "chat"] });
        ws.protocol.should.equal("mqtt");
        await closeClient(ws);
    });

    it("leaves upgrades on other paths to other handlers", async function () {
        await helper.load(websocketNodes, echoFlow());
        const { port } = new URL(helper.url());
        const status = await new Promise((resolve, reject) => {
            const req = http.request({ host: "127.0.0.1", port, path: "/not-ours", headers: {
                Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==" } });
            req.on("upgrade", (res, socket) => {
                socket.destroy();
                resolve(res.statusCode);
            });
            req.on("error", reject);
            helper._server.once("upgrade", (request, socket) => {
                if (request.url === "/not-ours") {
                    socket.end("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
                }
            });
            req.end();
        });
        status.should.equal(101);
    });

    it("answers a plain HTTP request on the path without crashing", async function () {
        await helper.load(websocketNodes, echoFlow());
        const { port } = new URL(helper.url());
        const code = await new Promise((resolve) => {
            http.get({ host: "127.0.0.1", port, path: "/ws/echo" }, (res) => {
                res.resume();
                resolve(res.statusCode);
            }).on("error", () => resolve("error"));
        });
        code.should.equal(404);
        const ws = await connectClient(wsUrl(helper, "/ws/echo"));
        await closeClient(ws);
    });

    it("stops serving the path when the flow is removed", async function () {
        await helper.load(websocketNodes, echoFlow());
        const ws = await connectClient(wsUrl(helper, "/ws/echo"));
        const closed = new Promise((resolve) => ws.once("close", (code) => resolve(code)));
        await helper.unload();
        (await closed).should.equal(1001);
        await helper.load(websocketNodes, [{ id: "h", type: "helper" }]);
        await connectClient(wsUrl(helper, "/ws/echo")).should.be.rejected();
    });
});

describe("py-websocket listener with webSocketNodeVerifyClient", function () {
    withHelper(helper, {
        webSocketNodeVerifyClient: (info, cb) => {
            if (info.req.headers["x-token"] === "let-me-in") cb(true);
            else cb(false, 403, "Forbidden");
        },
    });

    it("rejects a client the function refuses with its HTTP status, and no flow sees it", async function () {
        await helper.load(websocketNodes, echoFlow());
        const seen = recordMessages(helper.getNode("seen"));
        const err = await connectClient(wsUrl(helper, "/ws/echo")).then(() => null, (e) => e);
        should.exist(err);
        err.statusCode.should.equal(403);
        const ok = await connectClient(wsUrl(helper, "/ws/echo"), { headers: { "x-token": "let-me-in" } });
        ok.send("hi");
        await waitFor("the allowed client's message", () => seen.length === 1);
        seen.length.should.equal(1);
        await closeClient(ok);
    });
});

describe("py-websocket listener with a one-argument webSocketNodeVerifyClient", function () {
    withHelper(helper, { webSocketNodeVerifyClient: (info) => info.origin === "http://allowed.example" });

    it("answers 401 when the function returns false, and lets the allowed origin in", async function () {
        await helper.load(websocketNodes, echoFlow());
        const err = await connectClient(wsUrl(helper, "/ws/echo"), { headers: { Origin: "http://evil.example" } })
            .then(() => null, (e) => e);
        err.statusCode.should.equal(401);
        const ok = await connectClient(wsUrl(helper, "/ws/echo"), { headers: { Origin: "http://allowed.example" } });
        await closeClient(ok);
    });
});
