/**
 * Listener connections on their way to a worker. An upgraded socket is held until a worker
 * serves its endpoint (`listening`: fd 3 and fd 4 are not ordered with each other), at most
 * LIMITS.pendingConnectionMs, then handed over to the worker the bridge places it on: the socket
 * itself as a file descriptor on that worker's IPC channel (fd 3, docs/protocol.md), or, where
 * that cannot be (TLS, Windows, or pyWebsocketListenerHandoff false), its bytes through the relay
 * (relay.js). Node sends one handle per acknowledgement, so a socket may also wait in Node's queue
 * for that channel (a burst, a busy worker): at most LIMITS.pendingConnectionMs there too.
 */
"use strict";

const net = require("net");

const BYTES_WRITTEN = Object.getOwnPropertyDescriptor(net.Socket.prototype, "bytesWritten");

class Handoff {
    /**
     * host: place(id) (the worker, a WorkerProcess, that takes a connection for endpoint id now,
     * or null while none serves it), failed() (no worker will come), sessionId(id, sid, worker)
     * (the session's id once placed on worker), relay, owners, log (a BridgeLog), limits,
     * settings() (validated settings.js values).
     */
    constructor(host) {
        this.host = host;
        this.pending = [];
    }

    /** Takes an upgraded connection for endpoint `id` under session id `sid`. */
    accept(id, sid, req, socket, head) {
        let bytes = head && head.length ? head : Buffer.alloc(0);
        const relayed = this._mustRelay(socket);
        claim(socket);
        if (!relayed) {
            // Whatever Node already read goes with the request; then Node must stop reading the
            // fd, or it keeps reading (and dropping) bytes until the worker acknowledges the handle.
            if (socket.readableLength > 0) {
                const buffered = socket.read();
                if (buffered) bytes = Buffer.concat([bytes, buffered]);
            }
            if (socket._handle && typeof socket._handle.readStop === "function") socket._handle.readStop();
        }
        // The request as the client sent it; a relayed client's address goes in stream_open.
        const item = { id, sid, request: rebuildRequest(req), head: bytes, socket, relayed };
        const worker = this.host.place(id);
        if (worker) {
            this._deliver(item, worker);
            return;
        }
        if (this.host.failed()) {
            refuse(socket);
            return;
        }
        item.timer = setTimeout(() => {
            const at = this.pending.indexOf(item);
            if (at !== -1) {
                this.pending.splice(at, 1);
                socket.destroy();
            }
        }, this.host.limits.pendingConnectionMs);
        this.pending.push(item);
    }

    /** A worker serves endpoint `id` now: hand over the connections that waited for it. */
    listening(id) {
        for (const item of this._take((pending) => pending.id === id)) {
            const worker = this.host.place(id);
            if (worker) this._deliver(item, worker);
            else this._destroy([item]);
        }
    }

    /** Endpoint `id` is going away: so are the connections that waited for it. */
    drop(id) {
        this._destroy(this._take((pending) => pending.id === id));
    }

    /** No worker will come (Python missing, protocol mismatch): close everything that waits. */
    failAll() {
        this._destroy(this._take(() => true));
    }

    _take(predicate) {
        const taken = this.pending.filter(predicate);
        this.pending = this.pending.filter((item) => !predicate(item));
        return taken;
    }

    _destroy(items) {
        for (const item of items) {
            clearTimeout(item.timer);
            item.socket.destroy();
        }
    }

    _mustRelay(socket) {
        return Boolean(socket.encrypted) || process.platform === "win32" || this.host.settings().handoff === false;
    }

    _deliver(item, worker) {
        clearTimeout(item.timer);
        if (!this.host.owners.get(item.id)) {
            item.socket.destroy();
            return;
        }
        item.sid = this.host.sessionId(item.id, item.sid, worker);
        if (item.relayed) {
            this.host.relay.open(item, worker);
            return;
        }
        const meta = { e: item.id, s: item.sid, r: item.request, h: item.head.toString("base64") };
        const failed = (err) => this.host.log.warn("websocket.log.handoff-failed", { error: err.message });
        // Until Node has sent it (its send callback): Node never calls back for a handle still
        // queued when the worker goes away.
        const limit = this.host.limits.pendingConnectionMs;
        const timer = setTimeout(() => {
            item.socket.destroy();
            failed(new Error(`not taken by the worker within ${limit / 1000} s`));
        }, limit);
        // keepOpen, then close Node's copy of the fd ourselves once it is on its way: without
        // keepOpen Node books the socket as "detached" under the server's address key, which
        // collides for servers on port 0 and leaves server.close() waiting forever.
        try {
            worker.sendHandle(meta, item.socket, (err) => {
                clearTimeout(timer);
                item.socket.destroy();
                if (err) failed(err);
            });
        } catch (err) {
            clearTimeout(timer);
            failed(err);
            item.socket.destroy();
        }
    }
}

/**
 * Takes an upgraded socket over from Node-RED's runtime, which destroys one that has had nothing
 * written to it inboundWebSocketTimeout (5 s) after the upgrade ("nothing handled it"): one that
 * waits longer for a worker here was hung up without a word (issue 13's benchmark lost 900 of
 * 100,000 that way). From here on our own limits bound its wait; bytesWritten reads 1 until
 * something is really written.
 */
function claim(socket) {
    if (!BYTES_WRITTEN || typeof BYTES_WRITTEN.get !== "function") return;
    Object.defineProperty(socket, "bytesWritten", { configurable: true, enumerable: false,
        get() { return BYTES_WRITTEN.get.call(this) || 1; } });
}

/** Answers an upgrade request Node cannot pass on with 503 and closes its connection. */
function refuse(socket) {
    socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    socket.destroy();
}

/** The upgrade request as the client sent it (request line, raw headers), plus extra headers. */
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

module.exports = { Handoff, rebuildRequest, refuse };
