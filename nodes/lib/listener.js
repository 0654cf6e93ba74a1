/**
 * The listener role of a config node ("Listen on"): an endpoint at httpNodeRoot + path on
 * Node-RED's own HTTP server, served by the worker. Its state: the route on the server
 * (upgrade-router.js), the endpoint's owner id on the bridge, the open sessions (with the
 * identity of each, when the listener authenticates), whose arrivals and departures it announces
 * to the in/out nodes ("opened", "closed" with the count and the session id, "session-error") as
 * core does, and as connection events to the in nodes that want them (connection-events.js); and
 * the last sessions that went, with why, so that a reply to one of them can say why it was not
 * delivered. With a backplane (other Node-RED instances serving the same path through Redis) it
 * also follows the backplane's state as each worker reports it ("backplane": down while any
 * worker's link is down), lets a reply or close for another instance's session through, and
 * keeps the count of the other instances' sessions that each worker reports: the total ("total",
 * and `total` with "opened", "closed" and "backplane") is this instance's sessions, counted here
 * over every worker, plus the other instances' as the first worker (in slot order) that knows
 * them says. Each worker counts the other instances alike; taking one worker's word, not a sum,
 * counts each of them once.
 */
"use strict";

const { routesFor, fullPathOf } = require("./upgrade-router");
const { listenOptions, listenerProperties } = require("./options");
const { connectEvent, disconnectEvent, errorEvent } = require("./connection-events");

// Sessions remembered after they went (for the error of a reply to one of them).
const GONE_KEPT = 1000;

class Listener {
    constructor(node, RED, bridge, n = {}) {
        this.node = node;
        this.RED = RED;
        this.bridge = bridge;
        this.sessions = new Map(); // sid -> user (null without authentication)
        this.gone = new Map(); // sid -> {code, reason, by, error, workerLost?}, the last GONE_KEPT
        this.errors = new Map(); // sid -> the error text of an open session the worker failed
        this.ownerId = null;
        this.route = null;
        this.backplaneStates = new Map(); // worker -> "up" | "down", as each last reported it
        this.backplaneDown = false;
        this.remoteCounts = new Map(); // worker -> other instances' sessions (null: unknown), as each last reported it
        this.remote = null; // what the status shows of them
        const props = listenerProperties(n, node.credentials, bridge.settings());
        for (const problem of props.problems) node.error(RED._("websocket.errors.bad-listener", { problem }));
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
        this.ownerId = bridge.add("listen", listenOptions(bridge.settings(), this.fullPath, props), this._events());
        this.route = {
            verifyClient: RED.settings.webSocketNodeVerifyClient,
            accept: (req, socket, head) => bridge.accept(this.ownerId, RED.util.generateId(), req, socket, head),
        };
        routes.set(this.fullPath, this.route);
    }

