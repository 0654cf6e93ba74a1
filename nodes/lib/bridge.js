/**
 * The bridge to the Python workers: what the config nodes talk to. One per Node-RED process
 * (getBridge()), shared by every config node and kept across redeploys and across
 * node-red-node-test-helper loads (which call the node module again with a fresh RED).
 *
 * It owns the owner registry (owners.js) and puts the pieces together: the worker processes
 * (worker-pool.js: `pyWebsocketWorkers` of worker-process.js, each with its event channel,
 * event-channel.js), listener connections on their way to a worker (handoff.js, relay.js), and
 * the table EVENTS below that says what each worker event does.
 *
 * Where things are served: an endpoint is declared on every worker (each says `listening` before
 * connections are handed to it), each of its sessions lives on the worker its connection was
 * placed on (a reply or a close goes there; a broadcast, encoded once, to every worker), and a
 * client connection lives on one worker. A worker that dies takes only its own sessions and
 * client connections with it.
 *
 * With a backplane (a listener shared with other Node-RED instances through Redis, see
 * docs/protocol.md) a session id also names this instance (`instance`, random per bridge) and
 * the worker's slot: `<instance>.<slot>.<id>`. A broadcast goes to every worker as usual, but
 * the first ready one gets `publish` instead of `send`, so it is published once per instance;
 * a reply or a close for a session of another instance goes to that same worker, which
 * publishes it to the instance holding the session.
 */
"use strict";

const crypto = require("crypto");

const { FrameError, asBuffer, encodePieces } = require("./protocol");
const { BridgeLog } = require("./bridge-log");
const { Owners } = require("./owners");
const { WorkerPool } = require("./worker-pool");
const { Handoff, refuse } = require("./handoff");
const { Relay } = require("./relay");
const { LIMITS, settingsValues, configureOptions, workerCount } = require("./options");
const { watchShutdown } = require("./shutdown");

/**
 * What each worker event does (docs/protocol.md): [fields it needs after the kind,
 * handler(bridge, worker, ...fields)], worker being the WorkerProcess it came from. A frame with
 * fewer fields is a bad frame. Events for an owner go to its handler (owners.js) with sid null
 * for a client connection; an owner that is gone (it was just removed) gets nothing.
 */
const EVENTS = {
    hello: [1, (bridge, worker, info) => worker.hello(info || {})],
    log: [2, (bridge, worker, level, text) => bridge.log.worker(level, text)],
    backplane: [3, (bridge, worker, id, state, info) => {
        const handler = bridge._handler(id);
        if (handler && handler.backplane) handler.backplane(worker, String(state), info || {});
    }],
    remote_count: [2, (bridge, worker, id, count) => {
        const handler = bridge._handler(id);
        const known = Number.isSafeInteger(count) && count >= 0 ? count : null;
        if (handler && handler.remoteCount) handler.remoteCount(worker, known);
    }],
    open: [2, (bridge, worker, id, sid, info) => {
        const owner = bridge.owners.get(id);
        if (!owner) return;
        if (owner.placed && sid != null) owner.placed.set(sid, worker);
        owner.handler.open(sid ?? null, info || {});
    }],
    message: [3, (bridge, worker, id, sid, data) => {
        worker.delivered();
        const handler = bridge._handler(id);
        if (handler) handler.message(sid ?? null, typeof data === "string" ? data : asBuffer(data));
    }],
    close: [3, (bridge, worker, id, sid, code, reason, by) => {
        const owner = bridge.owners.get(id);
        if (!owner) return;
        if (owner.placed && sid != null) owner.placed.delete(sid);
        owner.handler.close(sid ?? null, code, reason || "", by || null);
    }],
    error: [3, (bridge, worker, id, sid, text) => {
        const handler = bridge._handler(id);
        if (handler) handler.error(sid ?? null, String(text));
    }],
    client_state: [3, (bridge, worker, id, state, info) => {
        const handler = bridge._handler(id);
        if (handler && handler.clientState) handler.clientState(String(state), info || {});
    }],
    listening: [1, (bridge, worker, id) => bridge._listening(worker, id)],
    closed: [1, (bridge, worker, id) => bridge.owners.closed(id, worker)],
    stream_data: [2, (bridge, worker, sid, data) => bridge.relay.data(sid, data)],
    stream_end: [1, (bridge, worker, sid) => bridge.relay.end(sid)],
    stream_pause: [1, (bridge, worker, sid) => bridge.relay.pause(sid)],
    stream_resume: [1, (bridge, worker, sid) => bridge.relay.resume(sid)],
};

