#!/usr/bin/env node
/** `node --check` on every JavaScript file of the package, its tests, scripts and benchmarks. */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const DIRS = ["bin", "nodes", "scripts", "test", "bench"];

function jsFiles(dir) {
    if (!fs.existsSync(dir)) return [];
    return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) return entry.name === "node_modules" ? [] : jsFiles(full);
        return entry.name.endsWith(".js") ? [full] : [];
    });
}

let failed = 0;
for (const file of DIRS.flatMap((dir) => jsFiles(path.join(ROOT, dir)))) {
    const result = childProcess.spawnSync(process.execPath, ["--check", file], { encoding: "utf8" });
    if (result.status !== 0) {
        failed++;
        process.stderr.write(result.stderr);
    }
}
if (failed) {
    console.error(`${failed} file(s) failed node --check`);
    process.exit(1);
}
