/**
 * The bridge's log lines. Every text comes from the message catalog (nodes/locales/en-US/
 * websocket.json) through the runtime's translate function (RED._), prefixed with
 * "[python-websocket]". The bridge outlives any one RED (the test helper brings a new one per
 * load) and a runtime may have no catalog for our keys (the test helper's RED._ returns the key):
 * then the English text of the catalog is used, so a line never loses its details.
 */
"use strict";

const catalog = require("../locales/en-US/websocket.json");

const PREFIX = "[python-websocket]";
const WORKER_PREFIX = "[python-websocket worker]";
const LEVELS = ["debug", "info", "warn", "error"];

const consoleLog = {
    info: (m) => console.log(m), warn: (m) => console.warn(m), error: (m) => console.error(m),
    debug: () => {}, trace: () => {},
};

/** The catalog's English for a key such as "websocket.log.ready", with __name__ filled in. */
function english(key, params = {}) {
    let entry = catalog;
    for (const part of key.split(".")) entry = entry && typeof entry === "object" ? entry[part] : undefined;
    if (typeof entry !== "string") return key;
    return entry.replace(/__(\w+)__/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

class BridgeLog {
    constructor() {
        this.log = consoleLog;
        this.translate = null;
    }

    /** The runtime's logger and translate function (each Node-RED load brings its own). */
    configure(log, translate) {
        this.log = log || consoleLog;
        this.translate = typeof translate === "function" ? translate : null;
    }

    text(key, params) {
        const text = this.translate ? this.translate(key, params) : key;
        return typeof text === "string" && text !== key ? text : english(key, params);
    }

    debug(key, params) { this.log.debug(`${PREFIX} ${this.text(key, params)}`); }

    info(key, params) { this.log.info(`${PREFIX} ${this.text(key, params)}`); }

    warn(key, params) { this.log.warn(`${PREFIX} ${this.text(key, params)}`); }

    error(key, params) { this.log.error(`${PREFIX} ${this.text(key, params)}`); }

    /** A line the worker logged itself (its own words: it has no catalog). */
    worker(level, line) {
        this.log[LEVELS.includes(level) ? level : "info"](`${WORKER_PREFIX} ${line}`);
    }
}

module.exports = { BridgeLog, english };
