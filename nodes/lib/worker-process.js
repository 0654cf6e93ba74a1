/**
 * One Python worker process and its life: Python set up (python-env.js), spawn (worker-spawn.js),
 * the hello check, supervision (this is where a worker is restarted, with backoff), and the state
 * every owner sees. The states and the transitions allowed between them are the table TRANSITIONS.
 *
 * Why a worker stopped decides what follows:
 *  - Node-RED itself is stopping (shutdown.js): it went with Node-RED; no restart, debug log;
 *  - it exited 0 or by SIGTERM/SIGINT while Node-RED runs: someone stopped it (the worker exits
 *    0 only on such a signal or the end of its channel); the nodes still need it, so it is
 *    restarted, with a warning;
 *  - anything else is a crash: restarted, with an error.
 * It also kills a worker that does not say hello in time or that is stuck (event-channel.js).
 * Several of them may run side by side (worker-pool.js): each is supervised on its own.
 */
"use strict";

const { EventChannel } = require("./event-channel");
const { PROTOCOL_VERSION } = require("./protocol");
const { spawnWorker, pipeLines } = require("./worker-spawn");
const { StateMachine } = require("./state-machine");
const { nodeRedStopping } = require("./shutdown");

/** The worker's exit code when its Python packages do not fit (python/websocket_worker/compat.py). */
const EXIT_INCOMPATIBLE = 3;

const TRANSITIONS = {
    idle: ["starting"], // no worker, none needed yet
    starting: ["installing", "ready", "restarting", "failed", "idle", "stopped"],
    installing: ["ready", "restarting", "failed", "idle", "stopped"],
    ready: ["restarting", "stopped"],
    restarting: ["starting", "stopped"], // waiting for the restart timer
    failed: ["starting", "stopped"], // Python missing or unusable: waits for the next deploy
    stopped: [], // Node-RED is stopping, or the worker was retired (the pool got smaller)
};

// The live worker processes of this Node-RED, stopped with it however it exits (one hook for all).
const liveChildren = new Set();
let exitHookInstalled = false;

function installExitHook() {
    if (exitHookInstalled) return;
    exitHookInstalled = true;
    process.on("exit", () => {
        for (const child of liveChildren) {
            try { child.kill("SIGTERM"); } catch (_) { /* already gone */ }
        }
    });
}

const told = new WeakSet();

/** True the first time it is asked about `what` (a set-up's result or error, shared by several workers). */
function once(what) {
    if (told.has(what)) return false;
    told.add(what);
    return true;
}

class WorkerProcess {
    /**
     * host: prepare(onProgress) (python-env.js preparePython, shared by the pool's workers),
     * configureOptions(), log (a BridgeLog), limits (options.js LIMITS), wanted() (is a worker
     * needed?), onFrames(frames), onReady(), onLost() (the worker and all it served are gone),
     * onState(state, detail).
     */
    constructor(host) {
        this.host = host;
        this.log = host.log;
        this.limits = host.limits;
        this.machine = new StateMachine("worker", TRANSITIONS, "idle", {
            onChange: (state, from, detail) => {
                this.detail = detail || null;
                host.onState(state, this.detail);
            },
            onRefused: (detail) => this.log.error("websocket.log.internal", { detail }),
        });
        this.detail = null; // of the current state: {message} for restarting, {code, message} for failed
        this.child = null;
        this.channel = null;
        this.helloTimer = null;
        this.restartTimer = null;
        this.restartDelay = this.limits.firstRestartMs;
        this.startedAt = 0;
        this.retired = false;
    }

    get state() {
        return this.machine.state;
    }

    get pid() {
        return this.child ? this.child.pid : null;
    }

    isReady() {
        return this.machine.is("ready") && this.channel !== null;
    }

    /** A worker is needed (an owner was added): start one unless there is one or it is coming. */
    need() {
        if (this.machine.is("idle", "failed")) this._start();
    }

    send(frame) {
        if (this.channel) this.channel.send(frame);
    }

    /** A frame already encoded (protocol.js encodePieces): one broadcast, encoded once for every worker. */
    sendEncoded(pieces) {
        if (this.channel) this.channel.sendEncoded(pieces);
    }

    trySend(frame) {
        return this.channel ? this.channel.trySend(frame) : false;
    }

    get congested() {
        return this.channel ? this.channel.congested : false;
    }

    onceWritable(callback) {
        if (this.channel) this.channel.onceWritable(callback);
        else callback();
    }

    delivered() {
        if (this.channel) this.channel.delivered();
    }

    /** Hands a socket over on Node's IPC channel (fd 3); callback(err) once it is on its way. */
    sendHandle(meta, socket, callback) {
        this.child.send(meta, socket, { keepOpen: true }, callback);
    }

    /** The worker's first frame: check the protocol, configure it, declare it ready. */
    hello(info) {
        if (!this.machine.is("starting", "installing") || !this.child) return;
        clearTimeout(this.helloTimer);
        if (info.protocol !== PROTOCOL_VERSION) {
            this.log.error("websocket.log.protocol-mismatch", { theirs: info.protocol, ours: PROTOCOL_VERSION });
            const child = this.child;
            this._detach();
            child.kill("SIGKILL");
            this.machine.to("failed", { code: "protocol", message: "protocol mismatch" });
            return;
        }
        this.startedAt = Date.now();
        this.log.info("websocket.log.ready", { pid: info.pid, python: info.python, websockets: info.websockets,
            loop: info.loop || "asyncio" });
        this.channel.send(["configure", this.host.configureOptions()]);
        this.machine.to("ready");
        this.host.onReady();
    }

