/**
 * Listeners shared by two real Node-RED processes through a real redis-server (the backplane,
 * issue 13): the same flow on both, clients on each. A broadcast made on A reaches the clients of
 * A and B once each; a reply made on B reaches a session held by A; the status on A counts the
 * clients of both ("connected 2 (4 total)"); Redis killed and started again: each instance still
 * serves its own clients, the status says "backplane down" (no total), the loss is counted in the
 * log, and broadcasts cross again; an instance that stops leaves the other serving, and counting
 * its own clients only.
 */
"use strict";

const path = require("path");
const should = require("should");
const { NodeRedProcess, ROOT } = require("./lib/node-red-process");
const { RedisServer, ensureRedis } = require("./lib/redis-server");
const { waitFor, connectClient, closeClient, delay, ms } = require("./lib/harness");

const VENV = path.join(ROOT, ".venv");

/**
 * The flow of both instances: clients of /chat ask "whoami" and get their session id back; POST
 * /send {text, session} sends text to that session, or broadcasts it without one.
 */
function chatFlow() {
    return [
        { id: "tab0000000000001", type: "tab", label: "Chat" },
        { id: "listener00000001", type: "py-websocket-listener", path: "/chat", wholemsg: "false", backplane: true,
            backplaneUrl: "", backplaneNamespace: "" },
        { id: "in00000000000001", type: "py-websocket in", z: "tab0000000000001", server: "listener00000001",
            client: "", wires: [["whoami0000000001"]] },
        { id: "whoami0000000001", type: "function", z: "tab0000000000001", outputs: 1,
            func: "if (msg.payload !== 'whoami') return null;\nmsg.payload = 'you are ' + msg._session.id;\nreturn msg;",
            wires: [["out0000000000001"]] },
        { id: "httpin0000000001", type: "http in", z: "tab0000000000001", url: "/send", method: "post",
            wires: [["send000000000001"]] },
        { id: "send000000000001", type: "function", z: "tab0000000000001", outputs: 2,
            func: "const out = { payload: msg.payload.text };\n" +
                "if (msg.payload.session) out._session = { type: 'websocket', id: msg.payload.session };\n" +
                "msg.payload = 'ok';\nreturn [out, msg];",
            wires: [["out0000000000001"], ["httpout000000001"]] },
        { id: "httpout000000001", type: "http response", z: "tab0000000000001", statusCode: "", headers: {} },
        { id: "out0000000000001", type: "py-websocket out", z: "tab0000000000001", server: "listener00000001",
            client: "" },
    ];
}

async function post(red, body) {
    const result = await red.api("POST", "/send", body);
    result.status.should.equal(200);
}

async function chatClient(red) {
    const url = `ws://127.0.0.1:${red.port}/chat`;
    const ws = await waitFor("the listener", () => connectClient(url, { handshakeTimeout: ms(500) }).catch(() => null));
    ws.send("whoami");
    await waitFor("the session id", () => ws.received.length === 1);
    ws.sid = ws.received.shift().replace("you are ", "");
    return ws;
}

let probes = 0;

/**
 * Each client got exactly `expected` since `marks` (its received length then; `expected` may be
 * one list per client), then a probe
 * broadcast from each of `reds`, in either order, and nothing else: a message that should not
 * have come (a duplicate, a reply to another client) would have come before the probes (the
 * probe of the other instance follows on each instance's subscription whatever was published
 * before it).
 */
async function exactly(clients, expectedOf, marks, reds) {
    const expect = (index) => (Array.isArray(expectedOf[0]) ? expectedOf[index] : expectedOf);
    for (const [index, ws] of clients.entries()) {
        const expected = expect(index);
        await waitFor(`${expected.join(", ")} on client ${index}`, () => ws.received.length >= marks[index] + expected.length,
            ms(10000));
    }
    const sent = [];
    for (const red of reds) {
        const text = `probe ${++probes}`;
        sent.push(text);
        await post(red, { text });
    }
    for (const [index, ws] of clients.entries()) {
        await waitFor(`the probes on client ${index}`, () => sent.every((text) => ws.received.includes(text)), ms(10000));
        const got = ws.received.slice(marks[index]);
        const expected = expect(index);
        got.slice(0, expected.length).should.eql(expected, `client ${index}`);
        got.slice(expected.length).sort().should.eql(sent.slice().sort(), `client ${index}`);
    }
}

const marksOf = (clients) => clients.map((ws) => ws.received.length);

const IN = "in00000000000001";
const OUT = "out0000000000001";

/** Waits for a status of node `id` on A, since `from` (an index in the statuses), whose text matches. */
function statusOf(statuses, id, pattern, from = 0, wait = ms(15000)) {
    return waitFor(`A's ${id} status ${pattern}`, () => statuses.slice(from).find((record) => record.id === id &&
        pattern.test(record.status.text || "")), wait);
}

