"use strict";
const WebSocket = require("ws");
const flows = require("./flows");
const { NodeRed } = require("./lib/node-red");
const fs = require("fs");
async function main() {
    const size = Number(process.env.SIZE || 16 * 1024 * 1024), n = Number(process.env.N || 20);
    const relay = process.env.RELAY !== "0";
    const tls = !!process.env.TLS;
    let settings = relay ? "pyWebsocketListenerHandoff: false," : "";
    if (tls) settings += 'https: { key: require("fs").readFileSync("/tmp/prof/key.pem"), cert: require("fs").readFileSync("/tmp/prof/cert.pem") },';
    const nr = new NodeRed({ settings });
    if (tls) { process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0"; }
    const origApi = nr.api.bind(nr);
    if (tls) nr.api = async (method, urlPath, body, headers = {}) => {
        const r = await fetch(`https://127.0.0.1:${nr.port}${urlPath}`, { method, headers: Object.assign({ "Content-Type": "application/json" }, headers), body: body === undefined ? undefined : JSON.stringify(body) });
        return { status: r.status, body: await r.text() };
    };
    await nr.start();
    await nr.deploy(process.env.CORE ? flows.echoFlow() : flows.toOurs(flows.echoFlow()));
    const url = `${tls ? "wss" : "ws"}://127.0.0.1:${nr.port}${flows.PATHS.echo}`;
    let ws;
    for (let i = 0; i < 100; i++) {
        try { ws = await new Promise((res, rej) => { const w = new WebSocket(url, { rejectUnauthorized: false }); w.on("open", () => res(w)); w.on("error", rej); }); break; }
        catch (e) { await new Promise((r) => setTimeout(r, 200)); }
    }
    const payload = process.env.TEXT ? "x".repeat(size) : Buffer.alloc(size, 7);
    const once = () => new Promise((res) => { ws.once("message", res); ws.send(payload); });
    for (let i = 0; i < 2; i++) await once();
    const pids = nr.pids();
    fs.writeFileSync("/tmp/prof/pids", JSON.stringify(pids));
    if (process.env.WAIT) await new Promise((r) => setTimeout(r, Number(process.env.WAIT)));
    const t0 = Date.now();
    for (let i = 0; i < n; i++) await once();
    const ms = (Date.now() - t0) / n;
    console.log(`${process.env.CORE ? "core" : relay ? "relay" : "handoff"}${tls ? "+tls" : ""} ${size} per round trip ${ms.toFixed(1)} ms, ${(size / 1048576 / ms * 1000).toFixed(1)} MiB/s`);
    ws.close();
    await nr.stop();
}
main().catch((e) => { console.error(e); process.exit(1); });
