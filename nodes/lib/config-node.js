/**
 * py-websocket-listener and py-websocket-client, the config nodes. As in core, one constructor
 * serves both types and the path decides the role: a ws:// or wss:// URL connects (client.js),
 * anything else listens (listener.js). Each role keeps its own state; the in and out nodes use
 * this interface, whatever the role:
 *
 *   path, isServer, wholemsg, subprotocol   the properties, as core exposes them
 *   registerInputNode(node), removeInputNode(node) -> Promise   in nodes get every message
 *   addUser(node), removeUser(node) -> Promise   a client connects only while it has users
 *   sendMessage(data) -> "sent" | "queued" | "not-connected" | "busy"   listener: to every session;
 *     client: to the server, held while the connection is down
 *   reply(sid, data) -> "sent" | "ignored" | "busy"   listener: to that session only (ignored once
 *     it is gone); client: ignored, so an in -> out wire cannot loop (as core)
 *   closeSessions(sid or null, code, reason) -> "sent" | "gone" | "not-ready"   listener only
 *   clientAction(request) -> "sent" | "not-ready"   client only: a flow's connect / disconnect /
 *     reconnect (client-action.js)
 *   whyGone(sid) -> {code, reason, by, error, workerLost?} | null   listener only: a session that went lately
 *   events "opened" {count, id, url?} and "closed" {count, id}, "session-error" {err, id},
 *     "worker" {state, detail}; a client's also "client-state" {state, delay, gaveUp, url}
 *   in nodes whose `events` is true also get connection events on their second output
 *
 * ("session-error", not core's "erro": an EventEmitter "error" event without a listener throws.
 * "sendMessage", not "send": Node-RED gives every node its own send(), for its wires.)
 */
"use strict";

const { configProperties } = require("./options");
const { toFlowMessage } = require("./messages");
const { Listener } = require("./listener");
const { ClientConnection } = require("./client");

function configNodeType(RED, bridge) {
    function WebSocketConfigNode(n) {
        RED.nodes.createNode(this, n);
        const props = configProperties(n);
        this.path = props.path;
        this.isServer = props.isServer;
        this.wholemsg = props.wholemsg;
        this.subprotocol = props.subprotocol;
        this._inputNodes = [];
        this._eventNodes = [];
        this._users = new Set();
        this.setMaxListeners(0);
        this.role = props.isServer ? new Listener(this, RED, bridge, n) : new ClientConnection(this, RED, bridge, props, n);
        this.on("close", (done) => {
            this._inputNodes = [];
            this._eventNodes = [];
            this.role.close().then(() => done());
        });
    }

    WebSocketConfigNode.prototype.registerInputNode = function (node) {
        this._inputNodes.push(node);
        if (node.events) this._eventNodes.push(node);
        return this.addUser(node);
    };

    WebSocketConfigNode.prototype.removeInputNode = function (node) {
        this._inputNodes = this._inputNodes.filter((n) => n !== node);
        this._eventNodes = this._eventNodes.filter((n) => n !== node);
        return this.removeUser(node);
    };

    /** Whether some in node wants connection events (only then are they built). */
    WebSocketConfigNode.prototype.wantsEvents = function () {
        return this._eventNodes.length > 0;
    };

    /** A connection event (connection-events.js) to the second output of the in nodes that want it. */
    WebSocketConfigNode.prototype.deliverEvent = function (msg) {
        for (const input of this._eventNodes) {
            try {
                input.send([null, msg]);
            } catch (err) {
                this.error(RED._("websocket.errors.send-error") + " " + err.toString());
            }
        }
    };

    WebSocketConfigNode.prototype.closeSessions = function (sid, code, reason) {
        return this.role.closeSessions ? this.role.closeSessions(sid, code, reason) : "not-ready";
    };

    WebSocketConfigNode.prototype.clientAction = function (request) {
        return this.role.clientAction ? this.role.clientAction(request) : "not-ready";
    };

    WebSocketConfigNode.prototype.whyGone = function (sid) {
        return this.role.whyGone ? this.role.whyGone(sid) : null;
    };

    WebSocketConfigNode.prototype.addUser = function (node) {
        this._users.add(node);
        return this.role.usersChanged(this._users.size);
    };

    WebSocketConfigNode.prototype.removeUser = function (node) {
        this._users.delete(node);
        return this.role.usersChanged(this._users.size);
    };

    WebSocketConfigNode.prototype.sendMessage = function (data) {
        return this.role.sendMessage(data);
    };

    WebSocketConfigNode.prototype.reply = function (sid, data) {
        return this.role.reply(sid, data);
    };

    /** A WebSocket message from session `sid` (whose identity is `user`, if any) to every in node, as a flow message. */
    WebSocketConfigNode.prototype.deliver = function (sid, data, user) {
        const msg = toFlowMessage(data, this.wholemsg, sid, user);
        for (const input of this._inputNodes) {
            try {
                input.send(msg);
            } catch (err) {
                this.error(RED._("websocket.errors.send-error") + " " + err.toString());
            }
        }
    };

    return WebSocketConfigNode;
}

module.exports = { configNodeType };
