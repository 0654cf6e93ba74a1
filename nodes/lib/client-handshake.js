/**
 * What a client connection sends in its opening handshake, from its config node: the upgrade
 * headers exactly as core 4.x builds them, an Origin header from the node's Origin field, an
 * Authorization header from the node's credentials (never stored in the flow JSON), the headers
 * of a `connect` action on top, and the TLS options of its tls-config node.
 */
"use strict";

function textOf(value) {
    return Buffer.isBuffer(value) ? value.toString() : value;
}

/** headers with `extra` ([name, value] pairs) replacing those of the same names (any case). */
function withHeaders(headers, extra) {
    const names = new Set(extra.map(([name]) => name.toLowerCase()));
    return headers.filter(([name]) => !names.has(name.toLowerCase())).concat(extra);
}

/**
 * Upgrade headers as [name, value] pairs: the list, then the Origin field and the credentials'
 * Authorization, each replacing an entry of the list with its name.
 */
function upgradeHeaders(RED, node, props) {
    const headers = [];
    for (const header of props.headers || []) {
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
    const own = [];
    if (props.origin) own.push(["Origin", props.origin]);
    const authorization = authorizationOf(props.authType, node.credentials);
    if (authorization) own.push(["Authorization", authorization]);
    return withHeaders(headers, own);
}

function authorizationOf(authType, credentials = {}) {
    if (authType === "basic" && (credentials.user || credentials.password)) {
        return "Basic " + Buffer.from(`${credentials.user || ""}:${credentials.password || ""}`).toString("base64");
    }
    if (authType === "bearer" && credentials.token) {
        return "Bearer " + credentials.token;
    }
    return null;
}

/** The `tls` option of `connect` from the tls-config node with id tlsId, or null. */
function tlsOptions(RED, tlsId) {
    const tlsNode = tlsId ? RED.nodes.getNode(tlsId) : null;
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

module.exports = { upgradeHeaders, withHeaders, tlsOptions };
