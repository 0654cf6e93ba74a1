/**
 * A real `node-red` process for end-to-end tests: a fresh user directory in /tmp with this
 * checkout linked into its node_modules (or a package installed by the caller), an ephemeral
 * port on 127.0.0.1, the admin API and the editor's comms socket. It runs in a process group of
 * its own, as under a service manager: stopGroup() signals every process of it at once, and
 * cleanup() leaves nothing of it running (a pip still installing, a worker).
 */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const net = require("net");
const os = require("os");
const path = require("path");
const WebSocket = require("ws");
const { waitFor, ms, TEST_WORKERS, TEST_WORKER_COUNT } = require("./harness");
const { adminRequest } = require("./admin-api");

const ROOT = path.resolve(__dirname, "..", "..");

function freePort() {
    return new Promise((resolve) => {
        const server = net.createServer().listen(0, "127.0.0.1", () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
    });
}

/** A new temp user directory with this checkout linked into node_modules, as the palette would install it. */
function linkedUserDir(prefix = "pyws-nr-") {
    const userDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    const link = path.join(userDir, "node_modules", "node-red-contrib-python-websocket");
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(ROOT, link, "dir");
    return userDir;
}

class NodeRedProcess {
    /**
     * options: userDir (default: a new temp dir with this checkout linked), settings (object
     * literal source), env, nodeArgs (node's own flags, e.g. --expose-gc)
     */
    constructor(options = {}) {
        this.options = options;
        this.output = "";
        this.child = null;
    }

    async start() {
        this.port = await freePort();
        this.userDir = this.options.userDir || linkedUserDir();
        this.ownsUserDir = !this.options.userDir;
        let extra = this.options.settings || "";
        if (TEST_WORKERS !== undefined && !/pyWebsocketWorkers/.test(extra)) {
            extra = `pyWebsocketWorkers: ${JSON.stringify(TEST_WORKERS)}, ${extra}`;
        }
        fs.writeFileSync(path.join(this.userDir, "settings.js"),
            `module.exports = { uiHost: "127.0.0.1", uiPort: ${this.port}, flowFile: "flows.json", ` +
            `credentialSecret: false, logging: { console: { level: "info" } }, ${extra} };\n`);
        const env = Object.assign({}, process.env, this.options.env || {});
        for (const [name, value] of Object.entries(env)) if (value === undefined) delete env[name];
        this.child = childProcess.spawn(process.execPath, [...(this.options.nodeArgs || []),
            require("./node-red-path").redJs, "-u", this.userDir,
            "-s", path.join(this.userDir, "settings.js")], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
        this.exited = new Promise((resolve) => this.child.once("exit", (code, signal) => resolve({ code, signal })));
        this.child.stdout.on("data", (chunk) => { this.output += chunk; });
        this.child.stderr.on("data", (chunk) => { this.output += chunk; });
        await waitFor("Node-RED to start", () => this.output.includes("Started flows") || this.child.exitCode !== null,
            ms(60000));
        if (this.child.exitCode !== null) throw new Error(`node-red exited:\n${this.output}`);
        return this;
    }

    api(method, urlPath, body, headers = {}) {
        return adminRequest(this.port, method, urlPath, body, headers);
    }

    /** Deploys nodes (tab added) with the given deployment type; returns the nodes deployed. */
    async deploy(nodes, type = "full") {
        const result = await this.api("POST", "/flows", nodes, { "Node-RED-Deployment-Type": type });
        if (![200, 204].includes(result.status)) throw new Error(`deploy failed: ${JSON.stringify(result.body)}`);
        return nodes;
    }

    /** Statuses published to the editor, as {id, status} records, from the comms socket. */
    async watchStatuses() {
        const statuses = [];
        const comms = new WebSocket(`ws://127.0.0.1:${this.port}/comms`);
        await new Promise((resolve, reject) => {
            comms.once("open", resolve);
            comms.once("error", reject);
        });
        comms.send(JSON.stringify({ subscribe: "status/#" }));
        comms.on("message", (data) => {
            for (const event of [].concat(JSON.parse(data.toString()))) {
                if (event.topic && event.topic.startsWith("status/")) {
                    statuses.push({ id: event.topic.slice(7), status: event.data });
                }
            }
        });
        this.comms = comms;
        return statuses;
    }

    /** The worker processes (not the short-lived Python probes and package checks run before a start). */
    workerPids() {
        try {
            return childProcess.execFileSync("pgrep", ["-P", String(this.child.pid), "-f", "websocket_worker --events-fd"])
                .toString().trim()
                .split(/\s+/).filter(Boolean).map(Number);
        } catch (_) {
            return [];
        }
    }

    /** The worker processes once all of them run (pyWebsocketWorkers of the tests: one by default). */
    async allWorkers() {
        return waitFor(`${TEST_WORKER_COUNT} worker processes`, () => {
            const pids = this.workerPids();
            return pids.length === TEST_WORKER_COUNT ? pids : null;
        }, ms(15000));
    }

    running() {
        return Boolean(this.child) && this.child.exitCode === null && this.child.signalCode === null;
    }

    /** Sends `signal` to Node-RED alone and waits for it to exit. */
    async stop(signal = "SIGTERM") {
        if (this.comms) this.comms.terminate();
        if (this.running()) {
            this.child.kill(signal);
            await this.exited;
        }
    }

    /** Sends `signal` to every process of Node-RED's group at once (systemd's way) and waits for Node-RED to exit. */
    async stopGroup(signal = "SIGTERM") {
        if (this.comms) this.comms.terminate();
        if (this.running()) {
            process.kill(-this.child.pid, signal);
            await this.exited;
        }
    }

    /** Kills whatever is left of the process group, then removes the user directory it made. */
    async cleanup() {
        if (this.comms) this.comms.terminate();
        if (this.child) {
            const group = -this.child.pid;
            try { process.kill(group, "SIGKILL"); } catch (_) { /* the group is gone */ }
            await this.exited;
            await waitFor("the process group to be gone", () => !alive(group), ms(10000));
        }
        if (this.ownsUserDir) fs.rmSync(this.userDir, { recursive: true, force: true });
    }
}

function alive(pid) {
    try {
        process.kill(pid, 0);
        return true;
    } catch (_) {
        return false;
    }
}

module.exports = { NodeRedProcess, freePort, linkedUserDir, alive, ROOT };
