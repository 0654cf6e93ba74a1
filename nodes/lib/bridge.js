/**
 * The bridge to the Python worker: one per Node-RED process, shared by every config node and
 * kept across redeploys (and across node-red-node-test-helper loads, which call the node module
 * again with a fresh RED).
 *
 * It owns: setting Python up (python-env.js), spawning the worker, supervising it (restart with
 * backoff, declaring every endpoint and client again), the event channel (fd 4, MessagePack
 * frames, protocol.js) and the socket handoff channel (fd 3). Nothing the worker does may throw
 * into Node-RED: every error of the child and its streams is handled here.
 *
 * Users of the bridge are "owners" (a listener endpoint or a client connection), each with an id
 * from add() and a handler object:
 *   open(sid, info), message(sid, data), close(sid, code, reason), error(sid, text),
 *   workerState(state, detail)   state: "installing" | "starting" | "ready" | "restarting" | "failed"
 *   workerLost()                 every session of this owner is gone with the old worker
 */
"use strict";

const childProcess = require("child_process");
const path = require("path");
const { PROTOCOL_VERSION, encodeFrame, FrameDecoder, FrameError, asBuffer } = require("./protocol");
const { preparePython, PYTHON_DIR } = require("./python-env");

const HELLO_TIMEOUT_MS = 30000;
const CLOSE_TIMEOUT_MS = 3000;
const FIRST_RESTART_MS = 200;
const MAX_RESTART_MS = 30000;
// A worker that served this long before it died is replaced at once; one that dies sooner (or
// before it said hello) is crash-looping, and its restarts back off.
const STABLE_AFTER_MS = 2000;
const PENDING_HANDOFF_TIMEOUT_MS = 30000;
const DEFAULT_FLOW_WINDOW = 1000;
const DEFAULT_FLOW_WINDOW_BYTES = 8 * 1024 * 1024;

const FIXES = {
    "python-missing": "Fix: install Python 3.9+ with venv (Debian/Ubuntu: apt install python3 python3-venv) " +
        "or set pyWebsocketListenerPython in settings.js, then deploy again.",
    "install-failed": "Fix: allow access to PyPI, or set pyWebsocketListenerPython to an interpreter that " +
        "already has websockets and msgpack, then deploy again.",
};

const fallbackLog = {
    info: (m) => console.log(m), warn: (m) => console.warn(m), error: (m) => console.error(m),
    debug: () => {}, trace: () => {},
};

function rebuildRequest(req, extraHeaders) {
    let text = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
        text += `${raw[i]}: ${raw[i + 1]}\r\n`;
    }
    for (const [name, value] of extraHeaders || []) {
        text += `${name}: ${value}\r\n`;
    }
    return text + "\r\n";
}

class WorkerBridge {
    constructor() {
        this.settings = {};
        this.log = fallbackLog;
        this.owners = new Map();
        this.nextOwnerId = 1;
        this.state = "idle";
        this.stateDetail = null;
        this.child = null;
        this.events = null;
        this.outQueue = [];
        this.flushScheduled = false;
        this.pendingConnections = [];
        this.streams = new Map();
        this.closeWaiters = new Map();
        this.restartDelay = FIRST_RESTART_MS;
        this.restartTimer = null;
        this.startedAt = 0;
        this.workerInfo = null;
        this.exitHookInstalled = false;
        this.unacked = 0;
        this.ackScheduled = false;
    }

    /** Latest settings and logger (each Node-RED load brings its own RED). */
    configure({ settings, log }) {
        this.settings = settings || {};
        this.log = log || fallbackLog;
    }

    /** Declare an endpoint ("listen") or client connection ("connect"); returns its id. */
    add(kind, options, handler) {
        const id = this.nextOwnerId++;
        this.owners.set(id, { id, kind, options, handler, removing: false, listening: false });
        if (this.state === "ready") {
            this._declare(this.owners.get(id));
        } else {
            handler.workerState(this.state === "idle" ? "starting" : this.state, this.stateDetail);
        }
        if (this.state === "idle" || this.state === "failed") {
            this._start();
        }
        return id;
    }

    /** Remove an owner; resolves when the worker has closed everything of it (bounded). */
    remove(id) {
        const owner = this.owners.get(id);
        if (!owner || owner.removing) {
            return Promise.resolve();
        }
        owner.removing = true;
        for (const item of this.pendingConnections.filter((pending) => pending.id === id)) {
            clearTimeout(item.timer);
            item.socket.destroy();
        }
        this.pendingConnections = this.pendingConnections.filter((pending) => pending.id !== id);
        if (this.state !== "ready") {
            this.owners.delete(id);
            return Promise.resolve();
        }
        return new Promise((resolve) => {
            const finish = () => {
                clearTimeout(timer);
                this.closeWaiters.delete(id);
                this.owners.delete(id);
                resolve();
            };
            const timer = setTimeout(finish, CLOSE_TIMEOUT_MS);
            this.closeWaiters.set(id, finish);
            this._write([owner.kind === "listen" ? "unlisten" : "disconnect", id]);
        });
    }

