/**
 * Small helpers for the node tests: real `ws` clients and servers on 127.0.0.1, and waiting for
 * things the user can see (messages, statuses, frames) with a deadline.
 */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const https = require("https");
const os = require("os");
const path = require("path");
const WebSocket = require("ws");
const { workerCount } = require("../../nodes/lib/options");

const TIME_FACTOR = Number(process.env.TEST_TIME_FACTOR || 1);

/**
 * PYWS_TEST_WORKERS=2 (or "auto") runs the tests with that many workers (pyWebsocketWorkers in
 * every Node-RED's settings, test/lib/setup.js and node-red-process.js); unset, the default.
 */
const TEST_WORKERS = !process.env.PYWS_TEST_WORKERS ? undefined
    : process.env.PYWS_TEST_WORKERS === "auto" ? "auto" : Number(process.env.PYWS_TEST_WORKERS);
/** How many worker processes a Node-RED of the tests runs. */
const TEST_WORKER_COUNT = workerCount(TEST_WORKERS === undefined ? 1 : TEST_WORKERS);

function ms(value) {
    return value * TIME_FACTOR;
}

function delay(milliseconds) {
    return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

/** Resolves when check() returns a truthy value, rejects with `what` after the deadline. */
async function waitFor(what, check, timeout = ms(5000)) {
    const deadline = Date.now() + timeout;
    for (;;) {
        const value = await check();
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await delay(10);
    }
}

/** A real WebSocket client that records what it receives. */
function connectClient(url, { protocols, headers, handshakeTimeout } = {}) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, protocols, { headers, handshakeTimeout });
        ws.received = [];
        ws.on("message", (data, isBinary) => ws.received.push(isBinary ? data : data.toString()));
        ws.once("open", () => resolve(ws));
        ws.once("error", reject);
        ws.once("unexpected-response", (req, res) => {
            const err = new Error(`unexpected response ${res.statusCode}`);
            err.statusCode = res.statusCode;
            reject(err);
        });
    });
}

function closeClient(ws) {
    return new Promise((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.once("close", () => resolve());
        ws.close();
    });
}

/** A real `ws` server on an ephemeral port, recording connections and messages. */
function startServer(options = {}) {
    return new Promise((resolve) => {
        const server = new WebSocket.Server(Object.assign({ host: "127.0.0.1", port: 0 }, options));
        server.connections = [];
        server.received = [];
        server.on("connection", (ws, req) => {
            ws.request = req;
            server.connections.push(ws);
            ws.on("message", (data, isBinary) => server.received.push(isBinary ? data : data.toString()));
        });
        server.on("listening", () => {
            server.url = `ws://127.0.0.1:${server.address().port}`;
            resolve(server);
        });
    });
}

function stopServer(server) {
    return new Promise((resolve) => {
        for (const ws of server.clients) ws.terminate();
        server.close(() => resolve());
    });
}

/**
 * Mocha hooks for a describe block of node tests: the test helper's server around the block,
 * started with `settings` (settings.js values, or a function returning them when the block's own
 * before hooks make them; the defaults again after the block), and the flow unloaded after each
 * test.
 */
function withHelper(helper, settings = {}) {
    before(async () => {
        helper.settings(typeof settings === "function" ? settings() : settings);
        await helper.startServer();
    });
    after(async () => {
        helper.settings({});
        await helper.stopServer();
    });
    afterEach(() => helper.unload());
}

/**
 * withHelper() for a describe block talking to a remote server: a fresh `ws` server (handed to
 * `onStart`) before each test, and `current()` stopped after it (a test may have replaced the
 * server it was given).
 */
function withRemoteServer(helper, onStart, current) {
    withHelper(helper);
    beforeEach(async () => {
        onStart(await startServer());
    });
    afterEach(async () => {
        await stopServer(current());
    });
}

/** A fresh self-signed certificate for localhost and 127.0.0.1 in `dir`: {keyFile, certFile} (PEM). */
function selfSignedCertificate(dir) {
    const keyFile = path.join(dir, "key.pem");
    const certFile = path.join(dir, "cert.pem");
    childProcess.execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout", keyFile, "-out", certFile], { stdio: "ignore" });
    return { keyFile, certFile };
}

/**
 * An HTTPS server on 127.0.0.1 with a fresh self-signed certificate for localhost and 127.0.0.1;
 * server.certFile is its PEM (to trust it), server.cleanup() closes it and removes the files.
 */
async function startHttpsServer() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyws-tls-"));
    const { keyFile, certFile } = selfSignedCertificate(dir);
    const server = https.createServer({ key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile) });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    server.certFile = certFile;
    server.cleanup = () => new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        fs.rmSync(dir, { recursive: true, force: true });
    });
    return server;
}

/** Records every status a node reports (the test helper emits call:status). */
function recordStatuses(node) {
    const statuses = [];
    node.on("call:status", (call) => statuses.push(call.args[0]));
    return statuses;
}

/** Records every message a helper node receives. */
function recordMessages(node) {
    const messages = [];
    node.on("input", (msg) => messages.push(msg));
    return messages;
}

function wsUrl(helper, path) {
    return helper.url().replace(/^http/, "ws") + path;
}

module.exports = {
    ms, delay, waitFor, connectClient, closeClient, startServer, stopServer, withHelper, withRemoteServer,
    recordStatuses, recordMessages, wsUrl, startHttpsServer, selfSignedCertificate, TEST_WORKERS, TEST_WORKER_COUNT,
};