    async _start() {
        clearTimeout(this.restartTimer);
        this.restartTimer = null;
        this.machine.to("starting");
        let prepared;
        try {
            prepared = await this.host.prepare((step) => {
                if (!this.retired) this.machine.to(step);
            });
        } catch (err) {
            if (this.retired) return;
            const code = err.code === "install-failed" ? "install-failed" : "python-missing";
            // One set-up serves every worker of the pool (worker-pool.js): its news is told once.
            if (once(err)) this.log.error(`websocket.errors.${code}`, { detail: err.message });
            this.machine.to("failed", { code, message: err.message });
            return;
        }
        if (this.retired) return;
        if (prepared.speedupsSkipped && once(prepared)) {
            this.log.info("websocket.log.no-uvloop", { detail: prepared.speedupsSkipped });
        }
        if (nodeRedStopping()) {
            this.machine.to("stopped");
        } else if (!this.host.wanted()) {
            this.machine.to("idle");
        } else {
            this._spawn(prepared.python);
        }
    }

    _spawn(python) {
        let child;
        try {
            child = spawnWorker(python);
        } catch (err) {
            this._exited(null, null, err);
            return;
        }
        this.child = child;
        this.channel = new EventChannel(child.stdio[4], {
            onFrames: (frames) => this.host.onFrames(frames),
            onBroken: (err) => {
                this.log.error("websocket.log.channel-broken", { error: err.message });
                child.kill("SIGKILL");
            },
            onStuck: () => {
                this.log.error("websocket.log.worker-stuck", { seconds: this.limits.stallTimeoutMs / 1000,
                    bytes: this.channel ? this.channel.waitingBytes : 0 });
                child.kill("SIGKILL");
            },
        }, this.limits);
        this.helloTimer = setTimeout(() => {
            this.log.error("websocket.log.hello-timeout", { seconds: this.limits.helloTimeoutMs / 1000 });
            child.kill("SIGKILL");
        }, this.limits.helloTimeoutMs);
        child.on("error", (err) => {
            this.log.warn("websocket.log.process-error", { error: err.message });
            if (child.pid === undefined && this.child === child) this._exited(null, null, err); // never started
        });
        child.on("exit", (code, signal) => {
            clearTimeout(this.helloTimer);
            if (this.child === child) this._exited(code, signal);
        });
        child.on("message", () => {}); // on fd 3 the worker only answers Node's own NODE_* messages
        pipeLines(child.stdout, (line) => this.log.worker("debug", line));
        pipeLines(child.stderr, (line) => this.log.worker("warn", line));
        liveChildren.add(child);
        installExitHook();
    }

    /**
     * Stops this worker for good (the pool got smaller): no restart, no news. Whoever used it has
     * been told already (worker-pool.js).
     */
    retire() {
        this.retired = true;
        clearTimeout(this.restartTimer);
        const child = this.child;
        this._detach();
        if (child) child.kill("SIGTERM");
        if (!this.machine.is("idle", "stopped")) this.machine.to("stopped");
    }

    _detach() {
        clearTimeout(this.helloTimer);
        if (this.channel) this.channel.close();
        if (this.child) liveChildren.delete(this.child);
        this.child = null;
        this.channel = null;
    }

    _exited(code, signal, spawnError) {
        const wasReady = this.machine.is("ready");
        const upFor = Date.now() - this.startedAt;
        this._detach();
        const why = spawnError ? spawnError.message : (signal ? `signal ${signal}` : `exit code ${code}`);
        if (nodeRedStopping()) {
            this.log.debug("websocket.log.worker-exited-with-node-red", { why });
            this.host.onLost();
            this.machine.to("stopped");
            return;
        }
        if (code === EXIT_INCOMPATIBLE && this.machine.is("starting", "installing")) {
            // python/websocket_worker/compat.py: its packages do not fit. A restart cannot help.
            this.log.error("websocket.log.worker-incompatible", { why });
            this.host.onLost();
            this.machine.to("failed", { code: "install-failed", message: "incompatible Python packages" });
            return;
        }
        if (wasReady && upFor > this.limits.stableAfterMs) this.restartDelay = this.limits.firstRestartMs;
        const delay = this.restartDelay;
        this.restartDelay = Math.min(this.restartDelay * 2, this.limits.maxRestartMs);
        const stoppedOnRequest = !spawnError && (code === 0 || signal === "SIGTERM" || signal === "SIGINT");
        if (stoppedOnRequest) this.log.warn("websocket.log.worker-signalled", { why, delay });
        else this.log.error("websocket.log.worker-stopped", { why, delay });
        this.host.onLost();
        this.machine.to("restarting", { message: why });
        this.restartTimer = setTimeout(() => {
            if (nodeRedStopping()) this.machine.to("stopped");
            else this._start();
        }, delay);
        if (this.restartTimer.unref) this.restartTimer.unref();
    }
}

module.exports = { WorkerProcess, TRANSITIONS };
