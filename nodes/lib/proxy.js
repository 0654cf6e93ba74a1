/**
 * The HTTP proxy a client connection should use, resolved like core's proxy helper
 * (settings.proxyOptions: env, lowerCaseOnly, favourUpperCase, excludeNpm; no_proxy) but for the
 * URL actually connected to (core looks it up for an undefined URL, so it never proxies).
 * ws:// tries ws_proxy then http_proxy, wss:// tries wss_proxy then https_proxy, then
 * npm_config_proxy and all_proxy. Passed to the worker explicitly: Python never reads the
 * environment for it.
 */
"use strict";

const DEFAULT_PORTS = { ws: 80, wss: 443 };

function getEnv(key, options) {
    const env = options.env || process.env;
    if (options.excludeNpm === true && key.startsWith("npm_config_")) {
        return "";
    }
    if (options.lowerCaseOnly === true) {
        return env[key.toLowerCase()] || "";
    }
    if (options.favourUpperCase === true) {
        return env[key.toUpperCase()] || env[key.toLowerCase()] || "";
    }
    return env[key.toLowerCase()] || env[key.toUpperCase()] || "";
}

function bypassed(hostname, port, options) {
    const noProxy = (getEnv("npm_config_no_proxy", options) || getEnv("no_proxy", options)).toLowerCase();
    if (!noProxy) {
        return false;
    }
    return noProxy.split(/[,\s]/).filter(Boolean).some((entry) => {
        if (entry === "*") return true;
        const match = entry.match(/^(.+):(\d+)$/);
        const host = (match ? match[1] : entry).replace(/^\*/, "");
        if (match && Number(match[2]) !== port) return false;
        if (host.startsWith(".")) return hostname.endsWith(host);
        return hostname === host || hostname.endsWith("." + host);
    });
}

/** The proxy URL for a ws:// or wss:// URL, or null. */
function proxyFor(url, proxyOptions) {
    const options = Object.assign({}, proxyOptions);
    let parsed;
    try {
        parsed = new URL(url);
    } catch (_) {
        return null;
    }
    const proto = parsed.protocol.replace(":", "");
    if (!DEFAULT_PORTS[proto]) {
        return null;
    }
    const port = Number(parsed.port) || DEFAULT_PORTS[proto];
    if (bypassed(parsed.hostname.toLowerCase(), port, options)) {
        return null;
    }
    const httpProto = proto === "wss" ? "https" : "http";
    let proxy = getEnv(`npm_config_${proto}_proxy`, options) || getEnv(`${proto}_proxy`, options) ||
        getEnv(`npm_config_${httpProto}_proxy`, options) || getEnv(`${httpProto}_proxy`, options) ||
        getEnv("npm_config_proxy", options) || getEnv("all_proxy", options);
    if (proxy && proxy.indexOf("://") === -1) {
        proxy = "http://" + proxy;
    }
    return proxy || null;
}

module.exports = { proxyFor };
