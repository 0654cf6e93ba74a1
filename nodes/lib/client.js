/**
 * The client role of a config node ("Connect to"): one connection to a ws:// or wss:// server,
 * declared on the worker while an in or out node uses the config node, and under the flow's
 * control (client-action.js). Its state is the table TRANSITIONS below; with it, the session id
 * the in/out nodes see (one per attempt, as core's `_session`), the last error warned about (a
 * connect error is warned once until it changes), the queue of messages held while the
 * connection is down (send-queue.js), and what the flow changed: whether it wants the connection
 * up, and the URL, headers and subprotocols its last `connect` actions gave.
 *
 * The worker answers every action with one `client_state` that says how many it has taken
 * (docs/protocol.md). Until it has taken them all, an `open` may be of a connection an action is
 * about to close: the connection counts as connected (and held messages go to it) only once the
 * worker is in step.
 */
"use strict";

const { StateMachine } = require("./state-machine");
const { SendQueue } = require("./send-queue");
const { upgradeHeaders, withHeaders, tlsOptions } = require("./client-handshake");
const { proxyFor } = require("./proxy");
const { connectOptions, clientProperties } = require("./options");
const { clientConnectEvent, disconnectEvent, errorEvent } = require("./connection-events");

const TRANSITIONS = {
    idle: ["down", "closed"], // no in/out node uses it: not declared
    // declared and not open: connecting, waiting to retry, or held (automatic connect off, a
    // disconnect action, or it gave up); messages are queued
    down: ["connected", "idle", "closed"],
    connected: ["down", "idle", "closed"],
    closed: [], // the config node was closed (redeploy, stop)
};

/** A URL as a status shows it: no credentials, query or fragment. */
function displayUrl(url) {
    try {
        const parsed = new URL(url);
        return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
    } catch (err) {
        return "";
    }
}

class ClientConnection {
    constructor(node, RED, bridge, props, n = {}) {
        this.node = node;
        this.RED = RED;
        this.bridge = bridge;
        this.props = props;
        this.own = clientProperties(n);
        for (const problem of this.own.problems) node.error(RED._("websocket.errors.bad-client", { problem }));
        this.machine = new StateMachine("client", TRANSITIONS, "idle", {
            onRefused: (detail) => node.error(RED._("websocket.log.internal", { detail })),
        });
        this.ownerId = null;
        this.sessionId = null;
        this.open = false; // the worker reported the current attempt open
        this.lastError = null;
        this.queue = new SendQueue(bridge.settings().clientQueueSize);
        this._forget();
    }

    get state() {
        return this.machine.state;
    }

    /** Connects while in/out nodes use the config node, and only then. */
    usersChanged(count) {
        if (count > 0) {
            this._connect();
            return Promise.resolve();
        }
        return this._disconnect();
    }

    /** To the server; held while the connection is down (oldest dropped past the bound). */
    sendMessage(data) {
        if (this.ownerId === null) return "not-connected";
        if (this.machine.is("connected") && this.queue.length === 0) {
            const result = this.bridge.send(this.ownerId, null, data);
            if (result !== "not-ready") return result;
        }
        if (!this.queue.enabled) return "not-connected";
        this.queue.push(data);
        return "queued";
    }

    /** A client connection has one session: a message carrying a _session is not sent back (as core). */
    reply() {
        return "ignored";
    }

    /**
     * A flow's action (client-action.js: {action, url?, headers?, subprotocols?}). What a connect
     * gives replaces that part until another connect gives it again. Returns "sent" or
     * "not-ready" (no worker now: the next one starts from what the flow asked).
     */
    clientAction(request) {
        if (this.ownerId === null) return "not-ready";
        let changed = false;
        for (const part of ["url", "headers", "subprotocols"]) {
            if (request[part] !== undefined) {
                this.overrides[part] = request[part];
                changed = true;
            }
        }
        this.wanted = request.action !== "disconnect";
        const options = this._options();
        const result = this.bridge.clientAction(this.ownerId, request.action, changed ? options : null, options);
        if (result === "sent") this.actionsSent++;
        // The open connection, if any, is about to close: nothing more goes to it.
        if (this.machine.is("connected") && (request.action !== "connect" || changed)) this.machine.to("down");
        return result;
    }

    close() {
        const closed = this._disconnect();
        this.machine.to("closed");
        return closed;
    }

    /** Back to the config node's own settings (it is not in use any more). */
    _forget() {
        this.wanted = this.own.autoConnect;
        this.overrides = {};
        this.actionsSent = 0;
        this.actionsTaken = 0;
    }

