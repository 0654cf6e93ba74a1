/**
 * Connect-to mode through real sockets: a real `ws` server on 127.0.0.1 as the remote, the
 * connection made by the real Python worker.
 */
"use strict";

const net = require("net");
const should = require("should");
const helper = require("node-red-node-test-helper");
const WebSocket = require("ws");
const websocketNodes = require("../nodes/websocket.js");
const {
    waitFor, startServer, stopServer, withHelper, withRemoteServer, recordStatuses, recordMessages, ms,
    startHttpsServer,
} = require("./lib/harness");
const { clientConfig } = require("./lib/flows");

helper.init(require("./lib/node-red-path").redMain);

function clientFlow(url, options = {}) {
    return [
        clientConfig(url, Object.assign({ wholemsg: options.wholemsg ? "true" : "false" }, options.config)),
        { id: "in", type: "py-websocket in", server: "", client: "client", wires: [["seen"]] },
        { id: "seen", type: "helper" },
        { id: "out", type: "py-websocket out", server: "", client: "client" },
    ];
}

/** The connections a remote server accepted on a path. */
function connectionsTo(server, path) {
    return server.connections.filter((ws) => ws.request.url === path);
}

describe("py-websocket client (connect to)", function () {
    let remote;
    withRemoteServer(helper, (server) => { remote = server; }, () => remote);

    it("connects, sends msg.payload to the server and gives the server's frames to in", async function () {
        await helper.load(websocketNodes, clientFlow(remote.url));
        const seen = recordMessages(helper.getNode("seen"));
        const client = helper.getNode("client");
        client.isServer.should.be.false();
        await waitFor("the connection", () => remote.connections.length === 1 && client.role.state === "connected");
        helper.getNode("out").receive({ payload: "to server" });
        helper.getNode("out").receive({ payload: Buffer.from([9, 8]) });
        await waitFor("two frames at the server", () => remote.received.length === 2);
        remote.received[0].should.equal("to server");
        remote.received[1].should.eql(Buffer.from([9, 8]));
        remote.connections[0].send("from server");
        remote.connections[0].send(Buffer.from([1, 2, 3]));
        await waitFor("two messages out of in", () => seen.length === 2);
        seen[0].payload.should.equal("from server");
        seen[1].payload.should.eql(Buffer.from([1, 2, 3]));
        seen[0]._session.type.should.equal("websocket");
        seen[0]._session.id.should.equal(seen[1]._session.id);
    });

    it("does not send a message that carries a client-mode _session back (no in -> out loop)", async function () {
        const flow = clientFlow(remote.url);
        flow[1].wires = [["seen", "out"]];
        await helper.load(websocketNodes, flow);
        const seen = recordMessages(helper.getNode("seen"));
        await waitFor("the connection", () => helper.getNode("client").role.state === "connected");
        remote.connections[0].send("ping-pong?");
        await waitFor("the message in the flow", () => seen.length === 1);
        // A message sent after it, on the same connection, arrives; the looped one would be before it.
        helper.getNode("out").receive({ payload: "after" });
        await waitFor("the later message at the server", () => remote.received.length > 0);
        remote.received.should.eql(["after"]);
    });

    it("offers the configured subprotocols and sends the configured upgrade headers", async function () {
        process.env.PYWS_TEST_TOKEN = "Bearer from-env";
        await helper.load(websocketNodes, clientFlow(remote.url, { config: {
            subprotocol: "chat, superchat",
            headers: [
                { keyType: "Authorization", keyValue: "", valueType: "env", valueValue: "PYWS_TEST_TOKEN" },
                { keyType: "other", keyValue: "X-Custom", valueType: "other", valueValue: "custom value" },
                { keyType: "User-Agent", keyValue: "", valueType: "Mozilla/5.0", valueValue: "" },
            ],
        } }));
        helper.getNode("client").subprotocol.should.eql(["chat", "superchat"]);
        await waitFor("the connection", () => remote.connections.length === 1);
        const headers = remote.connections[0].request.headers;
        headers["sec-websocket-protocol"].should.equal("chat, superchat");
        headers.authorization.should.equal("Bearer from-env");
        headers["x-custom"].should.equal("custom value");
        headers["user-agent"].should.equal("Mozilla/5.0");
        remote.connections[0].protocol.should.equal("chat");
    });

    it("in entire-message mode sends the msg as JSON and parses the server's JSON", async function () {
        await helper.load(websocketNodes, clientFlow(remote.url, { wholemsg: true }));
        const seen = recordMessages(helper.getNode("seen"));
        await waitFor("the connection", () => helper.getNode("client").role.state === "connected");
        helper.getNode("out").receive({ topic: "t", payload: 1 });
        await waitFor("the frame", () => remote.received.length === 1);
        const sent = JSON.parse(remote.received[0]);
        sent.should.have.properties({ topic: "t", payload: 1 });
        sent.should.have.property("_msgid"); // core stringifies the whole msg, _msgid included
        sent.should.not.have.property("_session");
        remote.connections[0].send(JSON.stringify({ topic: "back", payload: [1] }));
        await waitFor("the msg", () => seen.length === 1);
        seen[0].should.have.properties({ topic: "back", payload: [1] });
    });

    it("shows connected, then error and disconnected, and reconnects after 3 s", async function () {
        await helper.load(websocketNodes, clientFlow(remote.url));
        const statuses = recordStatuses(helper.getNode("in"));
        await waitFor("connected", () => statuses.some((s) => s.event === "connect"));
        statuses.find((s) => s.event === "connect").should.have.properties({
            fill: "green", shape: "dot", text: "websocket.status.connected" });
        const closedAt = Date.now();
        remote.connections[0].close(1000);
        await waitFor("disconnected", () => statuses.some((s) => s.event === "disconnect"));
        statuses.find((s) => s.event === "disconnect").should.have.properties({
            fill: "red", shape: "ring", text: "node-red:common.status.disconnected" });
        await waitFor("the reconnection", () => remote.connections.length === 2, ms(8000));
        (Date.now() - closedAt).should.be.aboveOrEqual(2500);
        await waitFor("connected again", () => statuses.filter((s) => s.event === "connect").length === 2);
    });

    it("reports an error when the server is not there and keeps retrying", async function () {
        const url = remote.url;
        await stopServer(remote);
        await helper.load(websocketNodes, clientFlow(url));
        const statuses = recordStatuses(helper.getNode("in"));
        await waitFor("error status", () => statuses.some((s) => s.event === "error"));
        statuses.find((s) => s.event === "error").should.have.properties({
            fill: "red", shape: "ring", text: "node-red:common.status.error" });
        await waitFor("the warning", () => helper.log().args.some((args) =>
            args[0].level === helper.log().WARN && String(args[0].msg).startsWith("websocket.errors.connect-error")));
        const port = Number(new URL(url).port);
        remote = await startServer({ port });
        await waitFor("the retry to connect", () => remote.connections.length === 1, ms(8000));
    });

    it("connects only while an in or out node uses the config", async function () {
        await helper.load(websocketNodes, [
            clientConfig(`${remote.url}/unused`),
            clientConfig(`${remote.url}/used`, { id: "used" }),
            { id: "in", type: "py-websocket in", server: "", client: "used", wires: [["seen"]] },
            { id: "seen", type: "helper" },
        ]);
        const seen = recordMessages(helper.getNode("seen"));
        // Both config nodes were declared before the used one's connection came up; a message
        // through it comes after anything the unused one could have started.
        await waitFor("the used one's connection", () => connectionsTo(remote, "/used").length === 1);
        connectionsTo(remote, "/used")[0].send("through the used one");
        await waitFor("the message", () => seen.length === 1);
        remote.connections.length.should.equal(1);
    });

    it("drops a connection whose server stops answering heartbeat pings, then reconnects", async function () {
        this.timeout(ms(20000));
        await stopServer(remote);
        remote = await startServer({ autoPong: false });
        await helper.load(websocketNodes, clientFlow(remote.url, { config: { hb: "1" } }));
        const statuses = recordStatuses(helper.getNode("in"));
        await waitFor("connected", () => statuses.some((s) => s.event === "connect"));
        await waitFor("the heartbeat error", () => statuses.some((s) => s.event === "error"), ms(5000));
        await waitFor("the reconnection", () => remote.connections.length === 2, ms(8000));
    });

    it("keeps a connection whose server answers heartbeat pings", async function () {
        await helper.load(websocketNodes, clientFlow(remote.url, { config: { hb: "1" } }));
        const statuses = recordStatuses(helper.getNode("in"));
        await waitFor("connected", () => statuses.some((s) => s.event === "connect"));
        let pings = 0;
        remote.connections[0].on("ping", () => pings++);
        // Past three heartbeats, each answered: a missed pong would have dropped it by the second.
        await waitFor("three pings answered", () => pings >= 3, ms(8000));
        statuses.slice(statuses.findIndex((s) => s.event === "connect") + 1).should.eql([]);
        remote.connections.length.should.equal(1);
        remote.connections[0].readyState.should.equal(WebSocket.OPEN);
    });

    it("closes the connection when the flow stops, and does not reconnect", async function () {
        await helper.load(websocketNodes, clientFlow(`${remote.url}/first`));
        await waitFor("the connection", () => remote.connections.length === 1);
        const closed = new Promise((resolve) => remote.connections[0].once("close", (code) => resolve(code)));
        await helper.unload();
        (await closed).should.equal(1000);
        // A second flow whose connection the server drops reconnects after the same delay (3 s):
        // once it has, the first flow's would have too.
        await helper.load(websocketNodes, clientFlow(`${remote.url}/second`));
        await waitFor("the second flow's connection", () => connectionsTo(remote, "/second").length === 1);
        connectionsTo(remote, "/second")[0].close(1000);
        await waitFor("the second flow's reconnection", () => connectionsTo(remote, "/second").length === 2, ms(8000));
        connectionsTo(remote, "/first").length.should.equal(1);
    });

    it("holds messages sent while the connection is down and delivers them in order after reconnecting", async function () {
        const url = remote.url;
        await stopServer(remote);
        await helper.load(websocketNodes, clientFlow(url));
        for (let i = 0; i < 5; i++) helper.getNode("out").receive({ payload: `queued ${i}` });
        remote = await startServer({ port: Number(new URL(url).port) });
        await waitFor("the queued messages", () => remote.received.length === 5, ms(8000));
        remote.received.should.eql([0, 1, 2, 3, 4].map((i) => `queued ${i}`));
    });

    it("drops the oldest past the queue bound with one warning saying how many", async function () {
        const url = remote.url;
        await stopServer(remote);
        helper.settings({ pyWebsocketClientQueueSize: 10 });
        try {
            await helper.load(websocketNodes, clientFlow(url));
        } finally {
            helper.settings({ pyWebsocketClientQueueSize: undefined });
        }
        for (let i = 0; i < 25; i++) helper.getNode("out").receive({ payload: `m${i}` });
        remote = await startServer({ port: Number(new URL(url).port) });
        await waitFor("the ten newest", () => remote.received.length === 10, ms(8000));
        remote.received.should.eql(Array.from({ length: 10 }, (_, i) => `m${i + 15}`));
        const warnings = helper.log().args.filter((args) =>
            args[0].level === helper.log().WARN && String(args[0].msg).startsWith("websocket.errors.queue-overflow"));
        warnings.length.should.equal(1);
    });
});

