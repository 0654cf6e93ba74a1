"use strict";
module.exports = {
    require: ["test/lib/setup.js"],
    // MOCHA_SPEC narrows a run to some files (a spec given on the command line would be added to
    // this list, not replace it).
    spec: process.env.MOCHA_SPEC ? process.env.MOCHA_SPEC.split(",") : ["test/**/*_spec.js"],
    timeout: 30000,
    exit: true,
    "node-option": ["expose-gc"],
};