    /** The bridge's news of this endpoint. */
    _events() {
        const node = this.node;
        const listener = this;
        const { sessions, gone, errors, backplaneStates, remoteCounts } = this;
        const backplaneChanged = () => {
            const down = Array.from(backplaneStates.values()).includes("down");
            if (down === listener.backplaneDown) return;
            listener.backplaneDown = down;
            node.emit("backplane", { state: down ? "down" : "up", count: sessions.size, total: listener.total() });
        };
        const remoteChanged = () => {
            let remote = null;
            let slot = Infinity;
            for (const [worker, count] of remoteCounts) {
                if (count !== null && worker.slot < slot) [remote, slot] = [count, worker.slot];
            }
            if (remote === listener.remote) return;
            listener.remote = remote;
            node.emit("total", { count: sessions.size, total: listener.total() });
        };
        const events = {
            open(sid, info) {
                const user = info.user || null;
                sessions.set(sid, user);
                node.emit("opened", { count: sessions.size, id: sid, total: listener.total() });
                if (node.wantsEvents()) node.deliverEvent(connectEvent(sid, info));
            },
            message(sid, data) {
                node.deliver(sid, data, sessions.get(sid));
            },
            close(sid, code, reason, by) {
                if (!sessions.has(sid)) return;
                const user = sessions.get(sid);
                sessions.delete(sid);
                const error = errors.get(sid) || null;
                if (error !== null) errors.delete(sid);
                gone.set(sid, { code, reason, by: by || "client", error });
                if (gone.size > GONE_KEPT) gone.delete(gone.keys().next().value);
                node.emit("closed", { count: sessions.size, id: sid, total: listener.total() });
                if (node.wantsEvents()) node.deliverEvent(disconnectEvent(sid, user, code, reason, by || "client"));
            },
            error(sid, text) {
                if (sessions.has(sid)) errors.set(sid, text);
                node.emit("session-error", { err: new Error(text), id: sid });
                if (node.wantsEvents()) node.deliverEvent(errorEvent(sid, sessions.get(sid) || null, text));
            },
            workerState(state, detail) {
                node.emit("worker", { state, detail });
            },
            // The sessions that went with a worker (null: all of them).
            workerLost(sids, worker) {
                for (const sid of sids || Array.from(sessions.keys())) {
                    events.close(sid, 1006, "", "error");
                    // Not dropped by the worker for something the client did: the worker itself is
                    // gone (already logged and shown), so a reply still on its way is not an error.
                    const why = gone.get(sid);
                    if (why) why.workerLost = true;
                }
                if (backplaneStates.delete(worker)) backplaneChanged();
                if (remoteCounts.delete(worker)) remoteChanged();
            },
            // A worker's link to the other instances is "up" or "down" (info: url, error, lost).
            backplane(worker, state) {
                backplaneStates.set(worker, state);
                backplaneChanged();
            },
            // The sessions of the path on the other instances, as a worker sees them (null: unknown).
            remoteCount(worker, count) {
                remoteCounts.set(worker, count);
                remoteChanged();
            },
        };
        return events;
    }

    /** Sessions of the path on every instance of the backplane, or undefined while not known. */
    total() {
        return this.remote === null ? undefined : this.sessions.size + this.remote;
    }

    /** Why session sid is not open: {code, reason, by, error, workerLost?} if it went lately, else null. */
    whyGone(sid) {
        return this.gone.get(sid) || null;
    }

    /**
     * Closes session sid (every session when sid is null) with code and reason. Returns "sent",
     * "gone" (no such session: nothing to do) or "not-ready" (no worker serves the endpoint now).
     */
    closeSessions(sid, code, reason) {
        if (this.ownerId === null) return "not-ready";
        if (sid !== null && !this.sessions.has(sid) && !this.bridge.isRemoteSession(this.ownerId, sid)) return "gone";
        return this.bridge.closeSession(this.ownerId, sid, code, reason);
    }

    usersChanged() {
        return Promise.resolve(); // an endpoint listens whether or not in/out nodes use it, as core
    }

    /** To every session (none while the worker restarts, as with no clients). */
    sendMessage(data) {
        if (this.ownerId === null) return "sent";
        return this.bridge.send(this.ownerId, null, data) === "busy" ? "busy" : "sent";
    }

    /**
     * To session sid only; nothing when it is gone. A session of another instance (backplane)
     * is not known here: the reply is published to its instance, which drops it if it is gone.
     */
    reply(sid, data) {
        if (this.ownerId === null) return "ignored";
        if (!this.sessions.has(sid) && !this.bridge.isRemoteSession(this.ownerId, sid)) return "ignored";
        return this.bridge.send(this.ownerId, sid, data) === "busy" ? "busy" : "sent";
    }

    close() {
        if (this.route) {
            const routes = routesFor(this.RED.server);
            if (routes.get(this.fullPath) === this.route) routes.delete(this.fullPath);
        }
        this.sessions.clear();
        this.gone.clear();
        this.errors.clear();
        this.backplaneStates.clear();
        this.remoteCounts.clear();
        this.remote = null;
        const id = this.ownerId;
        this.ownerId = null;
        return id === null ? Promise.resolve() : this.bridge.remove(id);
    }
}

module.exports = { Listener };
