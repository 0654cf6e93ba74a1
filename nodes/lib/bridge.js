/**
 * The bridge to the Python worker: what the config nodes talk to. One per Node-RED process
 * (getBridge()), shared by every config node and kept across redeploys and across
 * node-red-node-test-helper loads (which call the node module again with a fresh RED).
 *
 * It owns the owner registry (owners.js) and puts the pieces together: the worker process
 * (worker-process.js: spawn, supervision, restarts, state), its event channel
 * (event-channel.js: framing, coalesced writes, liveness), listener connections on their way to
 * it (handoff.js, relay.js), and the table EVENTS below that says what each worker event does.
 * Every owner is served by the one worker today; with several workers, an owner would name its
 * worker and a session id its worker's, and this is where they would be placed.
 */
"use strict";

const { FrameError, asBuffer } = require("./protocol");
const { BridgeLog } = require("./bridge-log");
const { Owners } = require("./owners");
const { WorkerProcess } = require("./worker-process");
const { Handoff } = require("./handoff");
const { Relay } = require("./relay");
const { LIMITS, settingsValues, configureOptions } = require("./options");
const { watchShutdown } = require("./shutdown");

/**
 * What each worker event does (docs/protocol.md): [fields it needs after the kind,
 * handler(bridge, ...fields)]. A frame with fewer fields is a bad frame. Events for an owner go
 * to its handler (owners.js) with sid null for a client connection; an owner that is gone (it
 * was just removed) gets nothing.
 */
const EVENTS = {
    hello: [1, (bridge, info) => bridge.worker.hello(info || {})],
    log: [2, (bridge, level, text) => bridge.log.worker(level, text)],
    open: [2, (bridge, id, sid, info) => {
        const handler = bridge._handler(id);
        if (handler) handler.open(sid ?? null, info || {});
    }],
    message: [3, (bridge, id, sid, data) => {
        bridge.worker.delivered();
        const handler = bridge._handler(id);
        if (handler) handler.message(sid ?? null, typeof data === "string" ? data : asBuffer(data));
    }],
    close: [3, (bridge, id, sid, code, reason, by) => {
        const handler = bridge._handler(id);
        if (handler) handler.close(sid ?? null, code, reason || "", by || null);
    }],
    error: [3, (bridge, id, sid, text) => {
        const handler = bridge._handler(id);
        if (handler) handler.error(sid ?? null, String(text));
    }],
    client_state: [3, (bridge, id, state, info) => {
        const handler = bridge._handler(id);
        if (handler && handler.clientState) handler.clientState(String(state), info || {});
    }],
    listening: [1, (bridge, id) => bridge._listening(id)],
    closed: [1, (bridge, id) => bridge.owners.closed(id)],
    stream_data: [2, (bridge, sid, data) => bridge.relay.data(sid, data)],
    stream_end: [1, (bridge, sid) => bridge.relay.end(sid)],
    stream_pause: [1, (bridge, sid) => bridge.relay.pause(sid)],
    stream_resume: [1, (bridge, sid) => bridge.relay.resume(sid)],
};

class Bridge {
    /** limits: options.js LIMITS, some replaced (tests pass shorter ones). */
    constructor(limits = {}) {
        this.limits = Object.assign({}, LIMITS, limits);
        this.rawSettings = {};
        this.log = new BridgeLog();
        this.owners = new Owners();
        this.worker = new WorkerProcess({
            log: this.log,
            limits: this.limits,
            rawSettings: () => this.rawSettings,
            configureOptions: () => configureOptions(this.settings()),
            wanted: () => this.owners.size > 0 || this.handoff.pending.length > 0,
            onFrames: (frames) => this._dispatch(frames),
            onReady: () => this._declareAll(),
            onLost: () => this._workerLost(),
            onState: (state, detail) => this._workerState(state, detail),
        });
        this.relay = new Relay(this.worker);
        this.handoff = new Handoff({ worker: this.worker, relay: this.relay, owners: this.owners, log: this.log,
            limits: this.limits, settings: () => this.settings() });
        watchShutdown();
    }

