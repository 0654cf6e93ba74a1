/**
 * Bad input on a listener path, from real sockets: each gets a clear outcome and leaves every
 * other session untouched.
 */
"use strict";

const net = require("net");
const crypto = require("crypto");
const should = require("should");
const helper = require("node-red-node-test-helper");
const websocketNodes = require("../nodes/websocket.js");
const { waitFor, connectClient, closeClient, recordMessages, wsUrl, ms, withHelper } = require("./lib/harness");

helper.init(require("./lib/node-red-path").redMain);

function echoFlow(wholemsg = false) {
    return [
        { id: "listener", type: "py-websocket-listener", path: "/bad", wholemsg: wholemsg ? "true" : "false" },
        { id: "in", type: "py-websocket in", server: "listener", client: "", wires: [["out", "seen"]] },
        { id: "seen", type: "helper" },
        { id: "out", type: "py-websocket out", server: "listener", client: "" },
    ];
}

/** Sends raw bytes to the helper's port and returns everything read back until the server closes. */
function rawExchange(bytes, { timeout = ms(3000) } = {}) {
    const { port } = new URL(helper.url());
    return new Promise((resolve) => {
        const chunks = [];
        const socket = net.connect(port, "127.0.0.1", () => socket.write(bytes));
        const done = () => resolve(Buffer.concat(chunks).toString("latin1"));
        socket.on("data", (chunk) => chunks.push(chunk));
        const timer = setTimeout(() => socket.destroy(), timeout);
        socket.on("close", () => {
            clearTimeout(timer);
            done();
        });
        socket.on("error", () => {});
    });
}

/** A masked client frame built by hand (opcode, payload, fin). */
function clientFrame(opcode, payload, fin = true) {
    const mask = crypto.randomBytes(4);
    const length = payload.length;
    const header = length < 126 ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | length])
        : Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126, length >> 8, length & 0xff]);
    const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
    return Buffer.concat([header, mask, masked]);
}