class Bridge {
    /** limits: options.js LIMITS, some replaced (tests pass shorter ones). */
    constructor(limits = {}) {
        this.limits = Object.assign({}, LIMITS, limits);
        // This Node-RED on a backplane: in the session ids of listeners that have one.
        this.instance = crypto.randomBytes(4).toString("hex");
        this.rawSettings = {};
        this.validated = null; // settings(), until the next configure()
        this.log = new BridgeLog();
        this.owners = new Owners();
        this.pool = new WorkerPool({
            log: this.log,
            limits: this.limits,
            rawSettings: () => this.rawSettings,
            configureOptions: (worker) => configureOptions(this.settings(), this.instance, worker.slot),
            wanted: () => this.owners.size > 0 || this.handoff.pending.length > 0,
            onFrames: (worker, frames) => this._dispatch(worker, frames),
            onReady: (worker) => this._declareAll(worker),
            onLost: (worker) => this._workerLost(worker),
            onState: (worker) => this._workerState(worker),
        });
        this.shown = this.pool.summary(); // the pool's state as listeners were last told it
        this.relay = new Relay();
        this.handoff = new Handoff({ relay: this.relay, owners: this.owners, log: this.log, limits: this.limits,
            settings: () => this.settings(), place: (id) => this._place(id), failed: () => this.pool.failed(),
            sessionId: (id, sid, worker) => this._sessionId(id, sid, worker) });
        watchShutdown();
    }

    /** Latest settings, logger and translate function (each Node-RED load brings its own RED). */
    configure({ settings, log, translate }) {
        this.rawSettings = settings || {};
        this.validated = null;
        this.log.configure(log, translate);
        if (this.owners.size === 0) this._resize();
    }

    /**
     * The settings.js values, validated (options.js) once per configure(): the handoff reads
     * them at every connection. A bad value is logged once.
     */
    settings() {
        if (!this.validated) {
            this.validated = settingsValues(this.rawSettings, (name, value, expected, fallback) =>
                this.log.warn("websocket.errors.bad-setting", { name, value: JSON.stringify(value), expected,
                    default: JSON.stringify(fallback) }));
        }
        return this.validated;
    }

    /** Declares an endpoint ("listen") or a client connection ("connect"); returns its id. */
    add(kind, options, handler) {
        if (this.owners.size === 0) this._resize();
        const owner = this.owners.add(kind, options, handler);
        let shown;
        if (kind === "listen") {
            if (this.pool.size > 1) owner.placed = new Map();
            for (const worker of this.pool.workers) {
                if (worker.isReady()) this._declare(owner, worker);
            }
            shown = this.pool.summary();
        } else {
            owner.worker = this.pool.placeClient((worker) => this._clientsOn(worker));
            if (owner.worker.isReady()) this._declare(owner, owner.worker);
            shown = owner.worker;
        }
        if (shown.state !== "ready") handler.workerState(shown.state === "idle" ? "starting" : shown.state, shown.detail);
        this.pool.need();
        return owner.id;
    }

    /** Removes an owner; resolves when its workers have closed everything of it (bounded). */
    remove(id) {
        const owner = this.owners.get(id);
        if (!owner || owner.removing) return Promise.resolve();
        owner.removing = true;
        this.handoff.drop(id);
        const workers = (owner.kind === "listen" ? this.pool.workers : [owner.worker]).filter((w) => w.isReady());
        if (workers.length === 0) {
            this.owners.delete(id);
            return Promise.resolve();
        }
        const closed = this.owners.waitClosed(id, workers, this.limits.undeclareTimeoutMs);
        const frame = [owner.kind === "listen" ? "unlisten" : "disconnect", id];
        for (const worker of workers) worker.send(frame);
        return closed;
    }

