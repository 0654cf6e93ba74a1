/** Flows the node tests load with node-red-node-test-helper. */
"use strict";

const fs = require("fs");
const path = require("path");

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

/**
 * An example flow of examples/flows/ as a test loads it: credentials apart, debug nodes as
 * helper nodes, and port 1880 (client URLs, inject URLs) replaced by `port`. Returns {flow,
 * credentials, byName(type, name) -> id}.
 */
function exampleFlow(name, port) {
    const file = path.join(__dirname, "..", "..", "examples", "flows", `${name}.json`);
    const flow = JSON.parse(fs.readFileSync(file, "utf8"));
    const credentials = {};
    const local = (url) => url.replace(":1880", ":" + port);
    for (const node of flow) {
        if (node.credentials) {
            credentials[node.id] = node.credentials;
            delete node.credentials;
        }
        if (node.type === "debug") node.type = "helper";
        if (node.type === "py-websocket-client") node.path = local(node.path);
        for (const prop of node.props || []) {
            if (prop.p === "url") prop.v = local(prop.v);
        }
    }
    const byName = (type, nodeName) => flow.find((node) => node.type === type && node.name === nodeName).id;
    return { flow, credentials, byName };
}

module.exports = { echoFlow, clientConfig, exampleFlow };
