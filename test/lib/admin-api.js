/**
 * One request to a Node-RED admin API on 127.0.0.1 (JSON in and out), for the tests, the
 * benchmark and the conformance run: {status, body} with the body parsed when it is JSON.
 */
"use strict";

async function adminRequest(port, method, urlPath, body, headers = {}, timeoutMs = 60000) {
    const response = await fetch(`http://127.0.0.1:${port}${urlPath}`, {
        method,
        headers: Object.assign({ "Content-Type": "application/json", Accept: "application/json" }, headers),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    let parsed = text;
    try { parsed = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
    return { status: response.status, body: parsed };
}

module.exports = { adminRequest };