    /** The URL given at runtime, for the status, when it differs from the configured one. */
    _runtimeUrl() {
        const url = this.overrides.url;
        return url !== undefined && url !== this.props.path ? displayUrl(url) : null;
    }

    /** `connect` options from the config node, with what the flow's actions changed. */
    _options() {
        const { RED, node, props, own, overrides } = this;
        const url = overrides.url ?? props.path;
        return connectOptions(this.bridge.settings(), {
            url,
            subprotocols: overrides.subprotocols ?? props.subprotocol.filter((p) => p),
            headers: withHeaders(upgradeHeaders(RED, node, { ...props, origin: own.origin }), overrides.headers || []),
            heartbeat: props.heartbeatSeconds,
            tls: tlsOptions(RED, props.tls),
            proxy: proxyFor(url, RED.settings.proxyOptions),
            auto: this.wanted,
            reconnect: own.reconnect,
        });
    }

    _connect() {
        if (!this.machine.is("idle")) return;
        this.machine.to("down");
        this.ownerId = this.bridge.add("connect", this._options(), this._events());
    }

    _disconnect() {
        if (this.ownerId === null) return Promise.resolve();
        const id = this.ownerId;
        this.ownerId = null;
        this.sessionId = null;
        this.open = false;
        this.machine.to("idle");
        this._forget();
        this._warnDropped();
        this.queue.takeAll();
        return this.bridge.remove(id);
    }

    /** Whether the worker has taken every action sent to it. */
    _inStep() {
        return this.actionsTaken === this.actionsSent;
    }

    _connected() {
        if (this.open && this.machine.is("down") && this._inStep()) {
            this.machine.to("connected");
            this._flush();
        }
    }

    _events() {
        const self = this;
        const node = this.node;
        const events = {
            open(sid, info) {
                if (self.machine.is("idle", "closed")) return;
                self.open = true;
                self.lastError = null;
                self.sessionId = self.sessionId || self.RED.util.generateId();
                node.emit("opened", { count: "", id: self.sessionId, url: self._runtimeUrl() });
                if (node.wantsEvents()) node.deliverEvent(clientConnectEvent(self.sessionId, info));
                self._connected();
            },
            message(sid, data) {
                node.deliver(self.sessionId, data);
            },
            // After an open, or after a failed attempt (error, then close), as core's client.
            close(sid, code, reason, by) {
                const id = self.sessionId || self.RED.util.generateId();
                if (self.machine.is("connected")) self.machine.to("down");
                const wasOpen = self.open;
                self.open = false;
                self.sessionId = null;
                node.emit("closed", { count: "", id });
                if (wasOpen && node.wantsEvents()) node.deliverEvent(disconnectEvent(id, null, code, reason, by || "server"));
                // Held down by the flow: the worker said so before this close; say it again after it.
                if (!self.wanted) node.emit("client-state", { state: "idle", gaveUp: 0, url: self._runtimeUrl() });
            },
            error(sid, text) {
                self.sessionId = self.sessionId || self.RED.util.generateId();
                if (text !== self.lastError) {
                    self.lastError = text;
                    node.warn(self.RED._("websocket.errors.connect-error") + text);
                }
                node.emit("session-error", { err: new Error(text), id: self.sessionId });
                if (node.wantsEvents()) node.deliverEvent(errorEvent(self.sessionId, null, text));
            },
            // The worker's state of the connection: "connecting", "waiting", "idle" or "open".
            clientState(state, info) {
                if (Number.isInteger(info.actions)) self.actionsTaken = info.actions;
                if (state === "open") {
                    self._connected();
                    return;
                }
                node.emit("client-state", { state, delay: info.delay, gaveUp: info.gave_up || 0, url: self._runtimeUrl() });
            },
            workerState(state, detail) {
                node.emit("worker", { state, detail });
            },
            workerLost() {
                if (self.open) events.close(null, 1006, "", "error");
                self.actionsSent = 0; // a new worker starts from the declared options
                self.actionsTaken = 0;
            },
        };
        return events;
    }

    /** The connection is up: what was held goes first, in order. */
    _flush() {
        this._warnDropped();
        const items = this.queue.takeAll();
        for (let i = 0; i < items.length; i++) {
            // Bounded by the queue's size, so it goes even to a congested channel.
            if (this.bridge.send(this.ownerId, null, items[i], { force: true }) === "not-ready") {
                this.queue.putBack(items.slice(i));
                return;
            }
        }
    }

    _warnDropped() {
        const dropped = this.queue.takeDropped();
        if (dropped > 0) {
            this.node.warn(this.RED._("websocket.errors.queue-overflow", { count: dropped, limit: this.queue.limit }));
        }
    }
}

module.exports = { ClientConnection, TRANSITIONS, displayUrl };