    /**
     * Sends text (string) or binary (Buffer) to session sid of owner id, or to all its sessions
     * when sid is null. Returns "sent", "not-ready" (no worker serves the owner now) or "busy"
     * (a worker does not take its data: see event-channel.js); `force` sends even then.
     */
    send(id, sid, data, { force = false } = {}) {
        const owner = this.owners.get(id);
        if (!owner) return "not-ready";
        if (sid === null && owner.kind === "listen") {
            if (owner.options.backplane) return this._broadcast(["send", id, null, data], force, ["publish", id, data]);
            if (this.pool.size > 1) return this._broadcast(["send", id, null, data], force);
        }
        const worker = this._workerOf(owner, sid);
        if (!worker || !worker.isReady()) return "not-ready";
        const frame = ["send", id, sid, data];
        if (force) {
            worker.send(frame);
            return "sent";
        }
        return worker.trySend(frame) ? "sent" : "busy";
    }

    /**
     * Closes session sid of endpoint id, or every session when sid is null, with code and reason
     * (checked by the caller). Returns "sent" or "not-ready".
     */
    closeSession(id, sid, code, reason) {
        const owner = this.owners.get(id);
        if (!owner) return "not-ready";
        const workers = sid === null ? this.pool.workers : [this._workerOf(owner, sid)];
        let result = "not-ready";
        for (const worker of workers) {
            if (!worker || !worker.isReady()) continue;
            worker.send(["close_session", id, sid, code, reason]);
            result = "sent";
        }
        return result;
    }

    /**
     * A flow's action on client connection id ("connect", "disconnect", "reconnect"; options: the
     * new `connect` options, or null to keep the current ones). declared: the options a new worker
     * gets for it from now on. Returns "sent", or "not-ready" (the next worker gets `declared`).
     */
    clientAction(id, action, options, declared) {
        const owner = this.owners.get(id);
        if (!owner) return "not-ready";
        owner.options = declared;
        if (!owner.worker.isReady()) return "not-ready";
        owner.worker.send(["client_action", id, action, options]);
        return "sent";
    }

    /** Gives an upgraded listener connection to a worker (handoff.js). */
    accept(id, sid, req, socket, head) {
        const owner = this.owners.get(id);
        // Each worker counts only its own sessions: with several, the endpoint's connection limit
        // is checked here too, against the open sessions of all of them.
        const limit = owner && owner.placed ? owner.options.max_connections : 0;
        if (limit > 0 && owner.placed.size >= limit) {
            refuse(socket);
            return;
        }
        this.handoff.accept(id, sid, req, socket, head);
    }

    /** Whether sid names a session of endpoint id held by another instance (through its backplane). */
    isRemoteSession(id, sid) {
        const owner = this.owners.get(id);
        return Boolean(owner && owner.options.backplane) && typeof sid === "string" &&
            /^[0-9a-f]+\.\d+\./.test(sid) && !sid.startsWith(this.instance + ".");
    }

    /** Every worker is ready. */
    isReady() {
        return this.pool.isReady();
    }

    /** The first worker's pid (the only one's, by default). */
    get workerPid() {
        return this.pool.workers.length ? this.pool.workers[0].pid : null;
    }

    /** Every worker's pid, in slot order (null for one not running). */
    get workerPids() {
        return this.pool.workers.map((worker) => worker.pid);
    }

    /** The pid of the worker serving session sid of endpoint id (or client connection id), or null. */
    sessionWorkerPid(id, sid) {
        const owner = this.owners.get(id);
        const worker = owner ? this._workerOf(owner, sid) : null;
        return worker ? worker.pid : null;
    }

    _dispatch(worker, frames) {
        for (const frame of frames) {
            if (frame instanceof FrameError) {
                this.log.error("websocket.log.bad-frame", { error: frame.message });
                continue;
            }
            const event = EVENTS[frame[0]];
            if (!event) {
                this.log.warn("websocket.log.unknown-event", { kind: frame[0] });
            } else if (frame.length - 1 < event[0]) {
                this.log.error("websocket.log.bad-frame", { error: `${frame[0]} with ${frame.length - 1} fields` });
            } else {
                event[1](this, worker, frame[1], frame[2], frame[3], frame[4], frame[5]);
            }
        }
    }

    _handler(id) {
        const owner = this.owners.get(id);
        return owner ? owner.handler : null;
    }