describe("py-websocket client over wss:// with a tls-config node", function () {
    const tlsNode = require(require("./lib/node-red-path").coreNodePath("core/network/05-tls.js"));
    let server;
    let wss;
    let url;
    const received = [];

    before(async function () {
        server = await startHttpsServer();
        wss = new WebSocket.Server({ server });
        wss.on("connection", (ws) => {
            ws.on("message", (data) => received.push(data.toString()));
            ws.send("secure hello");
        });
        url = `wss://localhost:${server.address().port}/secure`;
    });
    after(async function () {
        wss.close();
        await server.cleanup();
    });
    withHelper(helper);

    function tlsFlow(tlsConfig) {
        const flow = clientFlow(url, { config: { tls: "tls" } });
        flow.push(Object.assign({ id: "tls", type: "tls-config", cert: "", key: "", ca: "",
            verifyservercert: true, servername: "" }, tlsConfig));
        return flow;
    }

    it("connects with the CA of the tls-config node and verifies the server", async function () {
        await helper.load([tlsNode, websocketNodes], tlsFlow({ ca: server.certFile }));
        const seen = recordMessages(helper.getNode("seen"));
        await waitFor("the server's greeting", () => seen.length === 1);
        seen[0].payload.should.equal("secure hello");
        helper.getNode("out").receive({ payload: "over tls" });
        await waitFor("the frame at the server", () => received.includes("over tls"));
    });

    it("refuses a server it cannot verify", async function () {
        await helper.load([tlsNode, websocketNodes], tlsFlow({}));
        const statuses = recordStatuses(helper.getNode("in"));
        await waitFor("the error status", () => statuses.some((s) => s.event === "error"));
        statuses.some((s) => s.event === "connect").should.be.false();
    });

    it("connects without verification when verify server certificate is off", async function () {
        await helper.load([tlsNode, websocketNodes], tlsFlow({ verifyservercert: false }));
        const seen = recordMessages(helper.getNode("seen"));
        await waitFor("the server's greeting", () => seen.length === 1);
    });
});

