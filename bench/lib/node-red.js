/**
 * One real `node-red` process for the benchmark (the approach of test/lib/node-red-process.js):
 * a fresh temp user directory with this checkout linked into its node_modules, 127.0.0.1 on an
 * ephemeral port, console logging at `warn`, optionally a raised open-file limit (through
 * `bash -c "ulimit -n N; exec node ..."`), optionally HTTPS with a fresh self-signed certificate
 * (`tls`: its listeners are then wss://, and this package relays them). Owns start, full
 * deploys, the log and stopping.
 */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const path = require("path");
const { childPids } = require("./proc");
const { freePort, linkedUserDir } = require("../../test/lib/node-red-process");
const { selfSignedCertificate } = require("../../test/lib/harness");
const { adminRequest } = require("../../test/lib/admin-api");

const ROOT = path.resolve(__dirname, "..", "..");

function delay(milliseconds) {
    return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

class NodeRed {
    /**
     * options: env (extra environment), fileLimit (ulimit -n to set, or 0 to leave it),
     * settings (extra settings.js properties, as source text), tls (serve HTTPS)
     */
    constructor(options = {}) {
        this.options = options;
        this.output = "";
        this.child = null;
        this.ca = null;
    }

    async start() {
        this.port = await freePort();
        this.userDir = linkedUserDir("pyws-bench-");
        const settings = path.join(this.userDir, "settings.js");
        let httpsSetting = "";
        if (this.options.tls) {
            const { keyFile, certFile } = selfSignedCertificate(this.userDir);
            this.ca = fs.readFileSync(certFile);
            httpsSetting = `https: { key: require("fs").readFileSync(${JSON.stringify(keyFile)}), ` +
                `cert: require("fs").readFileSync(${JSON.stringify(certFile)}) }, `;
        }
        fs.writeFileSync(settings,
            `module.exports = { uiHost: "127.0.0.1", uiPort: ${this.port}, flowFile: "flows.json", ` +
            "credentialSecret: false, logging: { console: { level: \"warn\", metrics: false, audit: false } }, " +
            // Live memory for the connection-scale figure: a full collection, then the heap in use.
            "functionGlobalContext: { liveHeapBytes: () => { global.gc(); global.gc(); " +
            "const m = process.memoryUsage(); return m.heapUsed + m.external; } }, " +
            `${httpsSetting}${this.options.settings || ""} };\n`);
        const env = Object.assign({}, process.env, this.options.env || {});
        // BENCH_NODE_FLAGS: flags for Node-RED's node, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
        const nodeFlags = ["--expose-gc"].concat((process.env.BENCH_NODE_FLAGS || "").split(/\s+/).filter(Boolean));
        const args = nodeFlags.concat([require.resolve("node-red/red.js"), "-u", this.userDir, "-s", settings]);
        if (this.options.fileLimit) {
            const quoted = [process.execPath].concat(args).map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
            this.child = childProcess.spawn("bash", ["-c", `ulimit -n ${this.options.fileLimit} && exec ${quoted}`],
                { env, stdio: ["ignore", "pipe", "pipe"] });
        } else {
            this.child = childProcess.spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] });
        }
        this.child.stdout.on("data", (chunk) => { this.output += chunk; });
        this.child.stderr.on("data", (chunk) => { this.output += chunk; });
        this.exited = new Promise((resolve) => this.child.once("exit", (code, signal) => resolve({ code, signal })));
        const deadline = Date.now() + 60000;
        for (;;) {
            if (!this.alive()) throw new Error(`node-red exited while starting:\n${this.output}`);
            try {
                const result = await this.api("GET", "/flows");
                if (result.status === 200) break;
            } catch (_) { /* not listening yet */ }
            if (Date.now() > deadline) throw new Error(`node-red did not start:\n${this.output}`);
            await delay(100);
        }
        return this;
    }

    /** ws://127.0.0.1:port, or wss:// with tls. */
    get wsBase() {
        return `${this.options.tls ? "wss" : "ws"}://127.0.0.1:${this.port}`;
    }

    get pid() {
        return this.child.pid;
    }

    alive() {
        return this.child && this.child.exitCode === null && this.child.signalCode === null;
    }

    /** {main, children}: the Node-RED pid and its children's (the Python worker's). */
    pids() {
        return { main: this.child.pid, children: childPids(this.child.pid) };
    }

    api(method, urlPath, body, headers = {}) {
        return adminRequest(this.port, method, urlPath, body, headers, 30000, this.ca);
    }

    async deploy(nodes) {
        const result = await this.api("POST", "/flows", nodes, { "Node-RED-Deployment-Type": "full" });
        if (![200, 204].includes(result.status)) throw new Error(`deploy failed: ${JSON.stringify(result.body)}`);
    }

    /** The log's warn/error lines (Node-RED's console format) from character offset `from`. */
    problems(from = 0) {
        return this.output.slice(from).split("\n")
            .filter((line) => /\[(warn|error)\]|Error|Traceback|mismatch/.test(line))
            .map((line) => line.trim()).filter(Boolean);
    }

    async stop() {
        const workers = this.alive() ? childPids(this.child.pid) : [];
        if (this.alive()) {
            this.child.kill("SIGTERM");
            let timer;
            const stopped = await Promise.race([this.exited,
                new Promise((resolve) => { timer = setTimeout(resolve, 15000, null); })]);
            clearTimeout(timer);
            if (!stopped) {
                this.child.kill("SIGKILL");
                await this.exited;
            }
        }
        // The worker leaves with Node-RED; if one lingers, end it by its pid.
        const deadline = Date.now() + 5000;
        for (const pid of workers) {
            while (Date.now() < deadline && isAlive(pid)) await delay(50);
            if (isAlive(pid)) {
                this.output += `\n[bench] worker ${pid} still running 5 s after Node-RED exited: SIGKILL\n`;
                try { process.kill(pid, "SIGKILL"); } catch (_) { /* gone */ }
            }
        }
        fs.rmSync(this.userDir, { recursive: true, force: true });
    }
}

function isAlive(pid) {
    try {
        process.kill(pid, 0);
        return true;
    } catch (_) {
        return false;
    }
}

module.exports = { NodeRed, freePort, delay, ROOT };
