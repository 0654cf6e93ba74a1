/**
 * Client connections under the flow's control (issue 12), against real `ws` servers on
 * 127.0.0.1 through the real worker: msg.action connect (with a new URL, headers, subprotocol),
 * disconnect and reconnect on the out node; automatic connect off; the backoff seen from the
 * server's side; giving up; the Origin field; connection events on the in node's second output;
 * the statuses; messages held while down going to the next connection; errors a Catch node sees.
 */
"use strict";

const should = require("should");
const helper = require("node-red-node-test-helper");
const WebSocket = require("ws");
const websocketNodes = require("../nodes/websocket.js");
const catchNode = require(require("./lib/node-red-path").coreNodePath("core/common/25-catch.js"));
const {
    ms, delay, waitFor, startServer, stopServer, withHelper, recordStatuses, recordMessages,
} = require("./lib/harness");
const { clientConfig, exampleFlow } = require("./lib/flows");

helper.init(require("./lib/node-red-path").redMain);

const catalog = require("../nodes/locales/en-US/websocket.json");

/** RED._ with this package's English catalog (the test helper's returns the key): statuses as users read them. */
function t(key, args = {}) {
    const text = key.split(".").reduce((at, part) => (at && typeof at === "object" ? at[part] : undefined), catalog);
    return typeof text === "string" ? text.replace(/__(\w+)__/g, (all, name) => String(args[name])) : key;
}
const translatedNodes = (RED) => {
    RED._ = t;
    return websocketNodes(RED);
};

/** A client config (props over core's defaults), an in node with events, an out node, a Catch node. */
function controlFlow(url, props = {}) {
    return [
        { id: "f1", type: "tab" },
        clientConfig(url, props),
        { id: "in", type: "py-websocket in", z: "f1", server: "", client: "client", events: true,
            wires: [["seen"], ["events"]] },
        { id: "seen", type: "helper", z: "f1" },
        { id: "events", type: "helper", z: "f1" },
        { id: "out", type: "py-websocket out", z: "f1", server: "", client: "client" },
        { id: "catcher", type: "catch", z: "f1", scope: null, uncaught: false, wires: [["caught"]] },
        { id: "caught", type: "helper", z: "f1" },
    ];
}

/** Loads a control flow; returns what its helper nodes and the in node's status record. */
async function load(url, props) {
    await helper.load([translatedNodes, catchNode], controlFlow(url, props));
    return {
        seen: recordMessages(helper.getNode("seen")),
        events: recordMessages(helper.getNode("events")),
        caught: recordMessages(helper.getNode("caught")),
        statuses: recordStatuses(helper.getNode("in")),
        out: helper.getNode("out"),
        client: helper.getNode("client"),
    };
}

/** Resolves with {code, reason} when the server side of ws sees the close. */
function closedAtServer(ws) {
    return new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
}

// Statuses without arguments are catalog keys (the editor translates them, as core's).
const texts = (statuses) => statuses.map((s) => s.text);

