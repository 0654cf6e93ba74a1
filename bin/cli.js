#!/usr/bin/env node
/**
 * Command line of the package:
 *
 *   npx node-red-contrib-python-websocket migrate <flows.json> [--dry-run] [--out <file>]
 *
 * Without --out the file is rewritten in place after a copy is kept as <flows.json>.backup.
 * --dry-run prints what would change and writes nothing. Exit codes: 0 done (or nothing to do),
 * 2 bad usage or not a flow file.
 */
"use strict";

const fs = require("fs");
const { migrateFlows, MigrationError } = require("./migrate");

const USAGE = "usage: node-red-contrib-python-websocket migrate <flows.json> [--dry-run] [--out <file>]";

function fail(message) {
    process.stderr.write(message + "\n");
    process.exit(2);
}

function main(argv) {
    const [command, ...rest] = argv;
    if (command !== "migrate") fail(USAGE);
    const dryRun = rest.includes("--dry-run");
    const outAt = rest.indexOf("--out");
    const out = outAt === -1 ? null : rest[outAt + 1];
    if (outAt !== -1 && !out) fail(USAGE);
    const files = rest.filter((arg, i) => !arg.startsWith("--") && (outAt === -1 || i !== outAt + 1));
    if (files.length !== 1) fail(USAGE);
    const file = files[0];

    let flows;
    try {
        flows = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (err) {
        fail(`${file}: ${err.code === "ENOENT" ? "no such file" : "not valid JSON (" + err.message + ")"}`);
    }
    let result;
    try {
        result = migrateFlows(flows);
    } catch (err) {
        if (err instanceof MigrationError) fail(`${file}: ${err.message}`);
        throw err;
    }
    for (const change of result.changes) {
        const label = change.name ? ` (${change.name})` : "";
        process.stdout.write(`${change.id}${label}: ${change.from} -> ${change.to}\n`);
    }
    if (result.changes.length === 0) {
        process.stdout.write("no core WebSocket nodes: nothing to change\n");
        return;
    }
    if (dryRun) {
        process.stdout.write(`dry run: ${result.changes.length} node(s) would change, nothing written\n`);
        return;
    }
    const target = out || file;
    if (!out) fs.copyFileSync(file, file + ".backup");
    fs.writeFileSync(target, JSON.stringify(result.flows, null, 4) + "\n");
    process.stdout.write(`${result.changes.length} node(s) changed, written to ${target}` +
        (out ? "\n" : ` (the original is in ${file}.backup)\n`));
}

main(process.argv.slice(2));
