/**
 * The event channel to one worker (fd 4, an AF_UNIX socketpair): frames in, decoded as they
 * arrive (protocol.js), and frames out, coalesced: what is sent during one event-loop turn goes
 * out in one write (~400 syscalls per 100k frames instead of one each).
 *
 * It also keeps a worker that is alive but stuck from hurting Node-RED:
 *  - write() backpressure is respected: while the socket holds an earlier write, frames wait
 *    here (still coalesced) until it drains;
 *  - what waits is bounded: trySend() refuses data once more than `maxWaitingBytes` wait, so a
 *    flow sending to a stuck worker gets an error instead of growing Node-RED's memory;
 *  - a worker that takes nothing for `stallTimeoutMs` while data waits is reported stuck.
 *
 * Flow control (docs/protocol.md): delivered() counts a `message` event handed to the flows; the
 * count goes back as `["ack", n]` from a setImmediate, so acknowledgements slow down exactly when
 * Node-RED's event loop falls behind, and the worker then stops reading its sockets.
 */
"use strict";

// Queued bytes from which a flush writes the frames one by one (corked) instead of joining them.
const LARGE_WRITE_BYTES = 256 * 1024;

const { encodeFrame, encodePieces, hasLargePayload, FrameDecoder } = require("./protocol");

class EventChannel {
    /**
     * handlers: onFrames(frames) (a FrameError in place of a frame that did not decode),
     * onBroken(err) (the stream is corrupt), onStuck(). limits: maxWaitingBytes, stallTimeoutMs.
     */
    constructor(stream, handlers, limits) {
        this.stream = stream;
        this.handlers = handlers;
        this.limits = limits;
        this.queue = [];
        this.queuedBytes = 0;
        this.flushScheduled = false;
        this.blocked = false; // the stream has not taken the last write yet
        this.stallTimer = null;
        this.writableWaiters = [];
        this.unacked = 0;
        this.ackScheduled = false;
        this.closed = false;
        this.decoder = new FrameDecoder();
        this.onDrain = () => this._drained();
        stream.on("data", (chunk) => this._read(chunk));
        stream.on("drain", this.onDrain);
        stream.on("error", () => {}); // the child's exit tells what happened
    }

    /** Bytes written but not yet taken by the worker, plus those waiting here. */
    get waitingBytes() {
        return this.queuedBytes + (this.stream.writableLength || 0);
    }

    /** More is waiting than the bound allows: data is refused, relayed sockets should pause. */
    get congested() {
        return this.waitingBytes > this.limits.maxWaitingBytes;
    }

    /** Queues a frame, whatever waits (commands and the bytes of a socket already read). */
    send(frame) {
        if (this.closed) return;
        // Most frames are one small Buffer: queued as it is, no pieces array per message.
        if (hasLargePayload(frame)) this.sendEncoded(encodePieces(frame));
        else this._queue(encodeFrame(frame));
    }

    /** Queues a frame already encoded (encodePieces): one broadcast, encoded once for every worker. */
    sendEncoded(pieces) {
        if (this.closed) return;
        for (const bytes of pieces) this._queue(bytes);
    }

    _queue(bytes) {
        this.queue.push(bytes);
        this.queuedBytes += bytes.length;
        if (!this.flushScheduled && !this.blocked) {
            this.flushScheduled = true;
            setImmediate(() => this._flush());
        }
    }

    /** Queues a data frame unless the channel is congested; false when refused. */
    trySend(frame) {
        if (this.congested) return false;
        this.send(frame);
        return true;
    }

    /** Calls back once the channel is no longer congested (or is closed). */
    onceWritable(callback) {
        if (this.closed || !this.congested) {
            callback();
        } else {
            this.writableWaiters.push(callback);
        }
    }

    delivered() {
        this.unacked++;
        if (this.ackScheduled) return;
        this.ackScheduled = true;
        setImmediate(() => {
            this.ackScheduled = false;
            const count = this.unacked;
            this.unacked = 0;
            if (count > 0) {
                this.send(["ack", count]);
                this._flush();
            }
        });
    }

    /** The worker is gone: drop what waits, stop the timers, release the waiters. */
    close() {
        this.closed = true;
        this.queue = [];
        this.queuedBytes = 0;
        clearTimeout(this.stallTimer);
        this.stream.removeListener("drain", this.onDrain);
        this._releaseWaiters();
    }

    _read(chunk) {
        let frames;
        try {
            frames = this.decoder.push(chunk);
        } catch (err) {
            this.handlers.onBroken(err);
            return;
        }
        if (frames.length > 0) this.handlers.onFrames(frames);
    }

    _flush() {
        this.flushScheduled = false;
        if (!this.closed && !this.blocked && this.queue.length > 0) {
            const queue = this.queue;
            const total = this.queuedBytes;
            this.queue = [];
            this.queuedBytes = 0;
            if (!this._write(queue, total)) {
                this.blocked = true;
                this._watchStall(this._unsentBytes());
            }
        }
        if (this.writableWaiters.length > 0 && !this.congested) this._releaseWaiters();
    }

    /**
     * One write for many small frames (joined: one syscall); frames with a large payload are
     * written as they are, corked into one writev, not copied into a joined buffer.
     */
    _write(queue, total) {
        if (queue.length === 1) return this.stream.write(queue[0]);
        if (total < LARGE_WRITE_BYTES) return this.stream.write(Buffer.concat(queue, total));
        this.stream.cork();
        let ok = true;
        for (const bytes of queue) ok = this.stream.write(bytes) && ok;
        this.stream.uncork();
        return ok;
    }

    /** While blocked, checks every stallTimeoutMs that the worker took something. */
    _watchStall(unsentBefore) {
        this.stallTimer = setTimeout(() => {
            if (!this.blocked || this.closed) return;
            const unsent = this._unsentBytes();
            if (unsent < unsentBefore) this._watchStall(unsent);
            else this.handlers.onStuck();
        }, this.limits.stallTimeoutMs);
        if (this.stallTimer.unref) this.stallTimer.unref();
    }

    /** Bytes written to the socket that the kernel has not taken yet (libuv's write queue). */
    _unsentBytes() {
        const handle = this.stream._handle;
        return handle && typeof handle.writeQueueSize === "number" ? handle.writeQueueSize : this.stream.writableLength;
    }

    _drained() {
        this.blocked = false;
        clearTimeout(this.stallTimer);
        this.stallTimer = null;
        this._flush();
    }

    _releaseWaiters() {
        const waiters = this.writableWaiters;
        this.writableWaiters = [];
        for (const callback of waiters) callback();
    }
}

module.exports = { EventChannel };
