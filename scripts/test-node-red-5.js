#!/usr/bin/env node
/**
 * The whole mocha suite again on Node-RED 5 with Node 22 (Node-RED 5 needs Node >= 22.9):
 * Node-RED 5 is installed into .node-red-5/ in the checkout (ignored by git) and Node 22 comes from
 * the npm registry through `npx -p node@22`. The tests pick that Node-RED up from NODE_RED_PATH.
 * This run also uses two workers (PYWS_TEST_WORKERS=2, pyWebsocketWorkers in every test's
 * settings) unless PYWS_TEST_WORKERS says otherwise: `npm test` then runs the whole suite once
 * with the default of one worker (Node-RED 4.1) and once with two (Node-RED 5), at no extra time.
 */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const PREFIX = path.join(ROOT, ".node-red-5");
const NODE_RED_5 = "node-red@5";

function run(command, args, options = {}) {
    const result = childProcess.spawnSync(command, args, Object.assign({ stdio: "inherit", cwd: ROOT }, options));
    if (result.status !== 0) {
        process.exit(result.status === null ? 1 : result.status);
    }
}

if (!fs.existsSync(path.join(PREFIX, "node_modules", "node-red", "package.json"))) {
    fs.mkdirSync(PREFIX, { recursive: true });
    fs.writeFileSync(path.join(PREFIX, "package.json"), JSON.stringify({ name: "node-red-5-under-test", private: true }));
    run("npm", ["install", "--no-audit", "--no-fund", "--prefix", PREFIX, NODE_RED_5]);
}
const version = JSON.parse(fs.readFileSync(path.join(PREFIX, "node_modules", "node-red", "package.json"), "utf8")).version;
const workers = process.env.PYWS_TEST_WORKERS || "2";
console.log(`[node-red-5] running the mocha suite on Node-RED ${version} with Node 22 and ${workers} worker(s)`);
run("npx", ["-y", "-p", "node@22", "node", path.join(ROOT, "node_modules", "mocha", "bin", "mocha.js")],
    { env: Object.assign({}, process.env, { NODE_RED_PATH: PREFIX, PYWS_TEST_WORKERS: workers }) });
