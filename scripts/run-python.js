#!/usr/bin/env node
/**
 * Runs the project's development Python (.venv in the checkout) with the given arguments,
 * setting it up first with the same code the nodes use at first use (nodes/lib/python-env.js),
 * plus the test and lint tools of python/requirements-dev.txt.
 *
 *   node scripts/run-python.js -m pytest -q python/tests
 */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const path = require("path");
const { preparePython, run } = require("../nodes/lib/python-env");

const ROOT = path.resolve(__dirname, "..");
const VENV = path.join(ROOT, ".venv");
const DEV_REQUIREMENTS = path.join(ROOT, "python", "requirements-dev.txt");
const DEV_STAMP = path.join(VENV, "dev-requirements.stamp");

async function main() {
    process.env.NODE_RED_PYTHON_VENV = VENV;
    const { python } = await preparePython({}, {
        onProgress: () => console.error("[run-python] installing the worker's Python packages into .venv"),
    });
    const wanted = fs.readFileSync(DEV_REQUIREMENTS, "utf8");
    if (!fs.existsSync(DEV_STAMP) || fs.readFileSync(DEV_STAMP, "utf8") !== wanted) {
        console.error("[run-python] installing development tools into .venv");
        const result = await run(python, ["-m", "pip", "install", "--disable-pip-version-check", "-q",
            "-r", DEV_REQUIREMENTS]);
        if (result.code !== 0) {
            throw new Error(`pip install -r python/requirements-dev.txt failed:\n${result.output}`);
        }
        fs.writeFileSync(DEV_STAMP, wanted);
    }
    const child = childProcess.spawn(python, process.argv.slice(2), { stdio: "inherit", cwd: ROOT });
    child.on("exit", (code, signal) => process.exit(code === null ? 1 : code));
}

main().catch((err) => {
    console.error(`[run-python] ${err.message}`);
    process.exit(1);
});
