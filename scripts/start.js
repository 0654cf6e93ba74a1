#!/usr/bin/env node
/**
 * `npm start`: Node-RED on 127.0.0.1:1880 with this checkout installed as a package in a user
 * directory inside the checkout (.node-red/, ignored by git), and the echo example deployed the
 * first time.
 */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const USER_DIR = path.join(ROOT, ".node-red");
const PACKAGE_LINK = path.join(USER_DIR, "node_modules", "node-red-contrib-python-websocket");
const FLOWS = path.join(USER_DIR, "flows.json");
const ECHO_EXAMPLE = path.join(ROOT, "examples", "flows", "01 - Echo test.json");
const SETTINGS = path.join(USER_DIR, "settings.js");
const PORT = process.env.PORT || "1880";

fs.mkdirSync(path.dirname(PACKAGE_LINK), { recursive: true });
if (!fs.existsSync(PACKAGE_LINK)) {
    fs.symlinkSync(ROOT, PACKAGE_LINK, "dir");
}
if (!fs.existsSync(FLOWS)) {
    const nodes = JSON.parse(fs.readFileSync(ECHO_EXAMPLE, "utf8"));
    const tab = { id: "e0c1a5e0c1a5e0c1", type: "tab", label: "Echo test", disabled: false, info: "" };
    for (const node of nodes) {
        if (node.z !== undefined || !/^py-websocket-(listener|client)$/.test(node.type)) {
            node.z = tab.id;
        }
    }
    fs.writeFileSync(FLOWS, JSON.stringify([tab, ...nodes], null, 2));
}
if (!fs.existsSync(SETTINGS)) {
    fs.writeFileSync(SETTINGS, `module.exports = {
    uiHost: "127.0.0.1",
    uiPort: ${PORT},
    flowFile: "flows.json",
    credentialSecret: false,
    logging: { console: { level: "info" } },
};
`);
}

const redJs = require.resolve("node-red/red.js", { paths: [ROOT] });
const child = childProcess.spawn(process.execPath, [redJs, "-u", USER_DIR, "-s", SETTINGS, "-p", PORT],
    { stdio: "inherit" });
for (const signal of ["SIGINT", "SIGTERM"]) {
    process.on(signal, () => child.kill(signal));
}
child.on("exit", (code) => process.exit(code === null ? 0 : code));
