/**
 * Lifecycle with real `node-red` processes: no Python process outlives Node-RED whatever signal
 * stops it, a stop by the service manager (SIGTERM to the whole process group) is clean, redeploys
 * of every kind leave no duplicate deliveries or leaked endpoints, and a missing Python gives a
 * red status and one log line per deploy while Node-RED keeps running.
 */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const should = require("should");
const { NodeRedProcess, alive, ROOT } = require("./lib/node-red-process");
const { waitFor, connectClient, closeClient, ms } = require("./lib/harness");

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

/**
 * Sends text and then a probe on ws, and checks that exactly the text and the probe came back:
 * a duplicate of the text (two endpoints on one path) would come before the probe.
 */
async function exchange(ws, text) {
    const start = ws.received.length;
    ws.send(text);
    ws.send(`${text}:probe`);
    await waitFor(`the echo of ${text}`, () => ws.received.includes(`${text}:probe`));
    ws.received.slice(start).should.eql([text, `${text}:probe`]);
}

async function echoOnce(red, listenPath, text) {
    // POST /flows answers before the new nodes run; until then the path is nobody's and an
    // upgrade to it stays unanswered (as with the core nodes), so retry with a short timeout.
    const ws = await waitFor("the listener", () =>
        connectClient(`ws://127.0.0.1:${red.port}${listenPath}`, { handshakeTimeout: ms(500) }).catch(() => null));
    await exchange(ws, text);
    return ws;
}

function linesWith(red, text) {
    return red.output.split("\n").filter((line) => line.includes(text));
}

describe("Node-RED process lifecycle", function () {
    this.timeout(ms(120000));

    for (const signal of ["SIGTERM", "SIGINT", "SIGKILL"]) {
        it(`leaves no Python worker behind when Node-RED gets ${signal}`, async function () {
            const red = await new NodeRedProcess({ env: { NODE_RED_PYTHON_VENV: VENV } }).start();
            try {
                await red.deploy(echoFlow());
                const ws = await echoOnce(red, "/echo", "before");
                const workers = await red.allWorkers();
                await red.stop(signal);
                await waitFor("the worker to exit", () => workers.every((pid) => !alive(pid)), ms(10000));
                await new Promise((resolve) => (ws.readyState === 3 ? resolve() : ws.once("close", resolve)));
            } finally {
                await red.cleanup();
            }
        });
    }

    it("stops cleanly when its whole process group gets SIGTERM, as systemd stops a service", async function () {
        // The worker gets the SIGTERM too and exits 0 at about the time Node-RED starts stopping:
        // that exit is not a crash (no error, no restart), three times over.
        for (let round = 0; round < 3; round++) {
            const red = await new NodeRedProcess({ env: { NODE_RED_PYTHON_VENV: VENV } }).start();
            try {
                await red.deploy(echoFlow());
                const ws = await echoOnce(red, "/echo", `round ${round}`);
                const workers = await red.allWorkers();
                await red.stopGroup("SIGTERM");
                (await red.exited).should.eql({ code: 0, signal: null });
                await waitFor("the worker to exit", () => workers.every((pid) => !alive(pid)), ms(10000));
                await new Promise((resolve) => (ws.readyState === 3 ? resolve() : ws.once("close", resolve)));
                red.output.should.match(/Stopped flows/);
                // No error at all, and no warning of the bridge's (the worker's own stderr lines
                // are its business: "[python-websocket worker]").
                red.output.split("\n").filter((line) => /\[error\]|\[warn\] \[python-websocket\]|restarting in/.test(line))
                    .should.eql([], red.output);
            } finally {
                await red.cleanup();
            }
        }
    });

    it("keeps sessions on a modified-nodes deploy that does not touch them, and moves the path on a flows deploy", async function () {
        const red = await new NodeRedProcess({ env: { NODE_RED_PYTHON_VENV: VENV } }).start();
        try {
            const flow = echoFlow();
            flow.push({ id: "other00000000001", type: "inject", z: "tab0000000000001", name: "a", props: [],
                repeat: "", once: false, x: 100, y: 200, wires: [[]] });
            await red.deploy(flow);
            const ws = await echoOnce(red, "/echo", "one");
            const workers = await red.allWorkers();

            flow[4] = Object.assign({}, flow[4], { name: "renamed" });
            await red.deploy(flow, "nodes");
            await waitFor("the modified nodes to start", () => red.output.includes("Started modified nodes"));
            ws.readyState.should.equal(1); // the session survived
            await exchange(ws, "two"); // exactly once: no duplicate endpoint

            const moved = echoFlow("/moved");
            await red.deploy(moved, "flows");
            await waitFor("the old session to close", () => ws.readyState === 3);
            const err = await connectClient(`ws://127.0.0.1:${red.port}/echo`).then(() => null, (e) => e);
            should.exist(err); // the old path is gone
            const again = await echoOnce(red, "/moved", "three");
            red.workerPids().sort().should.eql(workers.sort()); // the same workers throughout
            await closeClient(again);

            await red.deploy(echoFlow("/moved", "full again"), "full");
            await closeClient(await echoOnce(red, "/moved", "four"));
        } finally {
            await red.cleanup();
        }
    });

    it("shows a red status and logs one line per deploy when Python is missing, and Node-RED keeps serving", async function () {
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
            await waitFor("the error line", () => linesWith(red, "/nonexistent/python3").length === 1);
            // Nothing retries by itself; the next deploy tries once more (a second line), and
            // nothing more came in between.
            await red.deploy(echoFlow("/echo", "again"));
            await waitFor("the next deploy's line", () => linesWith(red, "/nonexistent/python3").length >= 2);
            const lines = linesWith(red, "/nonexistent/python3");
            lines.length.should.equal(2, red.output);
            lines[0].should.match(/\[error\].*not installed or not on PATH\. Fix: install Python 3\.9\+/);
            (await red.api("GET", "/flows")).status.should.equal(200);
            red.workerPids().should.eql([]);
        } finally {
            await red.cleanup();
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
            await waitFor("the worker set up from the local wheels", () => /worker \d+ ready/.test(red.output), ms(120000));
            (await echoOnce(red, "/echo", "on asyncio")).close();
            // The runtime translates the count into the status text (the test helper would not).
            await waitFor("the connected status", () => statuses.some((s) =>
                s.id === "in00000000000001" && s.status.text === "connected 1"));
            const skipped = linesWith(red, "uvloop not installed");
            skipped.length.should.equal(1, red.output);
            skipped[0].should.match(/\[info\].*the worker runs on asyncio/);
            red.output.should.match(/\[info\] \[python-websocket\] worker \d+ ready \(.*, asyncio\)/);
            red.output.split("\n").filter((line) => /\[(warn|error)\].*python-websocket/.test(line)).should.eql([]);
        } finally {
            await red.cleanup();
            fs.rmSync(wheels, { recursive: true, force: true });
        }
    });

    it("shows a red status and one log line per deploy with the fix when the packages cannot be installed (offline)", async function () {
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
            await waitFor("the error line", () => linesWith(red, "pip could not install").length === 1);
            await red.deploy(echoFlow("/echo", "again"));
            await waitFor("the next deploy's line", () => linesWith(red, "pip could not install").length >= 2, ms(90000));
            const lines = linesWith(red, "pip could not install");
            lines.length.should.equal(2, red.output);
            lines[0].should.match(/\[error\].*Fix: allow access to PyPI/);
            (await red.api("GET", "/flows")).status.should.equal(200);
        } finally {
            await red.cleanup();
        }
    });
});
