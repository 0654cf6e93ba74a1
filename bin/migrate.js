/**
 * Turns a core WebSocket flow into one using these nodes: only the `type` of the four core
 * WebSocket node types changes; every property, id and wire stays as it is, and nothing else in
 * the flow is touched.
 */
"use strict";

const TYPE_MAP = {
    "websocket in": "py-websocket in",
    "websocket out": "py-websocket out",
    "websocket-listener": "py-websocket-listener",
    "websocket-client": "py-websocket-client",
};

class MigrationError extends Error {}

/** Returns {flows, changes}: a new flow array and one {id, name, from, to} per changed node. */
function migrateFlows(flows) {
    if (!Array.isArray(flows) || !flows.every((node) => node && typeof node === "object" && typeof node.id === "string")) {
        throw new MigrationError("not a Node-RED flow file: expected a JSON array of nodes, each with an id");
    }
    const changes = [];
    const migrated = flows.map((node) => {
        const to = TYPE_MAP[node.type];
        if (!to) {
            return node;
        }
        changes.push({ id: node.id, name: node.name || node.path || "", from: node.type, to });
        return Object.assign({}, node, { type: to });
    });
    return { flows: migrated, changes };
}

module.exports = { migrateFlows, MigrationError, TYPE_MAP };
