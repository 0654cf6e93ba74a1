/**
 * The byte relay: the fallback for listener connections that cannot be handed over (TLS,
 * Windows, or pyWebsocketListenerHandoff false). The peer's bytes go to the worker as
 * `stream_data` frames on the event channel, the worker's come back as `stream_data`, and either
 * side's end closes the other.
 *
 * A relayed socket is not read while the worker asks (`stream_pause`, its flow control) or while
 * the event channel holds more than its bound (a stuck worker); it is read again when neither
 * holds it.
 */
"use strict";

const { asBuffer } = require("./protocol");

class Relay {
    constructor() {
        this.streams = new Map(); // sid -> {socket, worker, pausedByWorker, pausedByChannel}
    }

    /**
     * Starts relaying a connection whose rebuilt HTTP request and first bytes are given, to
     * `worker` (send(frame), congested, onceWritable(callback): a WorkerProcess).
     */
    open({ id, sid, request, head, socket }, worker) {
        const stream = { socket, worker, pausedByWorker: false, pausedByChannel: false };
        this.streams.set(sid, stream);
        const peer = socket.remoteAddress ? [socket.remoteAddress, socket.remotePort] : null;
        worker.send(["stream_open", id, sid, Buffer.from(request, "latin1"), head, peer]);
        socket.on("data", (chunk) => {
            worker.send(["stream_data", sid, chunk]);
            if (worker.congested && !stream.pausedByChannel) {
                stream.pausedByChannel = true;
                this._update(stream);
                worker.onceWritable(() => {
                    stream.pausedByChannel = false;
                    this._update(stream);
                });
            }
        });
        const ended = () => {
            if (this.streams.get(sid) === stream) {
                this.streams.delete(sid);
                worker.send(["stream_end", sid]);
            }
        };
        // Node-RED's HTTP server allows half-open sockets: a peer that ends its side (as `ws` does
        // once both close frames went by a server-initiated close) must see ours end too.
        socket.on("end", () => {
            ended();
            socket.end();
        });
        socket.on("close", ended);
        socket.on("error", () => {});
        socket.resume();
    }

    /** Bytes from the worker for the peer. */
    data(sid, data) {
        const stream = this.streams.get(sid);
        if (stream) stream.socket.write(asBuffer(data));
    }

    /** The worker is done with the peer: close it once what was written before is flushed. */
    end(sid) {
        const stream = this.streams.get(sid);
        if (!stream) return;
        this.streams.delete(sid);
        stream.socket.end();
    }

    pause(sid) {
        this._setWorkerPause(sid, true);
    }

    resume(sid) {
        this._setWorkerPause(sid, false);
    }

    /** `worker` is gone: so is every connection relayed to it. */
    dropWorker(worker) {
        for (const [sid, stream] of Array.from(this.streams)) {
            if (stream.worker !== worker) continue;
            this.streams.delete(sid);
            stream.socket.destroy();
        }
    }

    _setWorkerPause(sid, paused) {
        const stream = this.streams.get(sid);
        if (!stream) return;
        stream.pausedByWorker = paused;
        this._update(stream);
    }

    _update(stream) {
        if (stream.pausedByWorker || stream.pausedByChannel) stream.socket.pause();
        else stream.socket.resume();
    }
}

module.exports = { Relay };