describe("backplane: two Node-RED instances and Redis", function () {
    this.timeout(ms(120000));
    let redis;
    let a;
    let b;
    let statusesA;
    const clients = [];

    before(async function () {
        this.timeout(ms(600000)); // apt-get, the first time
        ensureRedis();
        redis = await new RedisServer().start();
        const settings = `pyWebsocketListenerBackplane: ${JSON.stringify(redis.url)},`;
        const env = { NODE_RED_PYTHON_VENV: VENV };
        [a, b] = await Promise.all([new NodeRedProcess({ settings, env }).start(),
            new NodeRedProcess({ settings, env }).start()]);
        statusesA = await a.watchStatuses();
        await Promise.all([a.deploy(chatFlow()), b.deploy(chatFlow())]);
        for (const red of [a, a, b, b]) clients.push(await chatClient(red));
        // Both instances subscribed: a broadcast from each reaches the other.
        await waitFor("the backplane to be up on both", async () => {
            await post(a, { text: "ping a" });
            await post(b, { text: "ping b" });
            await delay(ms(50));
            return clients.every((ws) => ws.received.includes("ping a") && ws.received.includes("ping b"));
        }, ms(20000));
    });

    after(async function () {
        for (const ws of clients) await closeClient(ws);
        for (const red of [a, b]) if (red) await red.cleanup();
        if (redis) await redis.kill();
    });

    it("names the instance in session ids", function () {
        const [a1, a2, b1] = clients;
        a1.sid.should.match(/^[0-9a-f]{8}\.\d+\.[0-9a-f]{16}$/);
        a1.sid.split(".")[0].should.equal(a2.sid.split(".")[0]);
        a1.sid.split(".")[0].should.not.equal(b1.sid.split(".")[0]);
    });

    it("shows on A's in and out nodes the clients of both instances: connected 2 (4 total)", async function () {
        await statusOf(statusesA, IN, /^connected 2 \(4 total\)$/);
        await statusOf(statusesA, OUT, /^connected 2 \(4 total\)$/);
    });

    it("delivers a broadcast made on A to every client of A and B, once each", async function () {
        const marks = marksOf(clients);
        await post(a, { text: "hello all" });
        await post(a, { text: "second" });
        await exactly(clients, ["hello all", "second"], marks, [a, b]);
    });

    it("delivers a reply made on B to the session held by A, and to no one else", async function () {
        const marks = marksOf(clients);
        await post(b, { text: "for a1 only", session: clients[0].sid });
        await post(b, { text: "for b2 only", session: clients[3].sid });
        await exactly(clients, [["for a1 only"], [], [], ["for b2 only"]], marks, [a, b]);
    });

    it("keeps serving each instance's clients while Redis is down, says so, and resumes with the loss counted", async function () {
        const [a1, a2, b1, b2] = clients;
        const mark = statusesA.length;
        await redis.kill();
        const down = await statusOf(statusesA, IN, /backplane down/, mark, ms(10000));
        down.status.text.should.equal("connected 2, backplane down"); // no total while it cannot be known
        const marks = marksOf(clients);
        await post(a, { text: "while down" });
        await exactly([a1, a2], ["while down"], [marks[0], marks[1]], [a]);

        await redis.start();
        const seen = statusesA.length;
        await statusOf(statusesA, IN, /^connected 2( \(4 total\))?$/, seen, ms(20000));
        // The total again, once the view of the other instance has filled anew.
        await statusOf(statusesA, IN, /^connected 2 \(4 total\)$/, seen, ms(20000));
        await waitFor("B's backplane too", async () => {
            const before = b1.received.length;
            await post(b, { text: "b back?" });
            await delay(ms(100));
            return a1.received.includes("b back?") && b1.received.length > before;
        }, ms(20000));
        const after = marksOf(clients);
        await post(a, { text: "after" });
        await exactly(clients, ["after"], after, [a, b]);
        // "while down" was never published: B's clients got none of it.
        for (const ws of [b1, b2]) ws.received.slice(marks[2]).should.not.containEql("while down");
        await waitFor("the warning with the count", () => /is back after [\d.]+ s; \d+ messages? could not be published/
            .test(a.output));
    });

    it("keeps serving and counting on A when B stops; a reply to a session that went with B is dropped", async function () {
        const [a1, a2, b1, b2] = clients;
        const closed = Promise.all([b1, b2].map((ws) => new Promise((resolve) => ws.once("close", resolve))));
        const seen = statusesA.length;
        await b.stop();
        await closed;
        await statusOf(statusesA, IN, /^connected 2 \(2 total\)$/, seen);
        const marks = marksOf([a1, a2]);
        await post(a, { text: "without b", session: b1.sid });
        await post(a, { text: "still here" });
        await exactly([a1, a2], ["still here"], marks, [a]);
        a.running().should.be.true();
    });
});
