"use strict";
module.exports = {
    require: ["test/lib/setup.js"],
    spec: ["test/**/*_spec.js"],
    timeout: 30000,
    exit: true,
    "node-option": ["expose-gc"],
};