describe("py-websocket client through Node-RED's proxy settings", function () {
    let remote;
    let proxy;
    const connects = [];

    before(async function () {
        proxy = net.createServer((downstream) => {
            downstream.once("data", (head) => {
                const line = head.toString("latin1").split("\r\n")[0];
                connects.push(line);
                const [host, port] = line.split(" ")[1].split(":");
                const upstream = net.connect(Number(port), host, () => {
                    downstream.write("HTTP/1.1 200 Connection established\r\n\r\n");
                    upstream.pipe(downstream);
                    downstream.pipe(upstream);
                });
                upstream.on("error", () => downstream.destroy());
                downstream.on("error", () => upstream.destroy());
                downstream.on("close", () => upstream.destroy());
            });
        });
        await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
        remote = await startServer();
    });
    after(async function () {
        await stopServer(remote);
        await new Promise((resolve) => proxy.close(resolve));
    });
    withHelper(helper, () => ({ proxyOptions: { env: { http_proxy: `http://127.0.0.1:${proxy.address().port}` } } }));

    it("tunnels the connection through the configured HTTP proxy", async function () {
        await helper.load(websocketNodes, clientFlow(remote.url));
        await waitFor("the connection", () => remote.connections.length === 1);
        connects.should.eql([`CONNECT 127.0.0.1:${new URL(remote.url).port} HTTP/1.1`]);
        helper.getNode("out").receive({ payload: "via proxy" });
        await waitFor("the frame", () => remote.received.includes("via proxy"));
    });
});

