/**
 * The owners the nodes declare on the bridge: a listener endpoint ("listen") or a client
 * connection ("connect"). Each has an id unique for the life of the bridge (endpoints and clients
 * share one id space), the options sent again to every new worker, its handler, and where it is
 * served: an endpoint on every worker (`listening`: the workers that said so, and with several
 * workers `placed`: which worker holds each open session), a client connection on one (`worker`).
 *
 * A handler has: open(sid, info), message(sid, data), close(sid, code, reason, by), error(sid, text),
 * workerState(state, detail) and workerLost(sids) (the sessions of the owner that went with a
 * worker: an array of session ids, or null for all of them); a client connection's also
 * clientState(state, info).
 */
"use strict";

class Owners {
    constructor() {
        this.byId = new Map();
        this.nextId = 1;
        this.closeWaiters = new Map();
    }

    add(kind, options, handler) {
        const owner = { id: this.nextId++, kind, options, handler, removing: false, listening: new Set(),
            placed: null, worker: null };
        this.byId.set(owner.id, owner);
        return owner;
    }

    get(id) {
        return this.byId.get(id);
    }

    delete(id) {
        this.byId.delete(id);
    }

    get size() {
        return this.byId.size;
    }

    /** The owners not being removed: those that still want a worker's service and its news. */
    *live() {
        for (const owner of this.byId.values()) {
            if (!owner.removing) yield owner;
        }
    }

    /**
     * Resolves once each of `workers` said `closed` for id or went away, or after timeoutMs,
     * whichever comes first; the owner is forgotten then.
     */
    waitClosed(id, workers, timeoutMs) {
        return new Promise((resolve) => {
            const waiting = new Set(workers);
            const finish = () => {
                clearTimeout(timer);
                this.closeWaiters.delete(id);
                this.byId.delete(id);
                resolve();
            };
            const timer = setTimeout(finish, timeoutMs);
            this.closeWaiters.set(id, { waiting, finish });
        });
    }

    closed(id, worker) {
        const waiter = this.closeWaiters.get(id);
        if (!waiter) return;
        waiter.waiting.delete(worker);
        if (waiter.waiting.size === 0) waiter.finish();
    }

    /** `worker` is gone: nothing of any owner is left in it. */
    workerGone(worker) {
        for (const id of Array.from(this.closeWaiters.keys())) this.closed(id, worker);
        for (const owner of this.byId.values()) owner.listening.delete(worker);
    }
}

module.exports = { Owners };