    /** Send text (string) or binary (Buffer) to a session, or to all sessions when sid is null. */
    send(id, sid, data) {
        if (this.state !== "ready" || !this.owners.has(id)) {
            return false;
        }
        this._write(["send", id, sid, data]);
        return true;
    }

    isReady() {
        return this.state === "ready";
    }

    /**
     * Give an upgraded listener connection to the worker: the socket itself (handoff) where
     * possible, else its bytes through the event channel (TLS, Windows, or a setting).
     */
    handOver(id, sid, req, socket, head) {
        let bytes = head && head.length ? head : Buffer.alloc(0);
        const proxied = this._mustProxy(socket);
        if (!proxied) {
            if (socket.readableLength > 0) {
                const buffered = socket.read();
                if (buffered) bytes = Buffer.concat([bytes, buffered]);
            }
            if (socket._handle && typeof socket._handle.readStop === "function") {
                socket._handle.readStop();
            }
        }
        const extra = proxied ? [["X-Forwarded-For", socket.remoteAddress || ""],
            ["X-Forwarded-Proto", socket.encrypted ? "https" : "http"]] : null;
        const item = { id, sid, request: rebuildRequest(req, extra), head: bytes, socket, proxied };
        const owner = this.owners.get(id);
        if (this.state === "ready" && this.child && owner && owner.listening) {
            this._deliver(item);
            return;
        }
        if (this.state === "failed") {
            socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
            socket.destroy();
            return;
        }
        item.timer = setTimeout(() => {
            const at = this.pendingConnections.indexOf(item);
            if (at !== -1) {
                this.pendingConnections.splice(at, 1);
                socket.destroy();
            }
        }, PENDING_HANDOFF_TIMEOUT_MS);
        this.pendingConnections.push(item);
    }

    _mustProxy(socket) {
        return Boolean(socket.encrypted) || process.platform === "win32" ||
            this.settings.pyWebsocketListenerHandoff === false;
    }

    _deliver(item) {
        clearTimeout(item.timer);
        if (!this.owners.has(item.id)) {
            item.socket.destroy();
            return;
        }
        if (item.proxied) {
            this._proxy(item);
            return;
        }
        const meta = { e: item.id, s: item.sid, r: item.request, h: item.head.toString("base64") };
        // keepOpen, then close Node's copy of the fd ourselves once it is on its way: without
        // keepOpen Node books the socket as "detached" under the server's address key, which
        // collides for servers on port 0 and leaves server.close() waiting forever.
        try {
            this.child.send(meta, item.socket, { keepOpen: true }, (err) => {
                item.socket.destroy();
                if (err) {
                    this.log.warn(`[python-websocket] could not hand a connection to the worker: ${err.message}`);
                }
            });
        } catch (err) {
            this.log.warn(`[python-websocket] could not hand a connection to the worker: ${err.message}`);
            item.socket.destroy();
        }
    }

    _proxy({ id, sid, request, head, socket }) {
        this.streams.set(sid, socket);
        this._write(["stream_open", id, sid, Buffer.from(request, "latin1"), head]);
        socket.on("data", (chunk) => this._write(["stream_data", sid, chunk]));
        const ended = () => {
            if (this.streams.get(sid) === socket) {
                this.streams.delete(sid);
                this._write(["stream_end", sid]);
            }
        };
        socket.on("end", ended);
        socket.on("close", ended);
        socket.on("error", () => {});
        socket.resume();
    }

    _setState(state, detail) {
        this.state = state;
        this.stateDetail = detail || null;
        for (const owner of this.owners.values()) {
            if (!owner.removing) {
                owner.handler.workerState(state, this.stateDetail);
            }
        }
    }

    async _start() {
        clearTimeout(this.restartTimer);
        this.restartTimer = null;
        this._setState("starting");
        let python;
        try {
            const prepared = await preparePython(this.settings, {
                onProgress: (step) => this._setState(step),
            });
            python = prepared.python;
            if (prepared.speedupsSkipped) {
                this.log.info(`[python-websocket] uvloop not installed (no wheel for this system?), ` +
                    `the worker runs on asyncio: ${prepared.speedupsSkipped}`);
            }
        } catch (err) {
            this.log.error(`[python-websocket] ${err.message}. ${FIXES[err.code] || ""}`.trim());
            this._failPending();
            this._setState("failed", { code: err.code || "python-missing", message: err.message });
            return;
        }
        if (this.owners.size === 0 && this.pendingConnections.length === 0) {
            this._setState("idle");
            return;
        }
        this._spawn(python);
    }

