/**
 * The status of an in or out node, following its config node as core does ("connected N",
 * "error", "disconnected", each with `event` and the `_session` of the client that came or went,
 * so a Status node can follow sessions), plus a client connection's own states (connecting,
 * reconnecting in N s, waiting for a connect action, gave up; the URL when the flow changed it)
 * and the worker's (starting, installing, restarting, Python missing). A listener whose
 * backplane is down shows it (yellow ring, "backplane down", after the count while clients are
 * connected) until it is up again. With a backplane up, "connected N" is followed by the total
 * of every instance once it is known ("connected 12 (47 total)"), and follows it as it changes.
 */
"use strict";

const WORKER_STATUS = {
    installing: { fill: "yellow", shape: "ring", text: "websocket.status.installing" },
    starting: { fill: "yellow", shape: "ring", text: "websocket.status.starting" },
    restarting: { fill: "red", shape: "ring", text: "websocket.status.worker-down" },
};

// Stand for the count and the total in the translated "connected N" until an event fills them in.
const COUNT = "\u0000";
const TOTAL = "\u0001";

function followStatus(RED, node, config) {
    let connectedTemplate = null;
    let totalTemplate = null;

    /**
     * "connected N" (or "connected N (T total)" when the event has a total), once per
     * open/close event however many nodes show it, from the text translated once with
     * stand-ins for the numbers. A call of i18next costs ~50 µs even with the count as a string
     * (with a number, plural rules too): in the connection-scale benchmark's profile that was a
     * sixth of Node-RED's CPU per connection. The catalog's singular and plural forms are the
     * same, and a string count never picked between them.
     */
    function connectedText(event) {
        if (event.text === undefined) {
            if (typeof event.total === "number") {
                if (totalTemplate === null) {
                    totalTemplate = RED._("websocket.status.connected-total", { count: COUNT, total: TOTAL });
                }
                event.text = totalTemplate.replace(COUNT, String(event.count)).replace(TOTAL, String(event.total));
            } else {
                if (connectedTemplate === null) connectedTemplate = RED._("websocket.status.connected", { count: COUNT });
                event.text = connectedTemplate.replace(COUNT, String(event.count));
            }
        }
        return event.text;
    }

    /** "reconnecting in N s": whole seconds, tenths below 10 s. */
    function seconds(delay) {
        return String(Number(delay.toFixed(delay < 10 ? 1 : 0)));
    }

    function clientStateStatus({ state, delay, gaveUp, url }) {
        if (state === "connecting") {
            return { fill: "yellow", shape: "ring",
                text: url ? RED._("websocket.status.connecting-to", { url }) : "websocket.status.connecting" };
        }
        if (state === "waiting" && typeof delay === "number") {
            return { fill: "red", shape: "ring", text: RED._("websocket.status.reconnecting", { seconds: seconds(delay) }) };
        }
        if (state === "idle" && gaveUp) {
            return { fill: "red", shape: "ring", text: RED._("websocket.status.gave-up", { count: String(gaveUp) }) };
        }
        if (state === "idle") return { fill: "grey", shape: "ring", text: "websocket.status.idle" };
        return null;
    }

    let backplaneDown = false;
    let backplaneText = null;

    /** A listener's status while its backplane is down: its count, and that. */
    function withBackplane(status, count) {
        if (!backplaneDown) return status;
        if (backplaneText === null) backplaneText = RED._("websocket.status.backplane-down");
        const text = count > 0 ? connectedText({ count }) + ", " + backplaneText : backplaneText;
        return Object.assign({}, status, { fill: "yellow", shape: "ring", text });
    }

    let workerStatusShown = false;
    config.on("backplane", function ({ state, count, total }) {
        backplaneDown = state === "down";
        workerStatusShown = false;
        if (backplaneDown) node.status(withBackplane({}, count));
        else node.status(count > 0 ? { fill: "green", shape: "dot", text: connectedText({ count, total }) } : {});
    });
    // The other instances' count changed (or became known, or unknown): only "connected N" shows it.
    config.on("total", function (event) {
        if (backplaneDown || event.count === 0) return;
        workerStatusShown = false;
        node.status({ fill: "green", shape: "dot", text: connectedText(event) });
    });
    config.on("client-state", function (event) {
        const status = clientStateStatus(event);
        if (status) {
            workerStatusShown = false;
            node.status(status);
        }
    });
    config.on("opened", function (event) {
        workerStatusShown = false;
        node.status(withBackplane({
            fill: "green", shape: "dot",
            text: event.url ? RED._("websocket.status.connected-to", { url: event.url }) : connectedText(event),
            event: "connect",
            _session: { type: "websocket", id: event.id },
        }, event.count));
    });
    config.on("session-error", function (event) {
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
        node.status(withBackplane(status, event.count));
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

module.exports = { followStatus };
