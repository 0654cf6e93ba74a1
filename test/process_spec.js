/**
 * Lifecycle with real `node-red` processes: no Python process outlives Node-RED whatever signal
 * stops it, redeploys of every kind leave no duplicate deliveries or leaked endpoints, and a
 * missing Python gives a red status and one log line while Node-RED keeps running.
 */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const should = require("should");
const { NodeRedProcess, alive, ROOT } = require("./lib/node-red-process");
const { waitFor, connectClient, closeClient, delay, ms } = require("./lib/harness");

const VENV = path.join(ROOT, ".venv");

function echoFlow(listenPath = "/echo", name = "") {
    return [
        { id: "tab0000000000001", type: "tab", label: "Echo" },
        { id: "listener00000001", type: "py-websocket-listener", path: listenPath, wholemsg: "false" },
        { id: "in00000000000001", type: "py-websocket in", z: "tab0000000000001", name, server: "listener00000001",
            client: "", x: 100, y: 100, wires: [["out0000000000001"]] },
        { id: "out0000000000001", type: "py-websocket out", z: "tab0000000000001", name: "", server: "listener00000001",
            client: "", x: 300, y: 100, wires: [] },
    ];
}

async function echoOnce(red, listenPath, text) {
    // POST /flows answers before the new nodes run; until then the path is nobody's and an
    // upgrade to it stays unanswered (as with the core nodes), so retry with a short timeout.
    const ws = await waitFor("the listener", () =>
        connectClient(`ws://127.0.0.1:${red.port}${listenPath}`, { handshakeTimeout: 500 }).catch(() => null));
    ws.send(text);
    await waitFor("the echo", () => ws.received.length >= 1);
    await delay(200);
    return ws;
}

