/**
 * The bridge and upgrade router on their own, with servers Node-RED's test helper cannot give:
 * an HTTPS server, whose TLS sockets cannot be handed over and are relayed instead.
 */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const https = require("https");
const os = require("os");
const path = require("path");
const WebSocket = require("ws");
const { getBridge } = require("../nodes/lib/bridge");
const { routesFor } = require("../nodes/lib/upgrade-router");
const { waitFor } = require("./lib/harness");

describe("bridge behind an HTTPS server", function () {
    let dir;
    let server;
    let ownerId;
    const events = [];

    before(async function () {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyws-https-"));
        childProcess.execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem")],
        { stdio: "ignore" });
        server = https.createServer({ key: fs.readFileSync(path.join(dir, "key.pem")),
            cert: fs.readFileSync(path.join(dir, "cert.pem")) });
        await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
        const bridge = getBridge();
        ownerId = bridge.add("listen", { path: "/secure", subprotocols: null, max_size: 1048576,
            compression: false, handshake_timeout: 10 }, {
            open: (sid) => events.push(["open", sid]),
            message: (sid, data) => bridge.send(ownerId, sid, data),
            close: (sid, code) => events.push(["close", sid, code]),
            error: () => {},
            workerState: () => {},
            workerLost: () => {},
        });
        let next = 0;
        routesFor(server).set("/secure", {
            accept: (req, socket, head) => bridge.handOver(ownerId, `feedbeef0000000${next++}`, req, socket, head),
        });
    });

    after(async function () {
        await getBridge().remove(ownerId);
        server.close();
        fs.rmSync(dir, { recursive: true, force: true });
    });

    it("relays a wss:// connection's bytes to the worker and echoes through it", async function () {
        const ws = new WebSocket(`wss://127.0.0.1:${server.address().port}/secure`, { rejectUnauthorized: false });
        const received = [];
        ws.on("message", (data, isBinary) => received.push(isBinary ? data : data.toString()));
        await new Promise((resolve, reject) => {
            ws.once("open", resolve);
            ws.once("error", reject);
        });
        ws.send("over https");
        ws.send(Buffer.alloc(70000, 1));
        await waitFor("both echoes", () => received.length === 2);
        received[0].should.equal("over https");
        received[1].should.eql(Buffer.alloc(70000, 1));
        ws.close(4000, "bye");
        await waitFor("the close", () => events.some((e) => e[0] === "close"));
        events.find((e) => e[0] === "close")[2].should.equal(4000);
    });
});