    /**
     * The worker serving session sid of an endpoint, or the client connection's; for a session
     * of another instance, the worker that publishes (the first ready one).
     */
    _workerOf(owner, sid) {
        if (owner.kind === "connect") return owner.worker;
        if (!owner.placed) return this.pool.workers[0];
        const placed = owner.placed.get(sid);
        if (placed) return placed;
        return this.isRemoteSession(owner.id, sid) ? this.pool.workers.find((worker) => worker.isReady()) || null : null;
    }

    /**
     * To every ready worker, encoded once; nothing unless every one of them takes it (or `force`).
     * With `publisherFrame` the first ready worker gets that instead (`publish`: once per instance).
     */
    _broadcast(frame, force, publisherFrame = null) {
        let ready = 0;
        for (const worker of this.pool.workers) {
            if (!worker.isReady()) continue;
            if (!force && worker.congested) return "busy";
            ready++;
        }
        if (ready === 0) return "not-ready";
        let pieces = null;
        let publisher = publisherFrame;
        for (const worker of this.pool.workers) {
            if (!worker.isReady()) continue;
            if (publisher !== null) {
                worker.send(publisher);
                publisher = null;
                continue;
            }
            if (pieces === null) pieces = encodePieces(frame);
            worker.sendEncoded(pieces);
        }
        return "sent";
    }

    /** A new session's id: with a backplane it names this instance and the worker's slot. */
    _sessionId(id, sid, worker) {
        const owner = this.owners.get(id);
        return owner && owner.options.backplane ? `${this.instance}.${worker.slot}.${sid}` : sid;
    }

    /** The worker that takes a new connection for endpoint id now (handoff.js), or null. */
    _place(id) {
        const owner = this.owners.get(id);
        return owner ? this.pool.pick((worker) => owner.listening.has(worker)) : null;
    }

    _clientsOn(worker) {
        let count = 0;
        for (const owner of this.owners.live()) if (owner.worker === worker) count++;
        return count;
    }

    /** The pool's size from settings.js, applied while nothing is declared. */
    _resize() {
        const size = workerCount(this.settings().workers);
        if (size === this.pool.size) return;
        for (const worker of this.pool.workers.slice(size)) this.relay.dropWorker(worker);
        this.pool.resize(size);
        this.shown = this.pool.summary();
    }

    _listening(worker, id) {
        const owner = this.owners.get(id);
        if (!owner) return;
        owner.listening.add(worker);
        this.handoff.listening(id);
    }

    _declare(owner, worker) {
        worker.send([owner.kind, owner.id, owner.options]);
    }

    /** A worker is ready: every endpoint, and the client connections placed on it, are declared there. */
    _declareAll(worker) {
        for (const owner of this.owners.live()) {
            if (owner.kind === "listen" || owner.worker === worker) this._declare(owner, worker);
        }
    }

    /** A worker is gone, and with it its sessions, relayed streams and client connections. */
    _workerLost(worker) {
        this.relay.dropWorker(worker);
        this.owners.workerGone(worker);
        for (const owner of this.owners.live()) {
            if (owner.kind === "connect") {
                if (owner.worker === worker) owner.handler.workerLost(null);
            } else if (owner.placed) {
                const sids = [];
                for (const [sid, placed] of owner.placed) if (placed === worker) sids.push(sid);
                for (const sid of sids) owner.placed.delete(sid);
                owner.handler.workerLost(sids, worker);
            } else {
                owner.handler.workerLost(null, worker);
            }
        }
    }

    /**
     * A worker's state changed. A client connection shows its own worker's; a listener the
     * pool's (worker-pool.js summary()), when that changed.
     */
    _workerState(worker) {
        if (this.pool.failed()) this.handoff.failAll();
        const summary = this.pool.summary();
        const changed = summary.state !== this.shown.state || summary.detail !== this.shown.detail;
        this.shown = summary;
        for (const owner of this.owners.live()) {
            if (owner.kind === "connect") {
                if (owner.worker === worker) owner.handler.workerState(worker.state, worker.detail);
            } else if (changed) {
                owner.handler.workerState(summary.state, summary.detail);
            }
        }
    }
}

let shared = null;

/** The process-wide bridge. */
function getBridge() {
    if (!shared) shared = new Bridge();
    return shared;
}

module.exports = { getBridge, Bridge };