describe("py-websocket client under the flow's control", function () {
    const servers = [];
    async function server(options) {
        const started = await startServer(options);
        servers.push(started);
        return started;
    }
    withHelper(helper);
    afterEach(async () => {
        await Promise.all(servers.splice(0).map(stopServer));
    });

    it("with automatic connect off, waits for a connect action, then connects", async function () {
        const remote = await server();
        const { client, out, statuses } = await load(remote.url, { autoConnect: false });
        await waitFor("the idle status", () => texts(statuses).includes("websocket.status.idle"));
        await delay(ms(300));
        remote.connections.length.should.equal(0);
        out.receive({ action: "connect" });
        await waitFor("the connection", () => remote.connections.length === 1 && client.role.state === "connected");
        texts(statuses).should.containEql("websocket.status.connecting");
    });

    it("moves to a URL given at runtime: the old server sees 1000, held messages go to the new one", async function () {
        const a = await server();
        const b = await server();
        const { client, out, statuses, events } = await load(`${a.url}/first`);
        await waitFor("the first connection", () => client.role.state === "connected");
        const aClosed = closedAtServer(a.connections[0]);
        out.receive({ action: "connect", url: `${b.url}/second?k=v` });
        out.receive({ payload: "after the move" }); // sent before the new connection is up
        (await aClosed).should.eql({ code: 1000, reason: "" });
        await waitFor("the new connection", () => b.connections.length === 1);
        b.connections[0].request.url.should.equal("/second?k=v");
        await waitFor("the held message at the new server", () => b.received.length === 1);
        b.received.should.eql(["after the move"]);
        a.received.should.eql([]);
        await waitFor("the status with the URL", () =>
            texts(statuses).includes(`connected to ${b.url}/second`));
        await waitFor("connect, disconnect, connect", () => events.length === 3);
        events.map((m) => m.event).should.eql(["connect", "disconnect", "connect"]);
        events[1].payload.should.eql({ code: 1000, reason: "", by: "client" });
        events[2].payload.url.should.equal(`${b.url}/second?k=v`);
    });

    it("disconnect holds the connection down; what is sent meanwhile goes to the next connect", async function () {
        const remote = await server();
        const { client, out, statuses } = await load(remote.url, { reconnectDelay: "0.05" });
        await waitFor("the connection", () => client.role.state === "connected");
        const closed = closedAtServer(remote.connections[0]);
        out.receive({ action: "disconnect" });
        (await closed).should.eql({ code: 1000, reason: "" });
        out.receive({ payload: "held 1" });
        out.receive({ payload: "held 2" });
        await delay(ms(500)); // ten reconnect delays
        remote.connections.length.should.equal(1);
        texts(statuses).slice(-1).should.eql(["websocket.status.idle"]); // after core's "disconnected"
        out.receive({ action: "connect" });
        await waitFor("the second connection", () => remote.connections.length === 2);
        await waitFor("the held messages, in order", () => remote.received.length === 2);
        remote.received.should.eql(["held 1", "held 2"]);
    });

    it("reconnect closes and connects again at once", async function () {
        const remote = await server();
        const { client, out } = await load(remote.url, { reconnectDelay: "30" });
        await waitFor("the connection", () => client.role.state === "connected");
        const closed = closedAtServer(remote.connections[0]);
        out.receive({ action: "reconnect" });
        (await closed).code.should.equal(1000);
        // Well before the 30 s reconnect delay.
        await waitFor("the second connection", () => remote.connections.length === 2 && client.role.state === "connected");
    });

    it("backs off as the server sees it: waits grow by the factor up to the maximum, then it gives up", async function () {
        this.timeout(ms(30000));
        const unit = ms(200) / 1000; // seconds, scaled like every wait of the tests
        const attempts = [];
        const remote = await server({ verifyClient: (info, accept) => {
            attempts.push(Date.now());
            accept(false, 503);
        } });
        const { statuses, out } = await load(remote.url, { reconnectPolicy: "backoff", reconnectDelay: String(unit),
            reconnectMaxDelay: String(4 * unit), reconnectFactor: "2", reconnectAttempts: "5" });
        await waitFor("five attempts and giving up", () => texts(statuses).some((t) => /gave up/.test(t)), ms(15000));
        attempts.length.should.equal(5);
        const gaps = attempts.slice(1).map((t, i) => (t - attempts[i]) / 1000);
        const steps = [1, 2, 4, 4].map((k) => k * unit);
        gaps.forEach((gap, i) => gap.should.be.aboveOrEqual(0.75 * steps[i] - 0.02, `wait ${i + 1}: ${gaps}`));
        gaps[2].should.be.above(gaps[0], `the waits grew: ${gaps}`);
        texts(statuses).filter((t) => /reconnecting in/.test(t)).length.should.equal(4);
        texts(statuses).pop().should.equal("gave up after 5 failed attempts: waiting for a connect action");
        await delay(ms(1000)); // past the longest wait: nothing more
        attempts.length.should.equal(5);
        out.receive({ action: "connect" });
        await waitFor("attempts again", () => attempts.length === 6);
    });

    it("sends the Origin field, and the headers and subprotocol of a connect action", async function () {
        const remote = await server({ handleProtocols: (protocols) => (protocols.has("v2.chat") ? "v2.chat" : false) });
        remote.on("headers", (headers) => headers.push("X-Served-By: test"));
        const { client, out, events } = await load(remote.url, { origin: "https://flows.example",
            headers: [{ keyType: "other", keyValue: "X-Team", valueType: "other", valueValue: "blue" }] });
        await waitFor("the connection", () => client.role.state === "connected");
        remote.connections[0].request.headers.origin.should.equal("https://flows.example");
        remote.connections[0].request.headers["x-team"].should.equal("blue");
        out.receive({ action: "connect", headers: { "X-Team": "red", "X-Run": 7 }, subprotocol: "v2.chat" });
        await waitFor("the second connection", () => remote.connections.length === 2 && client.role.state === "connected");
        const request = remote.connections[1].request;
        request.headers["x-team"].should.equal("red");
        request.headers["x-run"].should.equal("7");
        request.headers.origin.should.equal("https://flows.example");
        request.headers["sec-websocket-protocol"].should.equal("v2.chat");
        await waitFor("the second connect event", () => events.filter((m) => m.event === "connect").length === 2);
        const connect = events.filter((m) => m.event === "connect")[1];
        connect.payload.subprotocol.should.equal("v2.chat");
        connect.payload.headers["x-served-by"].should.equal("test");
        connect.payload.headers.upgrade.should.equal("websocket");
    });

    it("reports connection events in order, with who closed, and an error for a failed attempt", async function () {
        const remote = await server();
        const { client, events, seen } = await load(remote.url, { reconnectDelay: "0.1" });
        await waitFor("the connection", () => client.role.state === "connected");
        remote.connections[0].send("hello");
        await waitFor("the message", () => seen.length === 1);
        remote.connections[0].close(4000, "bye");
        await waitFor("the reconnection", () => remote.connections.length === 2 && client.role.state === "connected");
        await stopServer(remote);
        servers.splice(servers.indexOf(remote), 1);
        await waitFor("an error event", () => events.some((m) => m.event === "error"));
        const kinds = events.map((m) => m.event);
        kinds.slice(0, 4).should.eql(["connect", "disconnect", "connect", "disconnect"]);
        events[0]._session.id.should.equal(seen[0]._session.id);
        events[1]._session.id.should.equal(events[0]._session.id);
        events[1].payload.should.eql({ code: 4000, reason: "bye", by: "server" });
        events[2]._session.id.should.not.equal(events[0]._session.id);
        events[0].payload.url.should.equal(remote.url);
        events.find((m) => m.event === "error").payload.error.should.be.a.String();
    });

    it("fails a bad action, URL, header or subprotocol for a Catch node and keeps the connection", async function () {
        const remote = await server();
        const { client, out, caught } = await load(remote.url);
        await waitFor("the connection", () => client.role.state === "connected");
        out.receive({ action: "shout" });
        out.receive({ action: "close" });
        out.receive({ action: "connect", url: "http://127.0.0.1:1/" });
        out.receive({ action: "connect", url: "ws://" });
        out.receive({ action: "connect", headers: { "X-Bad": "a\r\nInjected: yes" } });
        out.receive({ action: "connect", headers: "X-Bad: 1" });
        out.receive({ action: "connect", subprotocol: ["ok", "not ok"] });
        await waitFor("seven caught", () => caught.length === 7);
        caught.map((msg) => msg.error.message.replace(/^Error: /, "")).should.eql([
            t("websocket.errors.bad-action", { action: '"shout"', actions: '"connect", "disconnect", "reconnect"' }),
            t("websocket.errors.close-client"), t("websocket.errors.bad-client-url"), t("websocket.errors.bad-client-url"),
            t("websocket.errors.bad-client-headers"), t("websocket.errors.bad-client-headers"),
            t("websocket.errors.bad-client-subprotocol")]);
        await delay(ms(200));
        remote.connections.length.should.equal(1);
        remote.connections[0].readyState.should.equal(WebSocket.OPEN);
        out.receive({ payload: "still here" });
        await waitFor("the message", () => remote.received.length === 1);
    });

    it("a connect while connected with nothing new keeps the connection", async function () {
        const remote = await server();
        const { client, out } = await load(remote.url);
        await waitFor("the connection", () => client.role.state === "connected");
        out.receive({ action: "connect" });
        out.receive({ payload: "same connection" });
        await waitFor("the message", () => remote.received.length === 1);
        await delay(ms(200));
        remote.connections.length.should.equal(1);
        client.role.state.should.equal("connected");
    });

    it("shows connecting, then reconnecting in N s after a failed attempt", async function () {
        const remote = await server();
        const url = remote.url;
        await stopServer(remote);
        servers.pop();
        const { statuses } = await load(url, { reconnectDelay: "20" });
        await waitFor("reconnecting", () => texts(statuses).includes("reconnecting in 20 s"));
        const seen = texts(statuses);
        seen.indexOf("websocket.status.connecting").should.be.below(seen.indexOf("reconnecting in 20 s"));
        statuses.find((s) => s.text === "reconnecting in 20 s").should.containDeep({ fill: "red", shape: "ring" });
        should(statuses.find((s) => s.event === "error")).be.ok();
    });
});

