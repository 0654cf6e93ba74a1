/**
 * Installs a Debian package the tests need when the program it brings is missing: apt-get as
 * root (CI runs as root), else a clear message saying how to install it. Used by
 * scripts/ensure-chromium.js (the browser test) and scripts/ensure-redis.js (the backplane tests).
 */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");

function run(tag, command, args) {
    console.log(`${tag}: ${command} ${args.join(" ")}`);
    const result = childProcess.spawnSync(command, args, {
        stdio: ["ignore", "inherit", "inherit"],
        env: Object.assign({}, process.env, { DEBIAN_FRONTEND: "noninteractive" }),
    });
    if (result.error) return `${command} could not run: ${result.error.message}`;
    if (result.status !== 0) return `${command} ${args.join(" ")} exited with ${result.status ?? result.signal}`;
    return null;
}

/**
 * Makes sure `program` exists, installing Debian's `pkg` if not; exits non-zero saying why
 * when it cannot. `why` says which tests need it.
 */
function ensureDebianPackage({ tag, program, pkg, why }) {
    const fail = (message) => {
        console.error(`${tag}: ${message}\n${why} need ${program}; install it (as root: ` +
            `apt-get update && apt-get install -y ${pkg}) and run the tests again.`);
        process.exit(1);
    };
    if (fs.existsSync(program)) return;
    if (process.platform !== "linux") fail(`${program} is missing and this is not Linux`);
    if (typeof process.getuid === "function" && process.getuid() !== 0) {
        fail(`${program} is missing and installing it with apt-get needs root`);
    }
    const error = run(tag, "apt-get", ["update"]) ||
        run(tag, "apt-get", ["install", "-y", "--no-install-recommends", pkg]);
    if (error) fail(`installing ${pkg} failed: ${error}`);
    if (!fs.existsSync(program)) fail(`apt-get finished but ${program} is still missing`);
    console.log(`${tag}: installed ${program}`);
}

module.exports = { ensureDebianPackage };
