/** Flows the node tests load with node-red-node-test-helper. */
"use strict";

/** A listener on `path` whose in node is wired straight to its out node: every message echoes. */
function echoFlow(path) {
    return [
        { id: "listener", type: "py-websocket-listener", path, wholemsg: "false" },
        { id: "in", type: "py-websocket in", server: "listener", client: "", wires: [["out"]] },
        { id: "out", type: "py-websocket out", server: "listener", client: "" },
    ];
}

/** A client config node for `url` with core's defaults, and `props` over them. */
function clientConfig(url, props = {}) {
    return Object.assign({ id: "client", type: "py-websocket-client", path: url, tls: "", wholemsg: "false",
        subprotocol: "", hb: "0", headers: [] }, props);
}

module.exports = { echoFlow, clientConfig };
