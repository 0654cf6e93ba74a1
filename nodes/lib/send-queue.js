/**
 * The messages `out` holds for a client connection that is down, sent in order after the
 * reconnect. Bounded (pyWebsocketClientQueueSize, 0 = no queue): past the bound the oldest are
 * dropped and counted, for one warning that says how many.
 */
"use strict";

class SendQueue {
    constructor(limit) {
        this.limit = limit;
        this.items = [];
        this.dropped = 0;
    }

    get enabled() {
        return this.limit > 0;
    }

    get length() {
        return this.items.length;
    }

    push(data) {
        this.items.push(data);
        if (this.items.length > this.limit) {
            this.items.shift();
            this.dropped++;
        }
    }

    /** Everything queued, oldest first; the queue is empty afterwards. */
    takeAll() {
        const items = this.items;
        this.items = [];
        return items;
    }

    /** Items taken but not sent, back at the head of the queue. */
    putBack(items) {
        this.items = items.concat(this.items);
    }

    /** How many were dropped since the last call. */
    takeDropped() {
        const dropped = this.dropped;
        this.dropped = 0;
        return dropped;
    }
}

module.exports = { SendQueue };
