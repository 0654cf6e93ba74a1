/**
 * Listener sessions under the flow's control (issue 11), through real `ws` clients against
 * Node-RED's own port and the real worker, with handed-over sockets and with relayed bytes:
 * connection events on the in node's second output (in order per session), msg.action "close"
 * on the out node, the server heartbeat, JWT authentication and allowed origins before the 101,
 * the connection limit (503), the message rate (1008), and errors a Catch node sees.
 */
"use strict";

const crypto = require("crypto");
const should = require("should");
const WebSocket = require("ws");
const helper = require("node-red-node-test-helper");
const websocketNodes = require("../nodes/websocket.js");
const catchNode = require(require("./lib/node-red-path").coreNodePath("core/common/25-catch.js"));
const { ms, waitFor, connectClient, closeClient, recordMessages, wsUrl, withHelper } = require("./lib/harness");
const { exampleFlow } = require("./lib/flows");

helper.init(require("./lib/node-red-path").redMain);

const SECRET = "a-test-secret-that-is-long-enough!";

/** A JWT signed by the test (HS256), as any issuer would make it. */
function jwtHS256(claims, secret = SECRET) {
    const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const signed = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`;
    return `${signed}.${crypto.createHmac("sha256", secret).update(signed).digest("base64url")}`;
}

const now = () => Math.floor(Date.now() / 1000);

/** A listener (props over the defaults), an in node with connection events, an out node, a Catch node. */
function controlFlow(listenerProps = {}, { events = true, reportUndelivered = false } = {}) {
    return [
        { id: "f1", type: "tab" },
        Object.assign({ id: "listener", type: "py-websocket-listener", path: "/ctl", wholemsg: "false" }, listenerProps),
        { id: "in", type: "py-websocket in", z: "f1", server: "listener", client: "", events, wires: [["seen"], ["events"]] },
        { id: "seen", type: "helper", z: "f1" },
        { id: "events", type: "helper", z: "f1" },
        { id: "out", type: "py-websocket out", z: "f1", server: "listener", client: "", reportUndelivered },
        { id: "catcher", type: "catch", z: "f1", scope: null, uncaught: false, wires: [["caught"]] },
        { id: "caught", type: "helper", z: "f1" },
    ];
}

/** What an HTTP refusal of the upgrade says: {status, headers}. */
function refusal(url, options = {}) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, options.protocols, { headers: options.headers });
        ws.on("unexpected-response", (req, res) => {
            resolve({ status: res.statusCode, headers: res.headers });
            req.destroy();
        });
        ws.on("open", () => {
            ws.terminate();
            reject(new Error("the handshake succeeded"));
        });
        ws.on("error", () => {});
    });
}

function closed(ws) {
    return new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
}

for (const mode of ["handoff", "relay"]) {
    describe(`listener sessions under the flow's control (${mode})`, function () {
        withHelper(helper, mode === "relay" ? { pyWebsocketListenerHandoff: false } : {});
        const url = (path = "/ctl") => wsUrl(helper, path);

        async function load(listenerProps, options, credentials) {
            await helper.load([websocketNodes, catchNode], controlFlow(listenerProps, options),
                credentials ? { listener: credentials } : undefined);
            return {
                seen: recordMessages(helper.getNode("seen")),
                events: recordMessages(helper.getNode("events")),
                caught: recordMessages(helper.getNode("caught")),
            };
        }

        it("sends connect, the messages and disconnect of each session in order, on the second output", async function () {
            const { seen, events } = await load();
            const order = [];
            helper.getNode("seen").on("input", (msg) => order.push([msg._session.id, "message", msg.payload]));
            helper.getNode("events").on("input", (msg) => order.push([msg._session.id, msg.event]));
            const clients = await Promise.all([0, 1, 2].map(() => connectClient(url() + "?room=blue&tag=a&tag=b",
                { protocols: ["chat"], headers: { Cookie: "secret=1", "X-Client": "test" } })));
            clients.forEach((ws, c) => {
                for (let i = 0; i < 5; i++) ws.send(`${c}:${i}`);
            });
            await waitFor("every message", () => seen.length === 15);
            clients[0].close(4001, "leaving");
            await Promise.all(clients.slice(1).map(closeClient));
            await waitFor("three disconnects", () => events.filter((m) => m.event === "disconnect").length === 3);

            const connect = events.find((m) => m.event === "connect");
            connect._session.should.eql({ type: "websocket", id: connect._session.id });
            connect.payload.remoteAddress.should.match(/127\.0\.0\.1/);
            connect.payload.remotePort.should.be.a.Number();
            connect.payload.path.should.equal("/ctl");
            connect.payload.query.should.eql({ room: "blue", tag: ["a", "b"] });
            connect.payload.subprotocol.should.equal("chat");
            connect.payload.headers["x-client"].should.equal("test");
            connect.payload.headers.should.not.have.property("cookie");
            should(connect.payload.user).be.null();
            // Output 1 carries only WebSocket messages, as without the option.
            seen.every((msg) => msg.event === undefined).should.be.true();
            const sids = new Set(order.map(([sid]) => sid));
            sids.size.should.equal(3);
            for (const sid of sids) {
                const own = order.filter(([id]) => id === sid);
                own[0][1].should.equal("connect");
                own[own.length - 1][1].should.equal("disconnect");
                own.slice(1, -1).map((entry) => entry[1]).should.eql(Array(5).fill("message"));
                const c = own[1][2].split(":")[0];
                own.slice(1, -1).map((entry) => entry[2]).should.eql([0, 1, 2, 3, 4].map((i) => `${c}:${i}`));
            }
            const first = events.find((m) => m.event === "disconnect" && m.payload.code === 4001);
            first.payload.should.eql({ code: 4001, reason: "leaving", by: "client" });
        });

        it("sends no events and keeps one output when the option is off", async function () {
            const { seen, events } = await load({}, { events: false });
            const ws = await connectClient(url());
            ws.send("only data");
            await waitFor("the message", () => seen.length === 1);
            await closeClient(ws);
            // Positive control after it: a second client's message comes, and still no event.
            const again = await connectClient(url());
            again.send("after");
            await waitFor("the second message", () => seen.length === 2);
            events.length.should.equal(0);
            await closeClient(again);
        });

        it("closes one client with the code and reason of msg.action close, and every client without _session", async function () {
            const { events } = await load();
            const a = await connectClient(url());
            const b = await connectClient(url());
            const c = await connectClient(url());
            await waitFor("three connects", () => events.filter((m) => m.event === "connect").length === 3);
            const aClosed = closed(a);
            const sidOfA = events[0]._session.id;
            helper.getNode("out").receive({ action: "close", code: 4003, reason: "kicked", _session: events[0]._session });
            (await aClosed).should.eql({ code: 4003, reason: "kicked" });
            await waitFor("a's disconnect", () => events.some((m) => m.event === "disconnect"));
            events.find((m) => m.event === "disconnect").should.containDeep({
                _session: { id: sidOfA }, payload: { code: 4003, reason: "kicked", by: "server" } });
            b.readyState.should.equal(WebSocket.OPEN);
            const rest = [closed(b), closed(c)];
            helper.getNode("out").receive({ action: "close", payload: "not sent" });
            (await Promise.all(rest)).should.eql([{ code: 1000, reason: "" }, { code: 1000, reason: "" }]);
            b.received.should.eql([]); // a message with an action is not sent as data
        });

        it("ignores a close for a session that is gone (debug log), and fails a bad code for a Catch node", async function () {
            const { caught } = await load();
            const out = helper.getNode("out");
            out.receive({ action: "close", _session: { type: "websocket", id: "0123456789abcdef" } });
            await waitFor("the debug line", () => helper.log().args.some((args) =>
                args[0].level === helper.log().DEBUG && args[0].msg === "websocket.log.close-gone"));
            out.receive({ action: "close", code: 1001, _session: { type: "websocket", id: "x" } });
            out.receive({ action: "close", reason: "x".repeat(124) });
            out.receive({ action: "shout" });
            await waitFor("three caught", () => caught.length === 3);
            caught.map((msg) => msg.error.message.replace(/^Error: /, "")).should.eql(["websocket.errors.bad-close-code",
                "websocket.errors.bad-close-reason", "websocket.errors.bad-action"]);
        });

        it("drops a client that ignores pings after the next beat; its disconnect says heartbeat", async function () {
            const { events } = await load({ hb: String(0.1 * ms(1)) });
            const answering = await connectClient(url());
            const mute = new WebSocket(url(), { autoPong: false });
            await new Promise((resolve, reject) => mute.once("open", resolve).once("error", reject));
            let pinged = 0;
            mute.on("ping", () => pinged++);
            const muteClosed = new Promise((resolve) => mute.once("close", resolve));
            await waitFor("a disconnect", () => events.some((m) => m.event === "disconnect"), ms(10000));
            await muteClosed;
            pinged.should.be.above(0);
            const disconnect = events.find((m) => m.event === "disconnect");
            disconnect.payload.should.eql({ code: 1006, reason: "", by: "heartbeat" });
            // The client that answers is still there, beats later.
            answering.readyState.should.equal(WebSocket.OPEN);
            answering.send("alive");
            await waitFor("the answering client's message", () => helper.getNode("listener").role.sessions.size === 1);
            await closeClient(answering);
        });

        it("takes a JWT signed with the secret (header or query) and puts the identity in _session.user", async function () {
            const { seen, events } = await load({ authType: "jwt", jwtAlgorithm: "HS256", jwtClaims: "role" },
                {}, { jwtKey: SECRET });
            const token = jwtHS256({ sub: "alice", role: "admin", exp: now() + 60 });
            const byHeader = await connectClient(url(), { headers: { Authorization: `Bearer ${token}` } });
            const byQuery = await connectClient(`${url()}?token=${token}&room=1`);
            byHeader.send("hi");
            await waitFor("the message", () => seen.length === 1);
            seen[0]._session.user.should.eql({ name: "alice", claims: { role: "admin" } });
            await waitFor("two connects", () => events.filter((m) => m.event === "connect").length === 2);
            const viaQuery = events.filter((m) => m.event === "connect")[1];
            viaQuery.payload.query.should.eql({ room: "1" }); // the token is not passed on
            viaQuery.payload.user.name.should.equal("alice");
            viaQuery.payload.headers.should.not.have.property("authorization");
            await Promise.all([closeClient(byHeader), closeClient(byQuery)]);
            await waitFor("two disconnects", () => events.filter((m) => m.event === "disconnect").length === 2);
            events.filter((m) => m.event === "disconnect")[0]._session.user.name.should.equal("alice");
        });

        it("answers 401 with WWW-Authenticate to an expired or forged JWT, and no flow sees the client", async function () {
            const { events } = await load({ authType: "jwt", jwtAlgorithm: "HS256" }, {}, { jwtKey: SECRET });
            const expired = jwtHS256({ sub: "alice", exp: now() - 30 });
            let answer = await refusal(url(), { headers: { Authorization: `Bearer ${expired}` } });
            answer.status.should.equal(401);
            answer.headers["www-authenticate"].should.match(/^Bearer realm="\/ctl".*error_description="token expired"/);
            answer = await refusal(`${url()}?token=${jwtHS256({ sub: "x" }, "another-secret-that-is-long-enough")}`);
            answer.status.should.equal(401);
            answer.headers["www-authenticate"].should.match(/error="invalid_token"/);
            (await refusal(url())).status.should.equal(401);
            // Positive control: a good token gets in, and its connect is the only event.
            const ws = await connectClient(url(), { headers: { Authorization: `Bearer ${jwtHS256({ sub: "ok" })}` } });
            await waitFor("the good client's connect", () => events.length === 1);
            events[0].payload.user.name.should.equal("ok");
            await closeClient(ws);
        });

        it("answers 403 to a browser Origin not allowed, and lets listed ones and non-browsers in", async function () {
            const { events } = await load({ origins: "https://app.example\n*.example.org" });
            (await refusal(url(), { headers: { Origin: "https://evil.example" } })).status.should.equal(403);
            const listed = await connectClient(url(), { headers: { Origin: "https://app.example" } });
            const wildcard = await connectClient(url(), { headers: { Origin: "https://chat.example.org" } });
            const noOrigin = await connectClient(url());
            await waitFor("three connects", () => events.length === 3);
            await Promise.all([listed, wildcard, noOrigin].map(closeClient));
        });

        it("answers 503 past max connections and leaves the open sessions alone", async function () {
            const { seen } = await load({ maxConnections: "2" });
            const a = await connectClient(url());
            const b = await connectClient(url());
            await waitFor("two sessions", () => helper.getNode("listener").role.sessions.size === 2);
            (await refusal(url())).status.should.equal(503);
            a.send("still here");
            await waitFor("a's message", () => seen.length === 1);
            await closeClient(a);
            await waitFor("one session", () => helper.getNode("listener").role.sessions.size === 1);
            const c = await connectClient(url());
            await Promise.all([closeClient(b), closeClient(c)]);
        });

        it("closes a client over the message rate with 1008; its disconnect says limit", async function () {
            const { events } = await load({ maxRate: "5" });
            const calm = await connectClient(url());
            const flood = await connectClient(url());
            const floodClosed = closed(flood);
            calm.send("one");
            for (let i = 0; i < 100; i++) flood.send(`m${i}`);
            (await floodClosed).should.eql({ code: 1008, reason: "message rate over 5/s" });
            await waitFor("the disconnect", () => events.some((m) => m.event === "disconnect"));
            events.find((m) => m.event === "disconnect").payload.should.eql(
                { code: 1008, reason: "message rate over 5/s", by: "limit" });
            calm.readyState.should.equal(WebSocket.OPEN);
            await closeClient(calm);
        });

        it("fails a reply to a client that has gone, for a Catch node, when asked to", async function () {
            const { seen, caught } = await load({}, { reportUndelivered: true });
            const ws = await connectClient(url());
            ws.send("hello");
            await waitFor("the message", () => seen.length === 1);
            await closeClient(ws);
            await waitFor("the session gone", () => helper.getNode("listener").role.sessions.size === 0);
            helper.getNode("out").receive({ payload: "too late", _session: seen[0]._session });
            await waitFor("the caught error", () => caught.length === 1);
            caught[0].error.message.should.match(/websocket\.errors\.session-gone \(client 1005\)/);
            caught[0].payload.should.equal("too late");
        });
    });
}

