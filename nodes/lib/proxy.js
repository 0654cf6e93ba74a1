/**
 * The HTTP proxy a client connection should use, from Node-RED's proxy settings
 * (settings.proxyOptions / the usual environment variables), resolved here and passed to the
 * worker explicitly so Python never reads the environment on its own.
 */
"use strict";

function envValue(env, name) {
    return env[name.toLowerCase()] || env[name.toUpperCase()] || "";
}

function bypassed(hostname, port, noProxy) {
    const entries = noProxy.split(/[\s,]+/).filter(Boolean);
    return entries.some((entry) => {
        if (entry === "*") return true;
        const [host, entryPort] = entry.split(":");
        if (entryPort && String(port) !== entryPort) return false;
        const bare = host.replace(/^\*?\./, "");
        return hostname === bare || hostname.endsWith("." + bare);
    });
}

/** The proxy URL for a ws:// or wss:// URL, or null. */
function proxyFor(url, proxyOptions = {}, env = process.env) {
    let parsed;
    try {
        parsed = new URL(url);
    } catch (_) {
        return null;
    }
    const secure = parsed.protocol === "wss:";
    const port = parsed.port || (secure ? 443 : 80);
    const noProxy = proxyOptions.noproxy ? [].concat(proxyOptions.noproxy).join(",") : envValue(env, "no_proxy");
    if (noProxy && bypassed(parsed.hostname.toLowerCase(), port, noProxy)) {
        return null;
    }
    const proxy = proxyOptions.proxy ||
        (secure ? envValue(env, "https_proxy") || envValue(env, "http_proxy") : envValue(env, "http_proxy"));
    return proxy || null;
}

module.exports = { proxyFor };