describe("py-websocket client handshake timeout", function () {
    let silent;
    const accepted = [];
    before(async function () {
        silent = net.createServer((socket) => { // accepts, never answers
            accepted.push(socket);
            socket.on("error", () => {});
        });
        await new Promise((resolve) => silent.listen(0, "127.0.0.1", resolve));
    });
    after(() => new Promise((resolve) => {
        silent.close(resolve);
        for (const socket of accepted) socket.destroy();
    }));
    withHelper(helper, { pyWebsocketListenerHandshakeTimeout: 1 });

    it("gives up on a server that never answers the handshake, shows the error, and retries", async function () {
        await helper.load(websocketNodes, clientFlow(`ws://127.0.0.1:${silent.address().port}/`));
        const statuses = recordStatuses(helper.getNode("in"));
        await waitFor("the error status", () => statuses.some((s) => s.event === "error"), ms(4000));
        await waitFor("the disconnected status", () => statuses.some((s) => s.event === "disconnect"));
        await waitFor("the retry", () => accepted.length === 2, ms(8000));
        statuses.some((s) => s.event === "connect").should.be.false();
    });
});

describe("py-websocket client authentication from credentials", function () {
    let remote;
    withRemoteServer(helper, (server) => { remote = server; }, () => remote);

    it("sends Authorization: Bearer from the token credential, replacing a header-list entry", async function () {
        const flow = clientFlow(remote.url, { config: { authType: "bearer", headers: [
            { keyType: "Authorization", keyValue: "", valueType: "other", valueValue: "plain in the flow" }] } });
        await helper.load(websocketNodes, flow, { client: { token: "s3cret-token" } });
        await waitFor("the connection", () => remote.connections.length === 1);
        remote.connections[0].request.headers.authorization.should.equal("Bearer s3cret-token");
    });

    it("sends Authorization: Basic from the user and password credentials", async function () {
        await helper.load(websocketNodes, clientFlow(remote.url, { config: { authType: "basic" } }),
            { client: { user: "alice", password: "pa:ss" } });
        await waitFor("the connection", () => remote.connections.length === 1);
        remote.connections[0].request.headers.authorization.should.equal(
            "Basic " + Buffer.from("alice:pa:ss").toString("base64"));
    });

    it("sends no Authorization without authType, as a migrated core flow", async function () {
        await helper.load(websocketNodes, clientFlow(remote.url), { client: { token: "unused" } });
        await waitFor("the connection", () => remote.connections.length === 1);
        should(remote.connections[0].request.headers.authorization).be.undefined();
    });
});