describe("the example flow 04 - Chat with JWT", function () {
    withHelper(helper);
    const core = require("./lib/node-red-path").coreNodePath;
    const modules = [websocketNodes, catchNode, require(core("core/function/10-function.js")),
        require(core("core/common/20-inject.js")), require(core("core/common/90-comment.js"))];

    it("lets Alice and Bob in with their tokens, keeps them in flow context, and kicks Bob", async function () {
        const { flow, credentials, byName } = exampleFlow("04 - Chat with JWT", new URL(helper.url()).port);
        await helper.load(modules, flow, credentials);
        const events = recordMessages(helper.getNode(byName("helper", "connection events")));
        const bobReceived = recordMessages(helper.getNode(byName("helper", "Bob received")));
        await waitFor("Alice and Bob connected", () => events.filter((m) => m.event === "connect").length === 2, ms(10000));
        const names = events.map((m) => m.payload.user.name).sort();
        names.should.eql(["alice", "bob"]);
        helper.getNode(byName("inject", "Alice says hi")).receive({ payload: "hi from Alice" });
        await waitFor("Bob hears Alice", () => bobReceived.some((m) => m.payload === "Alice: hi from Alice"));
        // A client without a token is refused.
        (await refusal(wsUrl(helper, "/chat"))).status.should.equal(401);
        helper.getNode(byName("inject", "kick Bob")).receive({});
        await waitFor("Bob's disconnect", () => events.some((m) => m.event === "disconnect"));
        const kicked = events.find((m) => m.event === "disconnect");
        kicked._session.user.name.should.equal("bob");
        kicked.payload.should.eql({ code: 4000, reason: "kicked by the moderator", by: "server" });
    });
});
