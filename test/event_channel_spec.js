/**
 * The event channel's sending side (nodes/lib/event-channel.js) over a real local socket whose
 * reader stands for a worker: it waits for the socket to drain, bounds what waits, calls back
 * when there is room again, loses nothing it accepted, and reports a reader that takes nothing.
 */
"use strict";

const fs = require("fs");
const net = require("net");
const os = require("os");
const path = require("path");
require("should");
const { EventChannel } = require("../nodes/lib/event-channel");
const { FrameDecoder } = require("../nodes/lib/protocol");
const { waitFor, ms } = require("./lib/harness");

const MiB = 1024 * 1024;

/** A connected pair of local sockets: `writer` for the channel, `reader` paused (a stuck worker). */
async function socketPair() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyws-channel-"));
    const file = path.join(dir, "sock");
    let reader;
    const server = net.createServer((socket) => {
        reader = socket;
        socket.pause();
    });
    await new Promise((resolve) => server.listen(file, resolve));
    const writer = net.connect(file);
    await new Promise((resolve) => writer.once("connect", resolve));
    await waitFor("the reader", () => reader);
    return {
        writer, reader,
        close() {
            writer.destroy();
            reader.destroy();
            server.close();
            fs.rmSync(dir, { recursive: true, force: true });
        },
    };
}

/** Decodes what the reader gets, once it reads. */
function collect(reader) {
    const decoder = new FrameDecoder();
    const frames = [];
    reader.on("data", (chunk) => frames.push(...decoder.push(chunk)));
    return frames;
}

describe("event channel, sending to a worker that does not read", function () {
    let pair;
    let channel;
    afterEach(() => {
        if (channel) channel.close();
        if (pair) pair.close();
    });

    it("refuses data past the bound, calls back once there is room, and loses nothing it accepted", async function () {
        pair = await socketPair();
        const stuck = [];
        channel = new EventChannel(pair.writer, { onFrames() {}, onBroken() {}, onStuck: () => stuck.push(true) },
            { maxWaitingBytes: 4 * MiB, stallTimeoutMs: ms(60000) });
        const payload = Buffer.alloc(MiB, 3);
        let accepted = 0;
        await waitFor("a refusal", async () => {
            if (!channel.trySend(["send", 1, null, payload])) return true;
            accepted++;
            await new Promise((resolve) => setImmediate(resolve)); // let it write
            return false;
        });
        channel.congested.should.be.true();
        channel.send(["send", 1, "s", "a command still goes"]); // commands are never refused
        let writable = false;
        channel.onceWritable(() => { writable = true; });
        writable.should.be.false();
        const frames = collect(pair.reader);
        pair.reader.resume();
        await waitFor("room again", () => writable);
        await waitFor("every accepted frame at the reader", () => frames.length === accepted + 1);
        frames.slice(0, accepted).every((frame) => frame[3].equals(payload)).should.be.true();
        frames[accepted].should.eql(["send", 1, "s", "a command still goes"]);
        stuck.should.eql([]);
    });

    it("calls back once one write larger than the bound has drained", async function () {
        pair = await socketPair();
        channel = new EventChannel(pair.writer, { onFrames() {}, onBroken() {}, onStuck() {} },
            { maxWaitingBytes: MiB, stallTimeoutMs: ms(60000) });
        channel.trySend(["send", 1, null, Buffer.alloc(8 * MiB)]).should.be.true(); // one message of any size goes
        await waitFor("the write", () => channel.queue.length === 0);
        channel.congested.should.be.true();
        channel.trySend(["send", 1, null, "more"]).should.be.false();
        let writable = false;
        channel.onceWritable(() => { writable = true; });
        const frames = collect(pair.reader);
        pair.reader.resume();
        await waitFor("room again", () => writable);
        channel.trySend(["send", 1, null, "more"]).should.be.true();
        await waitFor("both frames at the reader", () => frames.length === 2);
    });

    it("reports a reader that takes nothing while data waits, and not one that keeps taking", async function () {
        pair = await socketPair();
        let stuckAt = null;
        channel = new EventChannel(pair.writer, { onFrames() {}, onBroken() {}, onStuck: () => { stuckAt = Date.now(); } },
            { maxWaitingBytes: 64 * MiB, stallTimeoutMs: ms(300) });
        // A slow reader first: at most 64 KiB every 50 ms, so 2 MiB take over a second, several
        // stall periods, each of which sees progress.
        const decoder = new FrameDecoder();
        const frames = [];
        const slow = setInterval(() => {
            const chunk = pair.reader.read();
            if (chunk) frames.push(...decoder.push(chunk));
        }, ms(50));
        const started = Date.now();
        try {
            for (let i = 0; i < 8; i++) channel.send(["send", 1, null, Buffer.alloc(256 * 1024, i)]);
            await waitFor("the slow reader to take it all", () => frames.length === 8, ms(20000));
        } finally {
            clearInterval(slow);
        }
        (Date.now() - started).should.be.above(ms(300) * 2);
        (stuckAt === null).should.be.true();
        // Then one that takes nothing.
        pair.reader.pause();
        const sentAt = Date.now();
        for (let i = 0; i < 4; i++) channel.send(["send", 1, null, Buffer.alloc(MiB, i)]);
        await waitFor("the report", () => stuckAt !== null, ms(5000));
        (stuckAt - sentAt).should.be.aboveOrEqual(ms(300) - 20);
    });
});
