/**
 * Every mocha run uses the checkout's .venv (set up by `npm test` through scripts/run-python.js,
 * or at first use by the bridge itself) so tests don't install into ~/.node-red.
 */
"use strict";
const path = require("path");

process.env.NODE_RED_PYTHON_VENV = process.env.NODE_RED_PYTHON_VENV ||
    path.resolve(__dirname, "..", "..", ".venv");