    _spawn(python) {
        const env = Object.assign({}, process.env, {
            PYTHONPATH: [PYTHON_DIR, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter),
            PYTHONUNBUFFERED: "1",
            PYTHONDONTWRITEBYTECODE: "1",
        });
        let child;
        try {
            child = childProcess.spawn(python,
                ["-m", "websocket_worker", "--events-fd", "4", "--handoff-fd", "3"],
                { stdio: ["ignore", "pipe", "pipe", "ipc", "pipe"], env, windowsHide: true });
        } catch (err) {
            this._onExit(null, null, err);
            return;
        }
        this.child = child;
        this.events = child.stdio[4];
        this.workerInfo = null;
        const decoder = new FrameDecoder();
        const helloTimer = setTimeout(() => {
            this.log.error("[python-websocket] the Python worker did not start within 30 s; restarting it");
            child.kill("SIGKILL");
        }, HELLO_TIMEOUT_MS);
        child.on("error", (err) => {
            this.log.warn(`[python-websocket] worker process error: ${err.message}`);
        });
        child.on("exit", (code, signal) => {
            clearTimeout(helloTimer);
            if (this.child === child) this._onExit(code, signal);
        });
        child.on("message", () => {}); // the worker never talks on fd 3 beyond Node's own NODE_* acks
        for (const stream of [child.stdout, child.stderr, this.events]) {
            stream.on("error", () => {});
        }
        this._pipeLines(child.stdout, (line) => this.log.debug(`[python-websocket worker] ${line}`));
        this._pipeLines(child.stderr, (line) => this.log.warn(`[python-websocket worker] ${line}`));
        this.events.on("data", (chunk) => {
            let frames;
            try {
                frames = decoder.push(chunk);
            } catch (err) {
                this.log.error(`[python-websocket] event channel broken (${err.message}); restarting the worker`);
                child.kill("SIGKILL");
                return;
            }
            for (const frame of frames) {
                if (frame instanceof FrameError) {
                    this.log.error(`[python-websocket] dropped a bad frame from the worker: ${frame.message}`);
                    continue;
                }
                if (frame[0] === "hello") clearTimeout(helloTimer);
                this._onFrame(frame);
            }
        });
        this._installExitHook();
        child.unref();
        if (child.channel && child.channel.unref) child.channel.unref();
        for (const stream of [child.stdout, child.stderr, this.events]) {
            if (stream && stream.unref) stream.unref();
        }
    }

    _pipeLines(stream, onLine) {
        let rest = "";
        stream.on("data", (chunk) => {
            const lines = (rest + chunk.toString()).split(/\r?\n/);
            rest = lines.pop();
            for (const line of lines) if (line.trim()) onLine(line);
        });
    }

    _installExitHook() {
        if (this.exitHookInstalled) return;
        this.exitHookInstalled = true;
        process.on("exit", () => {
            if (this.child) {
                try { this.child.kill("SIGTERM"); } catch (_) { /* already gone */ }
            }
        });
    }

    _onFrame(frame) {
        const kind = frame[0];
        if (kind === "hello") {
            this._onHello(frame[1] || {});
            return;
        }
        if (kind === "log") {
            const level = ["debug", "info", "warn", "error"].includes(frame[1]) ? frame[1] : "info";
            this.log[level](`[python-websocket worker] ${frame[2]}`);
            return;
        }
        if (kind === "stream_data" || kind === "stream_end") {
            const socket = this.streams.get(frame[1]);
            if (!socket) return;
            if (kind === "stream_data") {
                socket.write(asBuffer(frame[2]));
            } else {
                this.streams.delete(frame[1]);
                socket.end();
            }
            return;
        }
        if (kind === "listening") {
            this._onListening(frame[1]);
            return;
        }
        if (kind === "closed") {
            const waiter = this.closeWaiters.get(frame[1]);
            if (waiter) waiter();
            return;
        }
        if (kind === "stream_pause" || kind === "stream_resume") {
            const socket = this.streams.get(frame[1]);
            if (socket) {
                if (kind === "stream_pause") socket.pause();
                else socket.resume();
            }
            return;
        }
        const owner = this.owners.get(frame[1]);
        if (!owner) {
            if (kind === "message") this._countForAck();
            return;
        }
        const handler = owner.handler;
        const sid = frame[2] === undefined ? null : frame[2];
        switch (kind) {
        case "message": {
            const data = typeof frame[3] === "string" ? frame[3] : asBuffer(frame[3]);
            this._countForAck();
            handler.message(sid, data);
            break;
        }
        case "open":
            handler.open(sid, frame[3] || {});
            break;
        case "close":
            handler.close(sid, frame[3], frame[4] || "");
            break;
        case "error":
            handler.error(sid, String(frame[3]));
            break;
        default:
            this.log.warn(`[python-websocket] unknown event '${kind}' from the worker`);
        }
    }

