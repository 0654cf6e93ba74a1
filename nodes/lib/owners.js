/**
 * The owners the nodes declare on the bridge: a listener endpoint ("listen") or a client
 * connection ("connect"). Each has an id unique for the life of the bridge (endpoints and clients
 * share one id space), the options sent again to every new worker, its handler, and whether the
 * worker serves it yet (`listening`, endpoints only).
 *
 * A handler has: open(sid, info), message(sid, data), close(sid, code, reason, by), error(sid, text),
 * workerState(state, detail) and workerLost() (every session of the owner went with the worker);
 * a client connection's also clientState(state, info).
 */
"use strict";

class Owners {
    constructor() {
        this.byId = new Map();
        this.nextId = 1;
        this.closeWaiters = new Map();
    }

    add(kind, options, handler) {
        const owner = { id: this.nextId++, kind, options, handler, removing: false, listening: false };
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
     * Resolves once the worker said `closed` for id, the worker went away, or after timeoutMs,
     * whichever comes first; the owner is forgotten then.
     */
    waitClosed(id, timeoutMs) {
        return new Promise((resolve) => {
            const finish = () => {
                clearTimeout(timer);
                this.closeWaiters.delete(id);
                this.byId.delete(id);
                resolve();
            };
            const timer = setTimeout(finish, timeoutMs);
            this.closeWaiters.set(id, finish);
        });
    }

    closed(id) {
        const finish = this.closeWaiters.get(id);
        if (finish) finish();
    }

    /** The worker is gone: nothing of any owner is left in it. */
    workerGone() {
        for (const finish of Array.from(this.closeWaiters.values())) finish();
        for (const owner of this.byId.values()) owner.listening = false;
    }
}

module.exports = { Owners };