describe("the example flow 05 - Connect to a URL given at runtime", function () {
    withHelper(helper);
    const core = require("./lib/node-red-path").coreNodePath;
    const modules = [translatedNodes, catchNode, require(core("core/function/10-function.js")),
        require(core("core/common/20-inject.js")), require(core("core/common/90-comment.js"))];

    it("waits for a button, moves between the stations, holds a message while down and catches a bad URL", async function () {
        const port = new URL(helper.url()).port;
        const { flow, byName } = exampleFlow("05 - Connect to a URL given at runtime", port);
        await helper.load(modules, flow);
        const replies = recordMessages(helper.getNode(byName("helper", "replies")));
        const events = recordMessages(helper.getNode(byName("helper", "connection events")));
        const errors = recordMessages(helper.getNode(byName("helper", "errors")));
        const statuses = recordStatuses(helper.getNode(flow.find((n) => n.type === "py-websocket in" && n.client).id));
        const press = (name) => helper.getNode(byName("inject", name)).receive({});
        await waitFor("the idle status", () => texts(statuses).includes("websocket.status.idle"));
        press("say hello"); // held: nothing is connected yet
        press("connect to A");
        await waitFor("A's answer to the held message", () => replies.some((m) => m.payload === "station A heard: hello"));
        press("connect to B");
        await waitFor("connected to B", () => texts(statuses).includes(`connected to ws://localhost:${port}/station/b`));
        press("say hello");
        await waitFor("B's answer", () => replies.some((m) => m.payload === "station B heard: hello"));
        press("bad URL");
        await waitFor("the error", () => errors.length === 1);
        errors[0].error.message.replace(/^Error: /, "").should.equal(t("websocket.errors.bad-client-url"));
        press("disconnect");
        await waitFor("the disconnect", () => events.filter((m) => m.event === "disconnect").length === 2);
        events.map((m) => m.event).should.eql(["connect", "disconnect", "connect", "disconnect"]);
        events[1].payload.by.should.equal("client");
        events[2].payload.url.should.equal(`ws://localhost:${port}/station/b`);
        await delay(ms(1500)); // past the first backoff delay: it stays down
        events.length.should.equal(4);
    });
});
