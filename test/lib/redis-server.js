/**
 * A real `redis-server` for the backplane tests: 127.0.0.1, a free port, no persistence, in a
 * process of its own that a test can kill and start again on the same port. Debian's
 * `redis-server` package is installed by scripts/ensure-redis.js when missing (apt-get as root,
 * as the browser test does for Chromium).
 */
"use strict";

const childProcess = require("child_process");
const net = require("net");
const path = require("path");
const { freePort } = require("./node-red-process");
const { waitFor, ms } = require("./harness");

const ROOT = path.resolve(__dirname, "..", "..");
const BINARY = "/usr/bin/redis-server";

/** Installs redis-server if missing; throws with the script's word when it cannot. */
function ensureRedis() {
    const ensured = childProcess.spawnSync(process.execPath, [path.join(ROOT, "scripts", "ensure-redis.js")],
        { stdio: "inherit" });
    if (ensured.status !== 0) throw new Error(`scripts/ensure-redis.js could not provide ${BINARY}`);
}

function accepts(port) {
    return new Promise((resolve) => {
        const socket = net.connect(port, "127.0.0.1");
        socket.once("connect", () => { socket.destroy(); resolve(true); });
        socket.once("error", () => resolve(false));
    });
}

class RedisServer {
    async start() {
        if (!this.port) this.port = await freePort();
        this.child = childProcess.spawn(BINARY, ["--port", String(this.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"], { stdio: "ignore" });
        this.exited = new Promise((resolve) => this.child.once("exit", resolve));
        await waitFor("redis-server to listen", () => accepts(this.port), ms(10000));
        return this;
    }

    get url() {
        return `redis://127.0.0.1:${this.port}/0`;
    }

    /** SIGKILL: the server goes at once, as a crash would. */
    async kill() {
        if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
            this.child.kill("SIGKILL");
            await this.exited;
        }
        this.child = null;
    }
}

module.exports = { RedisServer, ensureRedis };