describe("Node-RED process lifecycle", function () {
    this.timeout(120000);

    for (const signal of ["SIGTERM", "SIGINT", "SIGKILL"]) {
        it(`leaves no Python worker behind when Node-RED gets ${signal}`, async function () {
            const red = await new NodeRedProcess({ env: { NODE_RED_PYTHON_VENV: VENV } }).start();
            try {
                await red.deploy(echoFlow());
                const ws = await echoOnce(red, "/echo", "before");
                const workers = red.workerPids();
                workers.length.should.equal(1);
                await red.stop(signal);
                await waitFor("the worker to exit", () => workers.every((pid) => !alive(pid)), ms(10000));
                await new Promise((resolve) => (ws.readyState === 3 ? resolve() : ws.once("close", resolve)));
            } finally {
                await red.stop("SIGKILL");
                red.cleanup();
            }
        });
    }

    it("keeps sessions on a modified-nodes deploy that does not touch them, and moves the path on a flows deploy", async function () {
        const red = await new NodeRedProcess({ env: { NODE_RED_PYTHON_VENV: VENV } }).start();
        try {
            const flow = echoFlow();
            flow.push({ id: "other00000000001", type: "inject", z: "tab0000000000001", name: "a", props: [],
                repeat: "", once: false, x: 100, y: 200, wires: [[]] });
            await red.deploy(flow);
            const ws = await echoOnce(red, "/echo", "one");
            ws.received.should.eql(["one"]);
            const worker = red.workerPids()[0];

            flow[4] = Object.assign({}, flow[4], { name: "renamed" });
            await red.deploy(flow, "nodes");
            await delay(500);
            ws.readyState.should.equal(1); // the session survived
            ws.send("two");
            await waitFor("the second echo", () => ws.received.length === 2);
            await delay(300);
            ws.received.should.eql(["one", "two"]); // exactly once: no duplicate endpoint

            const moved = echoFlow("/moved");
            await red.deploy(moved, "flows");
            await waitFor("the old session to close", () => ws.readyState === 3);
            const err = await connectClient(`ws://127.0.0.1:${red.port}/echo`).then(() => null, (e) => e);
            should.exist(err); // the old path is gone
            const again = await echoOnce(red, "/moved", "three");
            again.received.should.eql(["three"]);
            red.workerPids().should.eql([worker]); // one worker throughout
            await closeClient(again);

            await red.deploy(echoFlow("/moved", "full again"), "full");
            const last = await echoOnce(red, "/moved", "four");
            last.received.should.eql(["four"]);
            await closeClient(last);
        } finally {
            await red.stop("SIGKILL");
            red.cleanup();
        }
    });

    it("shows a red status and logs one line when Python is missing, and Node-RED keeps serving", async function () {
        const red = await new NodeRedProcess({
            settings: "pyWebsocketListenerPython: \"/nonexistent/python3\"",
            env: { NODE_RED_PYTHON_VENV: undefined },
        }).start();
        try {
            const statuses = await red.watchStatuses();
            await red.deploy(echoFlow());
            await waitFor("the python-missing status", () => statuses.some((s) =>
                s.id === "in00000000000001" && s.status.text === "websocket.status.python-missing"));
            statuses.find((s) => s.status.text === "websocket.status.python-missing").status.fill.should.equal("red");
            await delay(1500);
            const lines = red.output.split("\n").filter((line) => line.includes("/nonexistent/python3"));
            lines.length.should.equal(1, red.output);
            lines[0].should.match(/\[error\].*not installed or not on PATH/);
            (await red.api("GET", "/flows")).status.should.equal(200);
            red.workerPids().should.eql([]);
        } finally {
            await red.stop("SIGKILL");
            red.cleanup();
        }
    });

    it("runs the worker on asyncio, with one info line, where uvloop has no wheel; statuses read 'connected 1'", async function () {
        // A package index that has the required wheels and nothing else: what a system without
        // a uvloop wheel (Windows, 32-bit ARM) sees.
        const wheels = fs.mkdtempSync(path.join(os.tmpdir(), "pyws-wheels-"));
        const downloaded = childProcess.spawnSync(path.join(VENV, "bin", "python"), ["-m", "pip", "download",
            "--disable-pip-version-check", "-q", "-d", wheels, "-r", path.join(ROOT, "python", "requirements.txt")],
        { encoding: "utf8", timeout: ms(120000) });
        should(downloaded.status).equal(0, downloaded.stderr);
        const red = await new NodeRedProcess({
            env: { NODE_RED_PYTHON_VENV: undefined, PIP_NO_INDEX: "1", PIP_FIND_LINKS: wheels },
        }).start();
        try {
            const statuses = await red.watchStatuses();
            await red.deploy(echoFlow());
            (await echoOnce(red, "/echo", "on asyncio")).close();
            // The runtime translates the count into the status text (the test helper would not).
            await waitFor("the connected status", () => statuses.some((s) =>
                s.id === "in00000000000001" && s.status.text === "connected 1"));
            const skipped = red.output.split("\n").filter((line) => line.includes("uvloop not installed"));
            skipped.length.should.equal(1, red.output);
            skipped[0].should.match(/\[info\].*the worker runs on asyncio/);
            red.output.should.match(/\[info\] \[python-websocket\] worker \d+ ready \(.*, asyncio\)/);
            red.output.split("\n").filter((line) => /\[(warn|error)\].*python-websocket/.test(line)).should.eql([]);
        } finally {
            await red.stop("SIGKILL");
            red.cleanup();
            fs.rmSync(wheels, { recursive: true, force: true });
        }
    });

    it("shows a red status and one log line with the fix when the packages cannot be installed (offline)", async function () {
        const red = await new NodeRedProcess({
            env: { NODE_RED_PYTHON_VENV: undefined, PIP_INDEX_URL: "http://127.0.0.1:9/simple", PIP_RETRIES: "0",
                PIP_TIMEOUT: "2", PIP_NO_CACHE_DIR: "1", PIP_FIND_LINKS: undefined },
        }).start();
        try {
            const statuses = await red.watchStatuses();
            await red.deploy(echoFlow());
            await waitFor("the installing status", () => statuses.some((s) =>
                s.status.text === "websocket.status.installing"), ms(30000));
            await waitFor("the install-failed status", () => statuses.some((s) =>
                s.id === "in00000000000001" && s.status.text === "websocket.status.install-failed"), ms(90000));
            await delay(1500);
            const lines = red.output.split("\n").filter((line) => line.includes("pip could not install"));
            lines.length.should.equal(1, red.output);
            lines[0].should.match(/Fix: allow access to PyPI/);
            (await red.api("GET", "/flows")).status.should.equal(200);
        } finally {
            await red.stop("SIGKILL");
            red.cleanup();
        }
    });
});
