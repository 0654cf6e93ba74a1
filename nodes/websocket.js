/**
 * The four node types. py-websocket-listener and py-websocket-client are config nodes
 * (lib/config-node.js, with the roles lib/listener.js and lib/client.js); py-websocket in and
 * py-websocket out are below. They keep the core nodes' properties and behaviour; the WebSocket
 * work itself is the Python worker's, reached through the process-wide bridge (lib/bridge.js).
 */
module.exports = function (RED) {
    "use strict";
    const { getBridge } = require("./lib/bridge");
    const { configNodeType } = require("./lib/config-node");
    const { followStatus } = require("./lib/status");
    const { toWireData, replySessionOf } = require("./lib/messages");
    const { closeRequestOf } = require("./lib/close-request");
    const { clientActionOf } = require("./lib/client-action");

    const bridge = getBridge();
    bridge.configure({ settings: RED.settings, log: RED.log, translate: RED._ });

    const WebSocketConfigNode = configNodeType(RED, bridge);
    RED.nodes.registerType("py-websocket-listener", WebSocketConfigNode, {
        settings: {
            pyWebsocketListenerPython: { value: "", exportable: false },
        },
        // Authentication secrets: lines "user:password", lines "[label:]token", the JWT secret or
        // public key (PEM); the backplane's Redis password. Never in the flow JSON, never sent
        // back to the editor.
        credentials: {
            users: { type: "password" },
            tokens: { type: "password" },
            jwtKey: { type: "password" },
            backplanePassword: { type: "password" },
        },
    });
    RED.nodes.registerType("py-websocket-client", WebSocketConfigNode, {
        credentials: {
            user: { type: "text" },
            password: { type: "password" },
            token: { type: "password" },
        },
    });

    function configOf(node, n) {
        node.server = n.client ? n.client : n.server;
        const config = RED.nodes.getNode(node.server);
        if (!config) node.error(RED._("websocket.errors.missing-conf"));
        return config;
    }

    function WebSocketInNode(n) {
        RED.nodes.createNode(this, n);
        const node = this;
        // "send connection events": a second output for connect / disconnect / error.
        node.events = n.events === true;
        node.serverConfig = configOf(node, n);
        if (node.serverConfig) {
            followStatus(RED, node, node.serverConfig);
            node.serverConfig.registerInputNode(node);
        }
        node.on("close", function (done) {
            node.status({});
            if (node.serverConfig) {
                node.serverConfig.removeInputNode(node).then(() => done());
            } else {
                done();
            }
        });
    }
    RED.nodes.registerType("py-websocket in", WebSocketInNode);

    function WebSocketOutNode(n) {
        RED.nodes.createNode(this, n);
        const node = this;
        node.serverConfig = configOf(node, n);
        // Replies to a session that has gone fail the message (a Catch node sees them), not just
        // those to a session the worker dropped.
        node.reportUndelivered = n.reportUndelivered === true;
        if (!node.serverConfig) return;
        followStatus(RED, node, node.serverConfig);
        node.serverConfig.addUser(node);

        /**
         * msg.action. Connect mode: "connect", "disconnect", "reconnect" (client-action.js).
         * Listen mode: "close" closes a session (msg._session) or every session of the listener.
         */
        function action(msg, config, done) {
            let request;
            if (!config.isServer) {
                try {
                    request = clientActionOf(msg, RED._);
                } catch (err) {
                    done(err);
                    return;
                }
                if (config.clientAction(request) === "not-ready") {
                    node.debug(RED._("websocket.log.client-action-later", { action: request.action }));
                }
                done();
                return;
            }
            try {
                request = closeRequestOf(msg, RED._);
            } catch (err) {
                done(err);
                return;
            }
            const sid = replySessionOf(msg);
            const result = config.closeSessions(sid, request.code, request.reason);
            if (result === "gone") node.debug(RED._("websocket.log.close-gone", { id: sid }));
            done();
        }

        /** A reply that found its session gone: an error when asked for, or when the worker dropped it. */
        function undelivered(config, sid) {
            const gone = config.whyGone(sid);
            if (!node.reportUndelivered && !(gone && gone.by === "error" && !gone.workerLost)) return null;
            let why = " " + RED._("websocket.errors.session-gone", { id: sid });
            if (gone) why += ` (${gone.error || gone.by + " " + gone.code})`;
            return new Error(RED._("websocket.errors.send-error") + why);
        }

        node.on("input", function (msg, send, done) {
            const config = node.serverConfig;
            if (msg.action !== undefined) {
                action(msg, config, done);
                return;
            }
            let data;
            try {
                data = toWireData(msg, config.wholemsg, RED.util.ensureString);
            } catch (err) {
                done(err);
                return;
            }
            if (data !== undefined) {
                const sid = replySessionOf(msg);
                const result = sid !== null ? config.reply(sid, data) : config.sendMessage(data);
                if (result === "not-connected") {
                    node.warn(RED._("websocket.errors.send-error") + RED._("websocket.errors.not-connected"));
                } else if (result === "ignored" && config.isServer) {
                    const err = undelivered(config, sid);
                    if (err) {
                        done(err);
                        return;
                    }
                } else if (result === "busy") {
                    done(new Error(RED._("websocket.errors.worker-busy", { bytes: bridge.limits.maxWaitingBytes })));
                    return;
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