    _onHello(info) {
        if (info.protocol !== PROTOCOL_VERSION) {
            this.log.error(`[python-websocket] the Python worker speaks protocol ${info.protocol}, ` +
                `this package needs ${PROTOCOL_VERSION}; reinstall the package`);
            const child = this.child;
            this.child = null;
            child.kill("SIGKILL");
            this._setState("failed", { code: "protocol", message: "protocol mismatch" });
            return;
        }
        this.workerInfo = info;
        this.startedAt = Date.now();
        this.log.info(`[python-websocket] worker ${info.pid} ready (Python ${info.python}, ` +
            `websockets ${info.websockets}, ${info.loop || "asyncio"})`);
        this.unacked = 0;
        this._write(["configure", {
            flow_window: this.settings.pyWebsocketListenerFlowWindow || DEFAULT_FLOW_WINDOW,
            flow_window_bytes: this.settings.pyWebsocketListenerFlowWindowBytes || DEFAULT_FLOW_WINDOW_BYTES,
        }]);
        this._setState("ready");
        for (const owner of this.owners.values()) {
            if (!owner.removing) this._declare(owner);
        }
    }

    /** The worker serves owner now: hand over the connections that waited for it. */
    _onListening(id) {
        const owner = this.owners.get(id);
        if (!owner) return;
        owner.listening = true;
        const waiting = this.pendingConnections.filter((item) => item.id === id);
        this.pendingConnections = this.pendingConnections.filter((item) => item.id !== id);
        for (const item of waiting) this._deliver(item);
    }

    /**
     * Flow control: acknowledge delivered messages from a setImmediate, so acknowledgements slow
     * down exactly when Node-RED's event loop falls behind and the worker stops reading sockets.
     */
    _countForAck() {
        this.unacked++;
        if (!this.ackScheduled) {
            this.ackScheduled = true;
            setImmediate(() => {
                this.ackScheduled = false;
                const count = this.unacked;
                this.unacked = 0;
                if (count > 0 && this.events) {
                    this.outQueue.push(encodeFrame(["ack", count]));
                    this._flush();
                }
            });
        }
    }

    _declare(owner) {
        this._write([owner.kind, owner.id, owner.options]);
    }

    _onExit(code, signal, spawnError) {
        const wasReady = this.state === "ready";
        const upFor = Date.now() - this.startedAt;
        this.child = null;
        this.events = null;
        this.outQueue = [];
        for (const socket of this.streams.values()) socket.destroy();
        this.streams.clear();
        for (const waiter of Array.from(this.closeWaiters.values())) waiter();
        const why = spawnError ? spawnError.message : (signal ? `signal ${signal}` : `exit code ${code}`);
        if (wasReady && upFor > STABLE_AFTER_MS) {
            this.restartDelay = FIRST_RESTART_MS;
        }
        const delay = this.restartDelay;
        this.restartDelay = Math.min(this.restartDelay * 2, MAX_RESTART_MS);
        this.log.error(`[python-websocket] the Python worker stopped (${why}); restarting in ${delay} ms`);
        for (const owner of this.owners.values()) {
            owner.listening = false;
            if (!owner.removing) owner.handler.workerLost();
        }
        this._setState("restarting", { message: why });
        this.restartTimer = setTimeout(() => this._start(), delay);
        if (this.restartTimer.unref) this.restartTimer.unref();
    }

    _failPending() {
        const pending = this.pendingConnections;
        this.pendingConnections = [];
        for (const item of pending) {
            clearTimeout(item.timer);
            item.socket.destroy();
        }
    }

    _write(frame) {
        if (!this.events) return;
        this.outQueue.push(encodeFrame(frame));
        if (!this.flushScheduled) {
            this.flushScheduled = true;
            setImmediate(() => this._flush());
        }
    }

    _flush() {
        this.flushScheduled = false;
        const queue = this.outQueue;
        this.outQueue = [];
        if (!this.events || queue.length === 0) return;
        this.events.write(queue.length === 1 ? queue[0] : Buffer.concat(queue));
    }
}

let shared = null;

/** The process-wide bridge. */
function getBridge() {
    if (!shared) shared = new WorkerBridge();
    return shared;
}

module.exports = { getBridge, WorkerBridge, rebuildRequest };
