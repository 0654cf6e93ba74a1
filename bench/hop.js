#!/usr/bin/env node
/**
 * The latency floor of one more process on the path: an idle round trip between this Node
 * process and a child echoing over a socketpair, with nothing else done per message.
 *
 *   node bench/hop.js [--count 20000]
 *
 * Measures Node -> Node and Node -> Python (the worker's interpreter, on uvloop when installed)
 * and prints p50 / p99 in µs. Every message of a listener echo crosses two such hops more than
 * with the core nodes (client -> worker -> Node-RED -> worker -> client), so about one of these
 * round trips is the least this design adds to core's latency, whatever the code does.
 */
"use strict";

const childProcess = require("child_process");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const PYTHON = path.join(process.env.NODE_RED_PYTHON_VENV || path.join(ROOT, ".venv"), "bin", "python");
const PAYLOAD = Buffer.alloc(64, 120);

const NODE_ECHO = `
const net = require("net");
const s = new net.Socket({ fd: 3, readable: true, writable: true });
s.on("data", (d) => s.write(d));
`;
const PYTHON_ECHO = `
import asyncio, socket
try:
    import uvloop
    loop = uvloop.new_event_loop()
except ImportError:
    loop = asyncio.new_event_loop()
class Echo(asyncio.Protocol):
    def connection_made(self, transport): self.transport = transport
    def data_received(self, data): self.transport.write(data)
async def main():
    sock = socket.socket(fileno=3)
    sock.setblocking(False)
    await loop.connect_accepted_socket(Echo, sock)
    await asyncio.Future()
asyncio.set_event_loop(loop)
loop.run_until_complete(main())
`;

function percentile(sorted, p) {
    return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function roundTrips(command, args, count) {
    return new Promise((resolve, reject) => {
        const child = childProcess.spawn(command, args, { stdio: ["ignore", "inherit", "inherit", "pipe"] });
        const channel = child.stdio[3];
        const samples = [];
        let sentAt = 0n;
        let warm = Math.min(1000, count);
        const send = () => {
            sentAt = process.hrtime.bigint();
            channel.write(PAYLOAD);
        };
        channel.on("data", () => {
            const micros = Number(process.hrtime.bigint() - sentAt) / 1000;
            if (warm > 0) warm--;
            else samples.push(micros);
            if (samples.length < count) {
                send();
                return;
            }
            child.kill();
            samples.sort((a, b) => a - b);
            resolve({ p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) });
        });
        child.on("error", reject);
        setTimeout(send, 300);
    });
}

async function main() {
    const at = process.argv.indexOf("--count");
    const count = at > 0 ? Number(process.argv[at + 1]) : 20000;
    const cases = [["Node -> Node", process.execPath, ["-e", NODE_ECHO]],
        ["Node -> Python", PYTHON, ["-c", PYTHON_ECHO]]];
    for (const [label, command, args] of cases) {
        const { p50, p99 } = await roundTrips(command, args, count);
        console.log(`${label.padEnd(15)} idle round trip over a socketpair: p50 ${p50.toFixed(1)} µs, p99 ${p99.toFixed(1)} µs`);
    }
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
