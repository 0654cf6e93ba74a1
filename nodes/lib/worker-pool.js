/**
 * The bridge's worker processes: `pyWebsocketWorkers` of them (options.js), each a WorkerProcess
 * (worker-process.js) with its own event channel and handoff channel, supervised and restarted
 * on its own. Node passes sockets to a child one per acknowledgement round trip, so two channels
 * are two queues side by side: that, more than CPU, is what more workers buy for connects.
 *
 * It owns where work goes and what the workers look like together:
 *  - a listener connection goes to one of the workers that serve its endpoint, in turn (round
 *    robin: measured against "fewest sessions" in bench/, see README's Performance);
 *  - a client connection goes to the worker with the fewest client connections, and stays there
 *    (after a crash its replacement takes it back);
 *  - the pool's state, which a listener shows: ready while any worker is, else the most hopeful
 *    of theirs (installing, starting, restarting, failed);
 *  - Python is set up once for all of them: a worker starting while another sets it up waits
 *    for that set-up instead of running its own (two pip installs into one venv would collide).
 *
 * A WorkerProcess keeps its place (its slot) across restarts: the bridge can name a worker by it.
 */
"use strict";

const { WorkerProcess } = require("./worker-process");
const { preparePython } = require("./python-env");

// The state a listener shows when no worker is ready: the first of these any worker is in.
const HOPE = ["installing", "starting", "restarting", "failed", "stopped", "idle"];

class WorkerPool {
    /**
     * host: as a WorkerProcess's (rawSettings(), log, limits, wanted()), with configureOptions(worker),
     * onFrames(worker, frames), onReady(worker), onLost(worker), onState(worker) naming the worker.
     */
    constructor(host, size = 1) {
        this.host = host;
        this.workers = [];
        this.turn = 0; // round robin of listener connections
        this.preparing = null; // {promise, installing, progress}: the set-up in flight
        this.resize(size);
    }

    get size() {
        return this.workers.length;
    }

    /**
     * Makes the pool `size` workers. New ones start when needed (need()); the ones beyond `size`
     * are stopped for good. The bridge resizes only while nothing is declared.
     */
    resize(size) {
        while (this.workers.length > size) this.workers.pop().retire();
        while (this.workers.length < size) this.workers.push(this._create(this.workers.length));
    }

    /** Something is declared: start every worker that is not running or coming. */
    need() {
        for (const worker of this.workers) worker.need();
    }

    /** Every worker is ready. */
    isReady() {
        return this.workers.every((worker) => worker.isReady());
    }

    /** Every worker failed (Python missing or unusable): nothing will serve until the next deploy. */
    failed() {
        return this.workers.every((worker) => worker.state === "failed");
    }

    /** What the pool looks like as a whole: {state, detail} (see the header). */
    summary() {
        let best = null;
        for (const worker of this.workers) {
            if (worker.isReady()) return { state: "ready", detail: null };
            if (best === null || HOPE.indexOf(worker.state) < HOPE.indexOf(best.state)) best = worker;
        }
        return best ? { state: best.state, detail: best.detail } : { state: "idle", detail: null };
    }

    /** The worker for a new listener connection: the next ready one, in turn, that `serves` it; or null. */
    pick(serves) {
        const count = this.workers.length;
        for (let i = 0; i < count; i++) {
            const worker = this.workers[(this.turn + i) % count];
            if (worker.isReady() && serves(worker)) {
                this.turn = (this.turn + i + 1) % count;
                return worker;
            }
        }
        return null;
    }

    /**
     * The worker for a new client connection: the one with the fewest, by `load(worker)`, ready
     * ones first (the first such in slot order).
     */
    placeClient(load) {
        let best = null;
        for (const worker of this.workers) {
            if (best === null) {
                best = worker;
                continue;
            }
            const ready = worker.isReady();
            if (ready !== best.isReady()) {
                if (ready) best = worker;
            } else if (load(worker) < load(best)) {
                best = worker;
            }
        }
        return best;
    }

    _create(slot) {
        const host = this.host;
        const worker = new WorkerProcess({
            log: host.log,
            limits: host.limits,
            configureOptions: () => host.configureOptions(worker),
            wanted: host.wanted,
            prepare: (onProgress) => this._prepare(onProgress),
            onFrames: (frames) => host.onFrames(worker, frames),
            onReady: () => host.onReady(worker),
            onLost: () => host.onLost(worker),
            onState: () => {
                if (!worker.retired) host.onState(worker);
            },
        });
        worker.slot = slot;
        return worker;
    }

    /** preparePython, once for every worker that starts while it runs. */
    _prepare(onProgress) {
        if (this.preparing === null) {
            const preparing = { installing: false, progress: [] };
            preparing.promise = preparePython(this.host.rawSettings(), {
                onProgress: (step) => {
                    preparing.installing = true;
                    for (const callback of preparing.progress) callback(step);
                },
            });
            const done = () => {
                if (this.preparing === preparing) this.preparing = null;
            };
            preparing.promise.then(done, done);
            this.preparing = preparing;
        }
        this.preparing.progress.push(onProgress);
        if (this.preparing.installing) onProgress("installing");
        return this.preparing.promise;
    }
}

module.exports = { WorkerPool };
