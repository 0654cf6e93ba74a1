"use strict";
// The inner loop's tier (npm run test:fast, TEST_TIER=fast): no soak, no 10,000 cycles, no real
// node-red processes (process, ingest, e2e, backplane), no browser, no thousand-client fan-out.
const SLOW = ["test/soak_spec.js", "test/cycles_spec.js", "test/process_spec.js", "test/ingest_spec.js",
    "test/e2e_spec.js", "test/slow_peers_spec.js", "test/backplane_spec.js", "test/browser/**"];
const TIME_FACTOR = Number(process.env.TEST_TIME_FACTOR || 1);

module.exports = {
    require: ["test/lib/setup.js"],
    // MOCHA_SPEC narrows a run to some files (a spec given on the command line would be added to
    // this list, not replace it).
    spec: process.env.MOCHA_SPEC ? process.env.MOCHA_SPEC.split(",") : ["test/**/*_spec.js"],
    ignore: process.env.TEST_TIER === "fast" ? SLOW : [],
    timeout: 30000 * TIME_FACTOR,
    // No `exit: true`: a handle a test leaves open fails the run (test/lib/setup.js).
    "node-option": ["expose-gc"],
};
