/**
 * One request to a Node-RED admin API on 127.0.0.1 (JSON in and out), for the tests, the
 * benchmark and the conformance run: {status, body} with the body parsed when it is JSON.
 * With `ca` (a PEM certificate to trust) the request goes over HTTPS.
 */
"use strict";

const https = require("https");

async function adminRequest(port, method, urlPath, body, headers = {}, timeoutMs = 60000, ca = null) {
    const allHeaders = Object.assign({ "Content-Type": "application/json", Accept: "application/json" }, headers);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const { status, text } = ca
        ? await httpsRequest({ host: "127.0.0.1", port, path: urlPath, method, headers: allHeaders, ca,
            servername: "localhost", timeout: timeoutMs }, payload)
        : await fetchText(`http://127.0.0.1:${port}${urlPath}`,
            { method, headers: allHeaders, body: payload, signal: AbortSignal.timeout(timeoutMs) });
    let parsed = text;
    try { parsed = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
    return { status, body: parsed };
}

async function fetchText(url, init) {
    const response = await fetch(url, init);
    return { status: response.status, text: await response.text() };
}

/** fetch() cannot be given a certificate to trust: https.request can. */
function httpsRequest(options, payload) {
    return new Promise((resolve, reject) => {
        const request = https.request(options, (response) => {
            let text = "";
            response.setEncoding("utf8");
            response.on("data", (chunk) => { text += chunk; });
            response.on("end", () => resolve({ status: response.statusCode, text }));
        });
        request.on("timeout", () => request.destroy(new Error(`no answer within ${options.timeout} ms`)));
        request.on("error", reject);
        request.end(payload);
    });
}

module.exports = { adminRequest };
