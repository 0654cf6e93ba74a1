/**
 * Which Node-RED the tests run against: the devDependency (4.x), or the installation named by
 * NODE_RED_PATH (a directory holding node_modules/node-red), e.g. Node-RED 5 on Node 22.
 */
"use strict";

const path = require("path");

const searchFrom = process.env.NODE_RED_PATH ? [path.resolve(process.env.NODE_RED_PATH)] : [path.resolve(__dirname, "..", "..")];

const redDir = path.dirname(require.resolve("node-red/package.json", { paths: searchFrom }));

module.exports = {
    redDir,
    redMain: require.resolve("node-red", { paths: searchFrom }),
    redJs: path.join(redDir, "red.js"),
    /** A module of Node-RED's core nodes, e.g. "core/network/05-tls.js". */
    coreNodePath: (file) => require.resolve(`@node-red/nodes/${file}`, { paths: [redDir, ...searchFrom] }),
    coreNodesDir: () => path.dirname(require.resolve("@node-red/nodes/package.json", { paths: [redDir, ...searchFrom] })),
};