    /** Latest settings, logger and translate function (each Node-RED load brings its own RED). */
    configure({ settings, log, translate }) {
        this.rawSettings = settings || {};
        this.log.configure(log, translate);
    }

    /** The settings.js values, validated (options.js); a bad value is logged once. */
    settings() {
        return settingsValues(this.rawSettings, (name, value, expected, fallback) =>
            this.log.warn("websocket.errors.bad-setting", { name, value: JSON.stringify(value), expected,
                default: JSON.stringify(fallback) }));
    }

    /** Declares an endpoint ("listen") or a client connection ("connect"); returns its id. */
    add(kind, options, handler) {
        const owner = this.owners.add(kind, options, handler);
        if (this.worker.isReady()) {
            this._declare(owner);
        } else {
            handler.workerState(this.worker.state === "idle" ? "starting" : this.worker.state, this.worker.detail);
        }
        this.worker.need();
        return owner.id;
    }

    /** Removes an owner; resolves when the worker has closed everything of it (bounded). */
    remove(id) {
        const owner = this.owners.get(id);
        if (!owner || owner.removing) return Promise.resolve();
        owner.removing = true;
        this.handoff.drop(id);
        if (!this.worker.isReady()) {
            this.owners.delete(id);
            return Promise.resolve();
        }
        const closed = this.owners.waitClosed(id, this.limits.undeclareTimeoutMs);
        this.worker.send([owner.kind === "listen" ? "unlisten" : "disconnect", id]);
        return closed;
    }

    /**
     * Sends text (string) or binary (Buffer) to session sid of owner id, or to all its sessions
     * when sid is null. Returns "sent", "not-ready" (no worker serves the owner now) or "busy"
     * (the worker does not take its data: see event-channel.js); `force` sends even then.
     */
    send(id, sid, data, { force = false } = {}) {
        if (!this.worker.isReady() || !this.owners.get(id)) return "not-ready";
        const frame = ["send", id, sid, data];
        if (force) {
            this.worker.send(frame);
            return "sent";
        }
        return this.worker.trySend(frame) ? "sent" : "busy";
    }

    /**
     * Closes session sid of endpoint id, or every session when sid is null, with code and reason
     * (checked by the caller). Returns "sent" or "not-ready".
     */
    closeSession(id, sid, code, reason) {
        if (!this.worker.isReady() || !this.owners.get(id)) return "not-ready";
        this.worker.send(["close_session", id, sid, code, reason]);
        return "sent";
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
        if (!this.worker.isReady()) return "not-ready";
        this.worker.send(["client_action", id, action, options]);
        return "sent";
    }

    /** Gives an upgraded listener connection to the worker (handoff.js). */
    accept(id, sid, req, socket, head) {
        this.handoff.accept(id, sid, req, socket, head);
    }

    isReady() {
        return this.worker.isReady();
    }

    get workerPid() {
        return this.worker.pid;
    }

    _dispatch(frames) {
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
                event[1](this, frame[1], frame[2], frame[3], frame[4], frame[5]);
            }
        }
    }

    _handler(id) {
        const owner = this.owners.get(id);
        return owner ? owner.handler : null;
    }

    _listening(id) {
        const owner = this.owners.get(id);
        if (!owner) return;
        owner.listening = true;
        this.handoff.listening(id);
    }

    _declare(owner) {
        this.worker.send([owner.kind, owner.id, owner.options]);
    }

    _declareAll() {
        for (const owner of this.owners.live()) this._declare(owner);
    }

    _workerLost() {
        this.relay.dropAll();
        this.owners.workerGone();
        for (const owner of this.owners.live()) owner.handler.workerLost();
    }

    _workerState(state, detail) {
        if (state === "failed") this.handoff.failAll();
        for (const owner of this.owners.live()) owner.handler.workerState(state, detail);
    }
}

let shared = null;

/** The process-wide bridge. */
function getBridge() {
    if (!shared) shared = new Bridge();
    return shared;
}

module.exports = { getBridge, Bridge };