/** A raw WebSocket connection: handshake done by hand, then frames written by the test. */
function rawWebSocket() {
    const { port } = new URL(helper.url());
    return new Promise((resolve, reject) => {
        const socket = net.connect(port, "127.0.0.1", () => {
            socket.write("GET /bad HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        });
        let buffered = Buffer.alloc(0);
        socket.received = () => buffered;
        socket.on("data", (chunk) => {
            buffered = Buffer.concat([buffered, chunk]);
            if (buffered.includes("\r\n\r\n") && !socket.upgraded) {
                socket.upgraded = true;
                const end = buffered.indexOf("\r\n\r\n") + 4;
                socket.status = buffered.subarray(0, end).toString().split(" ")[1];
                buffered = buffered.subarray(end);
                resolve(socket);
            }
        });
        socket.on("error", reject);
    });
}

/** The close code in the first close frame the server sent, if any. */
function serverCloseCode(bytes) {
    let offset = 0;
    while (offset + 2 <= bytes.length) {
        const opcode = bytes[offset] & 0x0f;
        let length = bytes[offset + 1] & 0x7f;
        let start = offset + 2;
        if (length === 126) {
            length = bytes.readUInt16BE(offset + 2);
            start += 2;
        } else if (length === 127) {
            length = Number(bytes.readBigUInt64BE(offset + 2));
            start += 8;
        }
        if (opcode === 0x8) return bytes.readUInt16BE(start);
        offset = start + length;
    }
    return null;
}

describe("bad input on a listener path", function () {
    withHelper(helper, { pyWebsocketListenerMaxMessageSize: 64 * 1024 });

    it("answers an upgrade without a WebSocket key with HTTP 400, not a hang", async function () {
        await helper.load(websocketNodes, echoFlow());
        const reply = await rawExchange("GET /bad HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        reply.should.startWith("HTTP/1.1 400");
    });

    it("answers a garbage request line with an HTTP error", async function () {
        await helper.load(websocketNodes, echoFlow());
        const reply = await rawExchange("\x00\x01garbage\r\n\r\n");
        reply.should.match(/^HTTP\/1\.1 400/);
    });

    it("closes a session with 1007 on invalid UTF-8, and another session keeps working", async function () {
        await helper.load(websocketNodes, echoFlow());
        const good = await connectClient(wsUrl(helper, "/bad"));
        const bad = await rawWebSocket();
        bad.status.should.equal("101");
        bad.write(clientFrame(0x1, Buffer.from([0xc3, 0x28])));
        await waitFor("the close frame", () => serverCloseCode(bad.received()) !== null);
        serverCloseCode(bad.received()).should.equal(1007);
        bad.destroy();
        good.send("still fine");
        await waitFor("the echo", () => good.received.length === 1);
        await closeClient(good);
    });

    it("closes a session with 1009 past the configured maximum message size", async function () {
        await helper.load(websocketNodes, echoFlow());
        const seen = recordMessages(helper.getNode("seen"));
        const ws = await connectClient(wsUrl(helper, "/bad"));
        const closed = new Promise((resolve) => ws.once("close", (code) => resolve(code)));
        ws.send(Buffer.alloc(64 * 1024 + 1));
        (await closed).should.equal(1009);
        seen.length.should.equal(0);
    });

    it("reassembles a fragmented message into one msg", async function () {
        await helper.load(websocketNodes, echoFlow());
        const seen = recordMessages(helper.getNode("seen"));
        const raw = await rawWebSocket();
        raw.write(clientFrame(0x1, Buffer.from("frag"), false));
        raw.write(clientFrame(0x0, Buffer.from("men"), false));
        raw.write(clientFrame(0x0, Buffer.from("ted"), true));
        await waitFor("the message", () => seen.length === 1);
        seen[0].payload.should.equal("fragmented");
        raw.destroy();
    });

    it("answers a flood of 10,000 pings while another session keeps echoing", async function () {
        await helper.load(websocketNodes, echoFlow());
        const good = await connectClient(wsUrl(helper, "/bad"));
        const raw = await rawWebSocket();
        const ping = clientFrame(0x9, Buffer.from("p"));
        raw.write(Buffer.concat(Array.from({ length: 10000 }, () => ping)));
        good.send("during the flood");
        await waitFor("the echo", () => good.received.length === 1);
        await waitFor("10,000 pongs", () => raw.received().length >= 10000 * 3);
        raw.received()[0].should.equal(0x8a);
        raw.destroy();
        await closeClient(good);
    });

    it("turns malformed JSON, null, arrays and huge numbers into msg.payload in entire-message mode", async function () {
        await helper.load(websocketNodes, echoFlow(true));
        const seen = recordMessages(helper.getNode("seen"));
        const ws = await connectClient(wsUrl(helper, "/bad"));
        for (const text of ["{not json", "null", "[1,2,3]", "123456789012345678901234567890", "1e400", '"str"']) {
            ws.send(text);
        }
        await waitFor("six messages", () => seen.length === 6);
        seen[0].payload.should.equal("{not json");
        should(seen[1].payload).be.null();
        seen[2].payload.should.eql([1, 2, 3]);
        seen[3].payload.should.equal(1.2345678901234568e+29);
        seen[4].payload.should.equal(Infinity);
        seen[5].payload.should.equal("str");
        seen.forEach((msg) => msg._session.type.should.equal("websocket"));
        await closeClient(ws);
    });

    it("keeps serving when the out node gets a msg it cannot stringify, and reports it to Catch", async function () {
        await helper.load(websocketNodes, echoFlow(true));
        const ws = await connectClient(wsUrl(helper, "/bad"));
        await waitFor("the session", () => helper.getNode("listener").role.sessions.size === 1);
        const circular = { payload: 1 };
        circular.self = circular;
        const out = helper.getNode("out");
        const errors = [];
        out.on("call:error", (call) => errors.push(call.args[0]));
        out.receive(circular);
        await waitFor("the error", () => errors.length === 1);
        String(errors[0]).should.match(/circular/i);
        ws.send(JSON.stringify({ payload: "after" }));
        await waitFor("the echo", () => ws.received.length === 1);
        await closeClient(ws);
    });
});
