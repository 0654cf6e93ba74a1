/**
 * The four node types: py-websocket-listener and py-websocket-client (config nodes, one
 * constructor as in core), py-websocket in and py-websocket out. They keep the core nodes'
 * properties and behaviour; the WebSocket work itself is the Python worker's, reached through
 * the process-wide bridge (lib/bridge.js).
 */
module.exports = function (RED) {
    "use strict";
    const { getBridge } = require("./lib/bridge");
    const { routesFor, fullPathOf } = require("./lib/upgrade-router");
    const { toFlowMessage, toWireData, replySessionOf } = require("./lib/messages");
    const { proxyFor } = require("./lib/proxy");

    const DEFAULT_MAX_MESSAGE_BYTES = 100 * 1024 * 1024; // core's `ws` limit
    const DEFAULT_HANDSHAKE_TIMEOUT_S = 10;
    const RECONNECT_DELAY_S = 3; // core's fixed delay
    const DEFAULT_WRITE_LIMIT_BYTES = 16 * 1024 * 1024;
    const DEFAULT_CLIENT_QUEUE = 1000;

    const bridge = getBridge();
    bridge.configure({ settings: RED.settings, log: RED.log });

    function setting(name, fallback) {
        const value = RED.settings[name];
        return value === undefined || value === null ? fallback : value;
    }

    function textOf(value) {
        return Buffer.isBuffer(value) ? value.toString() : value;
    }

    /** Upgrade headers exactly as core 4.x builds them. */
    function upgradeHeaders(node) {
        const headers = [];
        for (const header of node.upgradeHeaders || []) {
            const name = header.keyType === "other" ? header.keyValue : header.keyType;
            let value;
            switch (header.valueType) {
            case "other":
                value = header.valueValue;
                break;
            case "env":
                value = RED.util.evaluateNodeProperty(header.valueValue, "env", node);
                break;
            default:
                value = header.valueType;
            }
            if (name && value) {
                headers.push([name, String(value)]);
            }
        }
        const authorization = authorizationOf(node);
        if (authorization) {
            return headers.filter(([name]) => name.toLowerCase() !== "authorization")
                .concat([["Authorization", authorization]]);
        }
        return headers;
    }

    /** Authorization from the node's credentials (never stored in the flow JSON). */
    function authorizationOf(node) {
        const credentials = node.credentials || {};
        if (node.authType === "basic" && (credentials.user || credentials.password)) {
            return "Basic " + Buffer.from(`${credentials.user || ""}:${credentials.password || ""}`).toString("base64");
        }
        if (node.authType === "bearer" && credentials.token) {
            return "Bearer " + credentials.token;
        }
        return null;
    }

    function tlsOptions(node) {
        if (!node.tls) {
            return null;
        }
        const tlsNode = RED.nodes.getNode(node.tls);
        if (!tlsNode) {
            return null;
        }
        const options = {};
        tlsNode.addTLSOptions(options);
        return {
            ca: textOf(options.ca) || null,
            cert: textOf(options.cert) || null,
            key: textOf(options.key) || null,
            passphrase: options.passphrase || null,
            verify: options.rejectUnauthorized !== false,
            servername: options.servername || null,
        };
    }

    function WebSocketConfigNode(n) {
        RED.nodes.createNode(this, n);
        const node = this;
        node.path = n.path;
        if (typeof n.subprotocol === "string") {
            node.subprotocol = n.subprotocol.split(",").map((v) => v.trim());
        } else {
            node.subprotocol = [];
        }
        node.wholemsg = (n.wholemsg === "true");
        node._inputNodes = [];
        node._users = new Set();
        node._clients = {};
        node.clientCount = 0; // Object.keys(_clients) per open/close costs O(n) at thousands of clients
        node.isServer = !/^ws{1,2}:\/\//i.test(node.path);
        node.closing = false;
        node.tls = n.tls;
        node.upgradeHeaders = n.headers;
        node.authType = n.authType || "";
        if (n.hb) {
            const heartbeat = parseInt(n.hb);
            if (heartbeat > 0) {
                node.heartbeat = heartbeat * 1000;
            }
        }
        node.ownerId = null;
        node.clientSession = null;
        node.clientOpen = false;
        node.lastError = null;
        node.pending = []; // client mode: messages held while the connection is down
        node.pendingDropped = 0;
        node.setMaxListeners(0);

        const maxSize = setting("pyWebsocketListenerMaxMessageSize", DEFAULT_MAX_MESSAGE_BYTES);
        const compression = setting("pyWebsocketListenerCompression", false) === true;
        const handshakeTimeout = setting("pyWebsocketListenerHandshakeTimeout", DEFAULT_HANDSHAKE_TIMEOUT_S);
        const writeLimit = setting("pyWebsocketListenerWriteLimit", DEFAULT_WRITE_LIMIT_BYTES);
        node.queueLimit = setting("pyWebsocketClientQueueSize", DEFAULT_CLIENT_QUEUE);

        const listenerEvents = {
            open(sid) {
                node._clients[sid] = true;
                node.clientCount++;
                node.emit("opened", { count: node.clientCount, id: sid });
            },
            message(sid, data) {
                node.handleEvent(sid, data);
            },
            close(sid) {
                if (!node._clients[sid]) {
                    return;
                }
                delete node._clients[sid];
                node.clientCount--;
                node.emit("closed", { count: node.clientCount, id: sid });
            },
            error(sid, text) {
                node.emit("erro", { err: new Error(text), id: sid });
            },
            workerState(state, detail) {
                node.emit("worker", { state, detail });
            },
            workerLost() {
                for (const sid of Object.keys(node._clients)) {
                    listenerEvents.close(sid);
                }
            },
        };

        const clientEvents = {
            open() {
                node.clientOpen = true;
                node.lastError = null;
                node.clientSession = node.clientSession || RED.util.generateId();
                node.emit("opened", { count: "", id: node.clientSession });
                node.flushPending();
            },
            message(sid, data) {
                node.handleEvent(node.clientSession, data);
            },
            close() {
                const id = node.clientSession || RED.util.generateId();
                node.clientOpen = false;
                node.clientSession = null;
                node.emit("closed", { count: "", id });
            },
            error(sid, text) {
                node.clientSession = node.clientSession || RED.util.generateId();
                if (text !== node.lastError) {
                    node.lastError = text;
                    node.warn(RED._("websocket.errors.connect-error") + text);
                }
                node.emit("erro", { err: new Error(text), id: node.clientSession });
            },
            workerState(state, detail) {
                node.emit("worker", { state, detail });
            },
            workerLost() {
                if (node.clientOpen) {
                    clientEvents.close();
                }
            },
        };

        node.connect = function () {
            if (node.isServer || node.ownerId !== null || node.closing) {
                return;
            }
            node.ownerId = bridge.add("connect", {
                url: node.path,
                subprotocols: node.subprotocol.filter((p) => p),
                headers: upgradeHeaders(node),
                heartbeat: node.heartbeat ? node.heartbeat / 1000 : 0,
                tls: tlsOptions(node),
                proxy: proxyFor(node.path, RED.settings.proxyOptions),
                handshake_timeout: handshakeTimeout,
                reconnect_delay: RECONNECT_DELAY_S,
                max_size: maxSize,
                compression,
                write_limit: writeLimit,
            }, clientEvents);
        };

        node.disconnect = function () {
            if (node.ownerId === null) {
                return Promise.resolve();
            }
            const id = node.ownerId;
            node.ownerId = null;
            node.clientOpen = false;
            node.clientSession = null;
            node.warnDropped();
            node.pending = [];
            return bridge.remove(id);
        };

        if (node.isServer) {
            if (!RED.server) {
                node.error("Node-RED has no HTTP server: py-websocket listeners need one");
                return;
            }
            const routes = routesFor(RED.server);
            node.fullPath = fullPathOf(RED.settings.httpNodeRoot, node.path);
            if (routes.has(node.fullPath)) {
                node.error(RED._("websocket.errors.duplicate-path", { path: node.path }));
                return;
            }
            node.ownerId = bridge.add("listen", {
                path: node.fullPath,
                subprotocols: null,
                max_size: maxSize,
                compression,
                handshake_timeout: handshakeTimeout,
                write_limit: writeLimit,
            }, listenerEvents);
            node.route = {
                verifyClient: RED.settings.webSocketNodeVerifyClient,
                accept(req, socket, head) {
                    bridge.handOver(node.ownerId, RED.util.generateId(), req, socket, head);
                },
            };
            routes.set(node.fullPath, node.route);
        }

        node.on("close", function (done) {
            node.closing = true;
            if (node.isServer) {
                if (node.route) {
                    const routes = routesFor(RED.server);
                    if (routes.get(node.fullPath) === node.route) {
                        routes.delete(node.fullPath);
                    }
                }
                node._inputNodes = [];
                node._clients = {};
                node.clientCount = 0;
                const id = node.ownerId;
                node.ownerId = null;
                (id === null ? Promise.resolve() : bridge.remove(id)).then(() => done());
            } else {
                node.disconnect().then(() => done());
            }
        });
    }

    WebSocketConfigNode.prototype.registerInputNode = function (handler) {
        this._inputNodes.push(handler);
        this.addUser(handler);
    };

    WebSocketConfigNode.prototype.removeInputNode = function (handler) {
        this._inputNodes = this._inputNodes.filter((n) => n !== handler);
        this.removeUser(handler);
    };

    /** Client mode connects only while an in or out node uses the config. */
    WebSocketConfigNode.prototype.addUser = function (user) {
        this._users.add(user);
        this.connect();
    };

    WebSocketConfigNode.prototype.removeUser = function (user) {
        this._users.delete(user);
        if (this._users.size === 0 && !this.isServer) {
            return this.disconnect();
        }
        return Promise.resolve();
    };

    WebSocketConfigNode.prototype.handleEvent = function (id, data) {
        const msg = toFlowMessage(data, this.wholemsg, id);
        for (const input of this._inputNodes) {
            try {
                input.send(msg);
            } catch (err) {
                this.error(RED._("websocket.errors.send-error") + " " + err.toString());
            }
        }
    };

    /**
     * Listen mode: to every session (none while the worker restarts, as with no clients).
     * Connect mode: to the remote server, or into the bounded queue while the connection is
     * down (the oldest are dropped past pyWebsocketClientQueueSize, with one warning).
     */
    WebSocketConfigNode.prototype.broadcast = function (data) {
        if (this.isServer) {
            if (this.ownerId !== null) bridge.send(this.ownerId, null, data);
            return true;
        }
        if (this.ownerId === null) {
            return false;
        }
        if (this.clientOpen && this.pending.length === 0 && bridge.send(this.ownerId, null, data)) {
            return true;
        }
        if (this.queueLimit <= 0) {
            return false;
        }
        this.pending.push(data);
        if (this.pending.length > this.queueLimit) {
            this.pending.shift();
            this.pendingDropped++;
        }
        return true;
    };

    WebSocketConfigNode.prototype.flushPending = function () {
        this.warnDropped();
        const pending = this.pending;
        this.pending = [];
        for (let i = 0; i < pending.length; i++) {
            if (!bridge.send(this.ownerId, null, pending[i])) {
                this.pending = pending.slice(i);
                return;
            }
        }
    };

    WebSocketConfigNode.prototype.warnDropped = function () {
        if (this.pendingDropped > 0) {
            this.warn(RED._("websocket.errors.queue-overflow", { count: this.pendingDropped, limit: this.queueLimit }));
            this.pendingDropped = 0;
        }
    };

    WebSocketConfigNode.prototype.reply = function (id, data) {
        if (this.isServer && this._clients[id] && this.ownerId !== null) {
            bridge.send(this.ownerId, id, data);
        }
    };

    RED.nodes.registerType("py-websocket-listener", WebSocketConfigNode, {
        settings: {
            pyWebsocketListenerPython: { value: "", exportable: false },
        },
    });
    RED.nodes.registerType("py-websocket-client", WebSocketConfigNode, {
        credentials: {
            user: { type: "text" },
            password: { type: "password" },
            token: { type: "password" },
        },
    });

    const WORKER_STATUS = {
        installing: { fill: "yellow", shape: "ring", text: "websocket.status.installing" },
        starting: { fill: "yellow", shape: "ring", text: "websocket.status.starting" },
        restarting: { fill: "red", shape: "ring", text: "websocket.status.worker-down" },
    };

    /**
     * "connected N", once per open/close event however many nodes show it. The count goes in as
     * a string: with a number i18next resolves plural rules on every call (a new Intl.PluralRules,
     * about 25 µs, at every connect and disconnect); the catalog's forms are the same anyway.
     */
    function connectedText(event) {
        if (event.text === undefined) {
            event.text = RED._("websocket.status.connected", { count: String(event.count) });
        }
        return event.text;
    }

    /** Core's status handling for in and out, plus the worker's states. */
    function followStatus(node) {
        const config = node.serverConfig;
        let workerStatusShown = false;
        config.on("opened", function (event) {
            workerStatusShown = false;
            node.status({
                fill: "green", shape: "dot", text: connectedText(event),
                event: "connect",
                _session: { type: "websocket", id: event.id },
            });
        });
        config.on("erro", function (event) {
            workerStatusShown = false;
            node.status({
                fill: "red", shape: "ring", text: "node-red:common.status.error",
                event: "error",
                _session: { type: "websocket", id: event.id },
            });
        });
        config.on("closed", function (event) {
            workerStatusShown = false;
            let status;
            if (event.count > 0) {
                status = { fill: "green", shape: "dot", text: connectedText(event) };
            } else {
                status = { fill: "red", shape: "ring", text: "node-red:common.status.disconnected" };
            }
            status.event = "disconnect";
            status._session = { type: "websocket", id: event.id };
            node.status(status);
        });
        config.on("worker", function ({ state, detail }) {
            if (state === "ready") {
                if (workerStatusShown) {
                    workerStatusShown = false;
                    node.status({});
                }
                return;
            }
            let status = WORKER_STATUS[state];
            if (state === "restarting" && detail && detail.message) {
                status = Object.assign({}, status, { text: RED._("websocket.status.worker-down") + ": " + detail.message });
            }
            if (state === "failed") {
                const missing = detail && detail.code === "python-missing";
                status = {
                    fill: "red", shape: "ring",
                    text: missing ? "websocket.status.python-missing" : "websocket.status.install-failed",
                };
            }
            if (status && (state !== "starting" || workerStatusShown)) {
                workerStatusShown = true;
                node.status(status);
            }
        });
    }

    function WebSocketInNode(n) {
        RED.nodes.createNode(this, n);
        const node = this;
        node.server = n.client ? n.client : n.server;
        node.serverConfig = RED.nodes.getNode(node.server);
        if (node.serverConfig) {
            followStatus(node);
            node.serverConfig.registerInputNode(node);
        } else {
            node.error(RED._("websocket.errors.missing-conf"));
        }
        node.on("close", function (done) {
            node.status({});
            if (node.serverConfig) {
                Promise.resolve(node.serverConfig.removeInputNode(node)).then(() => done());
            } else {
                done();
            }
        });
    }
    RED.nodes.registerType("py-websocket in", WebSocketInNode);

    function WebSocketOutNode(n) {
        RED.nodes.createNode(this, n);
        const node = this;
        node.server = n.client ? n.client : n.server;
        node.serverConfig = RED.nodes.getNode(node.server);
        if (!node.serverConfig) {
            node.error(RED._("websocket.errors.missing-conf"));
            return;
        }
        followStatus(node);
        node.serverConfig.addUser(node);
        node.on("input", function (msg, send, done) {
            const config = node.serverConfig;
            let data;
            try {
                data = toWireData(msg, config.wholemsg, RED.util.ensureString);
            } catch (err) {
                done(err);
                return;
            }
            if (data !== undefined) {
                const sid = replySessionOf(msg);
                if (sid !== null) {
                    config.reply(sid, data);
                } else if (!config.broadcast(data)) {
                    node.warn(RED._("websocket.errors.send-error") + RED._("websocket.errors.not-connected"));
                }
            }
            done();
        });
        node.on("close", function (done) {
            node.status({});
            node.serverConfig.removeUser(node).then(() => done());
        });
    }
    RED.nodes.registerType("py-websocket out", WebSocketOutNode);
};
