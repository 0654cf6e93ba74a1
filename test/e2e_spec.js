/**
 * End to end, as a user gets it: the packed tarball installed into a fresh user directory with
 * the palette manager's npm flags, a real `node-red` process, the Python side set up at first
 * use, the echo example fetched through the editor's Import > Examples API, deployed, and an echo
 * through a real WebSocket client.
 */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const net = require("net");
const os = require("os");
const path = require("path");
const should = require("should");
const { waitFor, connectClient, closeClient, ms, TEST_WORKERS } = require("./lib/harness");

const ROOT = path.resolve(__dirname, "..");
const PACKAGE = "node-red-contrib-python-websocket";
const OUR_TYPES = ["py-websocket-listener", "py-websocket-client", "py-websocket in", "py-websocket out"];

function exec(command, args, options) {
    return new Promise((resolve, reject) => {
        childProcess.execFile(command, args, Object.assign({ maxBuffer: 16 * 1024 * 1024 }, options),
            (err, stdout, stderr) => (err ? reject(new Error(`${command} ${args.join(" ")}: ${stderr || err.message}`))
                : resolve(stdout)));
    });
}

function freePort() {
    return new Promise((resolve) => {
        const server = net.createServer().listen(0, "127.0.0.1", () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
    });
}

async function api(port, method, urlPath, body, headers = {}) {
    const response = await fetch(`http://127.0.0.1:${port}${urlPath}`, {
        method,
        headers: Object.assign({ "Content-Type": "application/json", Accept: "application/json" }, headers),
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
}

function childPids(pid) {
    try {
        return childProcess.execFileSync("pgrep", ["-P", String(pid)]).toString().trim().split(/\s+/).filter(Boolean);
    } catch (_) {
        return [];
    }
}

describe("palette install, end to end", function () {
    this.timeout(ms(300000));
    let workDir;
    let userDir;
    let port;
    let red;
    let output = "";

    before(async function () {
        workDir = fs.mkdtempSync(path.join(os.tmpdir(), "pyws-e2e-"));
        userDir = path.join(workDir, "userdir");
        fs.mkdirSync(userDir);
        const packed = JSON.parse(await exec("npm", ["pack", "--json", "--pack-destination", workDir], { cwd: ROOT }));
        const tarball = path.join(workDir, packed[0].filename);
        fs.writeFileSync(path.join(userDir, "package.json"),
            JSON.stringify({ name: "node-red-project", private: true, version: "0.0.1" }));
        await exec("npm", ["install", "--omit=dev", "--engine-strict", "--no-audit", "--no-fund",
            "--no-package-lock", tarball], { cwd: userDir });
        port = await freePort();
        fs.writeFileSync(path.join(userDir, "settings.js"),
            `module.exports = { uiHost: "127.0.0.1", uiPort: ${port}, flowFile: "flows.json", ` +
            "credentialSecret: false, logging: { console: { level: \"info\" } }" +
            (TEST_WORKERS === undefined ? "" : `, pyWebsocketWorkers: ${JSON.stringify(TEST_WORKERS)}`) + " };\n");
        const env = Object.assign({}, process.env);
        delete env.NODE_RED_PYTHON_VENV; // a real first use: the venv goes into the fresh user dir
        red = childProcess.spawn(process.execPath, [require("./lib/node-red-path").redJs, "-u", userDir,
            "-s", path.join(userDir, "settings.js")], { env, stdio: ["ignore", "pipe", "pipe"] });
        red.stdout.on("data", (chunk) => { output += chunk; });
        red.stderr.on("data", (chunk) => { output += chunk; });
        await waitFor("Node-RED to start", () => output.includes("Started flows"), ms(60000));
    });

    after(async function () {
        if (red && red.exitCode === null) {
            red.kill("SIGTERM");
            await new Promise((resolve) => red.once("exit", resolve));
        }
        if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
    });

    it("lists the four node types in the palette", async function () {
        const { status, body } = await api(port, "GET", "/nodes");
        status.should.equal(200);
        const ours = body.filter((set) => set.module === PACKAGE);
        ours.length.should.equal(1);
        ours[0].types.should.containDeep(OUR_TYPES);
        ours[0].enabled.should.be.true();
        should(ours[0].err).be.undefined();
    });

    it("offers the examples under the package in Import > Examples", async function () {
        const modules = await api(port, "GET", "/library/examples/flows");
        modules.body.should.containEql(PACKAGE);
        // examples/flows/ in the package: Import > Examples > <package> > flows > ...
        const { body } = await api(port, "GET", `/library/examples/flows/${PACKAGE}/flows`);
        body.map((entry) => entry.fn).should.eql(["01 - Echo test", "02 - Entire message", "03 - Reply vs broadcast",
            "04 - Chat with JWT", "05 - Connect to a URL given at runtime"]);
    });

    it("deploys the echo example, sets Python up at first use, and echoes through a real client", async function () {
        const example = await api(port, "GET",
            `/library/examples/flows/${PACKAGE}/flows/${encodeURIComponent("01 - Echo test")}`);
        example.status.should.equal(200);
        const tab = { id: "e2e0000000000001", type: "tab", label: "Echo" };
        const nodes = example.body.map((n) => (n.z === undefined ? n : Object.assign({}, n, { z: tab.id })));
        const deployed = await api(port, "POST", "/flows", [tab, ...nodes], { "Node-RED-Deployment-Type": "full" });
        [200, 204].should.containEql(deployed.status);
        await waitFor("the worker to be ready", () => /worker \d+ ready/.test(output), ms(240000));
        fs.existsSync(path.join(userDir, "python-websocket", "venv")).should.be.true();
        const ws = await waitFor("the listener", () => connectClient(`ws://127.0.0.1:${port}/echo`, { handshakeTimeout: ms(500) }).catch(() => null));
        ws.send("hello from e2e");
        await waitFor("the echo", () => ws.received.length === 1);
        ws.received[0].should.equal("hello from e2e");
        await closeClient(ws);
    });

    it("leaves no Python process behind when Node-RED stops", async function () {
        const workers = childPids(red.pid);
        workers.length.should.be.above(0);
        red.kill("SIGTERM");
        await new Promise((resolve) => red.once("exit", resolve));
        await waitFor("the worker to exit", () => workers.every((pid) => {
            try {
                process.kill(Number(pid), 0);
                return false;
            } catch (_) {
                return true;
            }
        }), ms(10000));
    });
});
