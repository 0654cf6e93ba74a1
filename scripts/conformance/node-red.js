/**
 * One real `node-red` for a conformance mode: a fresh temp user directory with this checkout
 * linked into its node_modules (as test/lib/node-red-process.js does), 127.0.0.1 on an
 * ephemeral port, extra settings.js properties, the worker's venv at the checkout's `.venv`
 * (as the tests and the benchmark use it). Owns start, deploys, the echo probe and stop.
 */
"use strict";

const fs = require("fs");
const path = require("path");
const WebSocket = require("ws");
const { freePort, linkedUserDir, ROOT } = require("../../test/lib/node-red-process");
const processes = require("./processes");
const { adminRequest } = require("../../test/lib/admin-api");

class NodeRed {
    constructor(settings = "") {
        this.settings = settings;
        this.child = null;
    }

    async start() {
        this.port = await freePort();
        this.userDir = linkedUserDir("pyws-conformance-");
        const settings = path.join(this.userDir, "settings.js");
        fs.writeFileSync(settings,
            `module.exports = { uiHost: "127.0.0.1", uiPort: ${this.port}, flowFile: "flows.json", ` +
            "credentialSecret: false, logging: { console: { level: \"warn\", metrics: false, audit: false } }, " +
            `${this.settings} };\n`);
        const env = Object.assign({}, process.env, {
            NODE_RED_PYTHON_VENV: process.env.NODE_RED_PYTHON_VENV || path.join(ROOT, ".venv"),
        });
        this.child = processes.spawn(process.execPath, [require.resolve("node-red/red.js"), "-u", this.userDir,
            "-s", settings], { env });
        const deadline = Date.now() + 60000;
        for (;;) {
            if (!this.alive()) throw new Error(`node-red exited while starting:\n${this.logTail()}`);
            try {
                if ((await this.api("GET", "/flows")).status === 200) break;
            } catch (_) { /* not listening yet */ }
            if (Date.now() > deadline) throw new Error(`node-red did not start in 60 s:\n${this.logTail()}`);
            await processes.delay(100);
        }
        return this;
    }

    alive() {
        return this.child && this.child.exitCode === null && this.child.signalCode === null;
    }

    logTail(lines = 30) {
        return (this.child ? this.child.output : "").trim().split("\n").slice(-lines).join("\n");
    }

    api(method, urlPath, body, headers = {}) {
        return adminRequest(this.port, method, urlPath, body, headers);
    }

    /** type "full" restarts every node; "nodes" only the changed ones (and those using them). */
    async deploy(nodes, type = "full") {
        const result = await this.api("POST", "/flows", nodes, { "Node-RED-Deployment-Type": type });
        if (![200, 204].includes(result.status)) {
            throw new Error(`deploy failed (HTTP ${result.status}): ${JSON.stringify(result.body)}`);
        }
    }

    /**
     * Sends one text message to the listener at `urlPath` until it comes back: the worker has
     * started (at first use it may be installing its Python packages into .venv).
     */
    async probeEcho(urlPath, timeoutMs, onSlow) {
        const started = Date.now();
        const deadline = started + timeoutMs;
        let told = false;
        let last = "no answer";
        while (Date.now() < deadline) {
            if (!this.alive()) throw new Error(`node-red exited:\n${this.logTail()}`);
            try {
                await echoOnce(`ws://127.0.0.1:${this.port}${urlPath}`, 5000);
                return;
            } catch (err) {
                last = err.message;
            }
            if (!told && Date.now() > started + 5000) {
                told = true;
                if (onSlow) onSlow();
            }
            await processes.delay(500);
        }
        throw new Error(`no echo from ${urlPath} within ${timeoutMs / 1000} s (${last}); Node-RED's log:\n` +
            this.logTail());
    }

    async stop() {
        if (this.child) await processes.stop(this.child, 15000);
        if (this.userDir) fs.rmSync(this.userDir, { recursive: true, force: true });
    }
}

function echoOnce(url, timeoutMs) {
    return new Promise((resolve, reject) => {
        const socket = new WebSocket(url);
        const timer = setTimeout(() => finish(new Error("timed out")), timeoutMs);
        const finish = (err) => {
            clearTimeout(timer);
            socket.removeAllListeners();
            socket.on("error", () => {});
            socket.terminate();
            if (err) reject(err);
            else resolve();
        };
        socket.on("open", () => socket.send("conformance probe"));
        socket.on("message", (data) => finish(String(data) === "conformance probe" ? null : new Error("wrong echo")));
        socket.on("error", (err) => finish(err));
        socket.on("close", () => finish(new Error("closed")));
    });
}

module.exports = { NodeRed };
