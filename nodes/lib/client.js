/**
 * The client role of a config node ("Connect to"): one connection to a ws:// or wss:// server,
 * kept up by the worker while an in or out node uses the config node. Its state is the table
 * TRANSITIONS below; with it, the session id the in/out nodes see (one per connection, as core's
 * `_session`), the last error warned about (a connect error is warned once until it changes), and
 * the queue of messages held while the connection is down (send-queue.js).
 */
"use strict";

const { StateMachine } = require("./state-machine");
const { SendQueue } = require("./send-queue");
const { upgradeHeaders, tlsOptions } = require("./client-handshake");
const { proxyFor } = require("./proxy");
const { connectOptions } = require("./options");

const TRANSITIONS = {
    idle: ["connecting", "closed"], // no in/out node uses it: no connection
    connecting: ["connected", "idle", "closed"], // declared; the worker connects, or retries
    connected: ["connecting", "idle", "closed"],
    closed: [], // the config node was closed (redeploy, stop)
};

class ClientConnection {
    constructor(node, RED, bridge, props) {
        this.node = node;
        this.RED = RED;
        this.bridge = bridge;
        this.props = props;
        this.machine = new StateMachine("client", TRANSITIONS, "idle", {
            onRefused: (detail) => node.error(RED._("websocket.log.internal", { detail })),
        });
        this.ownerId = null;
        this.sessionId = null;
        this.lastError = null;
        this.queue = new SendQueue(bridge.settings().clientQueueSize);
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

    close() {
        const closed = this._disconnect();
        this.machine.to("closed");
        return closed;
    }

    _connect() {
        if (!this.machine.is("idle")) return;
        const { RED, node, props } = this;
        this.machine.to("connecting");
        this.ownerId = this.bridge.add("connect", connectOptions(this.bridge.settings(), {
            url: props.path,
            subprotocols: props.subprotocol.filter((p) => p),
            headers: upgradeHeaders(RED, node, props),
            heartbeat: props.heartbeatSeconds,
            tls: tlsOptions(RED, props.tls),
            proxy: proxyFor(props.path, RED.settings.proxyOptions),
        }), this._events());
    }

    _disconnect() {
        if (this.ownerId === null) return Promise.resolve();
        const id = this.ownerId;
        this.ownerId = null;
        this.sessionId = null;
        this.machine.to("idle");
        this._warnDropped();
        this.queue.takeAll();
        return this.bridge.remove(id);
    }

    _events() {
        const self = this;
        const node = this.node;
        const events = {
            open() {
                if (!self.machine.is("connecting")) return;
                self.machine.to("connected");
                self.lastError = null;
                self.sessionId = self.sessionId || self.RED.util.generateId();
                node.emit("opened", { count: "", id: self.sessionId });
                self._flush();
            },
            message(sid, data) {
                node.deliver(self.sessionId, data);
            },
            // After an open, or after a failed attempt (error, then close), as core's client.
            close() {
                const id = self.sessionId || self.RED.util.generateId();
                if (self.machine.is("connected")) self.machine.to("connecting");
                self.sessionId = null;
                node.emit("closed", { count: "", id });
            },
            error(sid, text) {
                self.sessionId = self.sessionId || self.RED.util.generateId();
                if (text !== self.lastError) {
                    self.lastError = text;
                    node.warn(self.RED._("websocket.errors.connect-error") + text);
                }
                node.emit("session-error", { err: new Error(text), id: self.sessionId });
            },
            workerState(state, detail) {
                node.emit("worker", { state, detail });
            },
            workerLost() {
                if (self.machine.is("connected")) events.close();
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

module.exports = { ClientConnection, TRANSITIONS };
