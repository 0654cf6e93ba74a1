/**
 * The listener role of a config node ("Listen on"): an endpoint at httpNodeRoot + path on
 * Node-RED's own HTTP server, served by the worker. Its state: the route on the server
 * (upgrade-router.js), the endpoint's owner id on the bridge, and the open sessions, whose
 * arrivals and departures it announces to the in/out nodes ("opened", "closed" with the count and
 * the session id, "session-error") as core does.
 */
"use strict";

const { routesFor, fullPathOf } = require("./upgrade-router");
const { listenOptions } = require("./options");

class Listener {
    constructor(node, RED, bridge) {
        this.node = node;
        this.RED = RED;
        this.bridge = bridge;
        this.sessions = new Set();
        this.ownerId = null;
        this.route = null;
        if (!RED.server) {
            node.error(RED._("websocket.errors.no-server"));
            return;
        }
        const routes = routesFor(RED.server);
        this.fullPath = fullPathOf(RED.settings.httpNodeRoot, node.path);
        if (routes.has(this.fullPath)) {
            node.error(RED._("websocket.errors.duplicate-path", { path: node.path }));
            return;
        }
        this.ownerId = bridge.add("listen", listenOptions(bridge.settings(), this.fullPath), this._events());
        this.route = {
            verifyClient: RED.settings.webSocketNodeVerifyClient,
            accept: (req, socket, head) => bridge.accept(this.ownerId, RED.util.generateId(), req, socket, head),
        };
        routes.set(this.fullPath, this.route);
    }

    /** The bridge's news of this endpoint. */
    _events() {
        const node = this.node;
        const sessions = this.sessions;
        const events = {
            open(sid) {
                sessions.add(sid);
                node.emit("opened", { count: sessions.size, id: sid });
            },
            message(sid, data) {
                node.deliver(sid, data);
            },
            close(sid) {
                if (sessions.delete(sid)) node.emit("closed", { count: sessions.size, id: sid });
            },
            error(sid, text) {
                node.emit("session-error", { err: new Error(text), id: sid });
            },
            workerState(state, detail) {
                node.emit("worker", { state, detail });
            },
            workerLost() {
                for (const sid of Array.from(sessions)) events.close(sid);
            },
        };
        return events;
    }

    usersChanged() {
        return Promise.resolve(); // an endpoint listens whether or not in/out nodes use it, as core
    }

    /** To every session (none while the worker restarts, as with no clients). */
    sendMessage(data) {
        if (this.ownerId === null) return "sent";
        return this.bridge.send(this.ownerId, null, data) === "busy" ? "busy" : "sent";
    }

    /** To session sid only; nothing when it is gone. */
    reply(sid, data) {
        if (this.ownerId === null || !this.sessions.has(sid)) return "ignored";
        return this.bridge.send(this.ownerId, sid, data) === "busy" ? "busy" : "sent";
    }

    close() {
        if (this.route) {
            const routes = routesFor(this.RED.server);
            if (routes.get(this.fullPath) === this.route) routes.delete(this.fullPath);
        }
        this.sessions.clear();
        const id = this.ownerId;
        this.ownerId = null;
        return id === null ? Promise.resolve() : this.bridge.remove(id);
    }
}

module.exports = { Listener };
