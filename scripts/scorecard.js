#!/usr/bin/env node
/**
 * `node-red-dev validate` (the Node-RED flow library's scorecard) on this package, offline: the
 * public catalogue lookup is answered with an empty catalogue (scripts/lib/offline-catalogue.js);
 * every other check runs as published. Fails when the scorecard reports an error or a failed check.
 */
"use strict";

const childProcess = require("child_process");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const bin = path.join(path.dirname(require.resolve("node-red-dev/package.json", { paths: [ROOT] })), "bin", "run");

const result = childProcess.spawnSync(process.execPath,
    ["-r", path.join(__dirname, "lib", "offline-catalogue.js"), bin, "validate", "-p", ROOT],
    { encoding: "utf8", cwd: ROOT });
const output = (result.stdout || "") + (result.stderr || "");
process.stdout.write(output);
const failed = output.split("\n").filter((line) => /❌|Error:/.test(line));
if (result.status !== 0 || failed.length > 0) {
    console.error(`scorecard: ${failed.length} failed check(s)`);
    process.exit(1);
}
console.log("scorecard: every check that does not need the public catalogue passed");
