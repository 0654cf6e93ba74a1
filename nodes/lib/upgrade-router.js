/**
 * Routes WebSocket upgrade requests on Node-RED's own HTTP server to listener endpoints.
 *
 * One 'upgrade' handler per HTTP server for the whole process (the test helper calls the node
 * module again on every load, with the same server): paths not ours are left alone for other
 * handlers, as core does. settings.webSocketNodeVerifyClient is evaluated here, before the
 * connection is handed to the worker, with the same arguments and replies as Node's `ws`.
 */
"use strict";

const http = require("http");

const routesByServer = new WeakMap();

function pathnameOf(url) {
    const end = url.search(/[?#]/);
    return end === -1 ? url : url.slice(0, end);
}

function rejectHandshake(socket, code, message, headers) {
    const status = code || 401;
    const body = message || http.STATUS_CODES[status] || "";
    let response = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] || ""}\r\n` +
        "Connection: close\r\nContent-Type: text/html\r\n" +
        `Content-Length: ${Buffer.byteLength(body)}\r\n`;
    for (const [name, value] of Object.entries(headers || {})) {
        response += `${name}: ${value}\r\n`;
    }
    socket.end(response + "\r\n" + body);
    socket.on("error", () => {});
    setTimeout(() => socket.destroy(), 1000).unref();
}

function verify(verifyClient, req, done) {
    if (typeof verifyClient !== "function") {
        done(true);
        return;
    }
    const info = {
        origin: req.headers[req.headers["sec-websocket-version"] === "8" ? "sec-websocket-origin" : "origin"],
        secure: Boolean(req.socket.authorized || req.socket.encrypted),
        req,
    };
    try {
        if (verifyClient.length === 2) {
            verifyClient(info, (ok, code, message, headers) => done(ok, code, message, headers));
        } else {
            done(verifyClient(info));
        }
    } catch (err) {
        done(false, 500, "verifyClient failed");
    }
}

/**
 * The route table of a server. route.accept(req, socket, head) takes the connection;
 * route.verifyClient is settings.webSocketNodeVerifyClient at the time the route was added.
 */
function routesFor(server) {
    let routes = routesByServer.get(server);
    if (!routes) {
        routes = new Map();
        routesByServer.set(server, routes);
        server.on("upgrade", (req, socket, head) => {
            const route = routes.get(pathnameOf(req.url));
            if (!route) {
                return;
            }
            socket.on("error", () => {});
            verify(route.verifyClient, req, (ok, code, message, headers) => {
                if (!ok) {
                    rejectHandshake(socket, code, message, headers);
                    return;
                }
                if (routes.get(pathnameOf(req.url)) !== route || socket.destroyed) {
                    socket.destroy();
                    return;
                }
                route.accept(req, socket, head);
            });
        });
    }
    return routes;
}

/** Full path of a listener as core computes it: httpNodeRoot + path. */
function fullPathOf(httpNodeRoot, path) {
    let full = httpNodeRoot || "/";
    full = full + (full.slice(-1) === "/" ? "" : "/") + (path.charAt(0) === "/" ? path.substring(1) : path);
    return full;
}

module.exports = { routesFor, fullPathOf, pathnameOf };
