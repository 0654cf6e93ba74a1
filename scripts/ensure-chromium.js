#!/usr/bin/env node
/**
 * Makes sure a Chromium the browser tests can drive is installed at /usr/bin/chromium: if it is
 * missing, installs Debian's `chromium` package with apt-get (needs root and the Debian mirror).
 * Exits non-zero with a clear message when it cannot.
 */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");

const CHROMIUM = "/usr/bin/chromium";

function run(command, args) {
    console.log(`ensure-chromium: ${command} ${args.join(" ")}`);
    const result = childProcess.spawnSync(command, args, {
        stdio: "inherit",
        env: Object.assign({}, process.env, { DEBIAN_FRONTEND: "noninteractive" }),
    });
    if (result.error) return `${command} could not run: ${result.error.message}`;
    if (result.status !== 0) return `${command} ${args.join(" ")} exited with ${result.status ?? result.signal}`;
    return null;
}

function fail(message) {
    console.error(`ensure-chromium: ${message}\n` +
        `The browser tests need Chromium at ${CHROMIUM}; install it (as root: ` +
        "apt-get update && apt-get install -y chromium) and run the tests again.");
    process.exit(1);
}

function main() {
    if (fs.existsSync(CHROMIUM)) return;
    if (process.platform !== "linux") fail(`${CHROMIUM} is missing and this is not Linux`);
    if (typeof process.getuid === "function" && process.getuid() !== 0) {
        fail(`${CHROMIUM} is missing and installing it with apt-get needs root`);
    }
    const error = run("apt-get", ["update"]) ||
        run("apt-get", ["install", "-y", "--no-install-recommends", "chromium"]);
    if (error) fail(`installing Chromium failed: ${error}`);
    if (!fs.existsSync(CHROMIUM)) fail(`apt-get finished but ${CHROMIUM} is still missing`);
    console.log(`ensure-chromium: installed ${CHROMIUM}`);
}

main();
