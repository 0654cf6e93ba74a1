/**
 * Every option in one place (nodes/lib/options.js): the maps Node sends carry every option that
 * docs/protocol.md lists for `configure`, `listen` and `connect`, with a value (the worker does not
 * fill in defaults of its own); settings.js values are validated, a bad one is reported once and
 * the default used; config node properties are parsed as core parses them.
 */
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const should = require("should");
const helper = require("node-red-node-test-helper");
const websocketNodes = require("../nodes/websocket.js");
const {
    SETTINGS, settingsValues, workerCount, configProperties, configureOptions, listenOptions, connectOptions,
    listenerProperties,
} = require("../nodes/lib/options");
const { waitFor, connectClient, closeClient, wsUrl, withHelper } = require("./lib/harness");
const { echoFlow } = require("./lib/flows");

helper.init(require("./lib/node-red-path").redMain);

const PROTOCOL = fs.readFileSync(path.join(__dirname, "..", "docs", "protocol.md"), "utf8");

/** The option names docs/protocol.md lists after "options:" in the row of a command. */
function documentedOptions(command) {
    const row = PROTOCOL.split("\n").find((line) => line.startsWith(`| \`["${command}"`));
    should.exist(row, `no row for ${command} in docs/protocol.md`);
    let text = row.slice(row.indexOf("options:") + "options:".length);
    // Drop what is in parentheses (types, nested fields such as tls's), innermost first.
    for (let before = null; before !== text;) {
        before = text;
        text = text.replace(/\([^()]*\)/g, "");
    }
    return Array.from(text.matchAll(/`(\w+)`/g), (match) => match[1]);
}

describe("options", function () {
    const defaults = settingsValues({});

    it("sends every option docs/protocol.md lists for configure, listen and connect, each with a value", function () {
        const sent = {
            configure: configureOptions(defaults, "a1b2c3d4", 0),
            listen: listenOptions(defaults, "/path"),
            connect: connectOptions(defaults, { url: "ws://127.0.0.1:1/", subprotocols: [], headers: [],
                heartbeat: 0, tls: null, proxy: null }),
        };
        for (const [command, options] of Object.entries(sent)) {
            const documented = documentedOptions(command);
            documented.length.should.be.above(1, command);
            Object.keys(options).sort().should.eql(documented.sort(), command);
            for (const [name, value] of Object.entries(options)) {
                should(value === undefined).be.false(`${command}.${name} has no value`);
            }
        }
        // nil on purpose: accept the client's first offer, as core's ws server does.
        should(sent.listen.subprotocols).be.null();
    });

    it("uses the defaults of the README for settings that are unset, null or empty", function () {
        settingsValues({ pyWebsocketListenerMaxMessageSize: null, pyWebsocketListenerPython: "" }).should.eql(defaults);
        defaults.should.containDeep({ handoff: true, maxMessageSize: 104857600, compression: false,
            handshakeTimeout: 10, writeLimit: 16777216, flowWindow: 1000, flowWindowBytes: 8388608,
            clientQueueSize: 1000 });
    });

    it("takes valid values, and reports each bad one once and uses its default", function () {
        const reports = [];
        const report = (...args) => reports.push(args);
        const bad = { pyWebsocketListenerMaxMessageSize: "big", pyWebsocketListenerFlowWindow: 0,
            pyWebsocketListenerCompression: "yes", pyWebsocketListenerHandshakeTimeout: 2.5,
            pyWebsocketClientQueueSize: 0 };
        const values = settingsValues(bad, report);
        values.maxMessageSize.should.equal(SETTINGS.maxMessageSize.default);
        values.flowWindow.should.equal(SETTINGS.flowWindow.default);
        values.compression.should.equal(false);
        values.handshakeTimeout.should.equal(2.5);
        values.clientQueueSize.should.equal(0);
        reports.map((args) => args[0]).sort().should.eql(["pyWebsocketListenerCompression",
            "pyWebsocketListenerFlowWindow", "pyWebsocketListenerMaxMessageSize"]);
        reports.find((args) => args[0] === "pyWebsocketListenerFlowWindow").should.eql([
            "pyWebsocketListenerFlowWindow", 0, "a whole number of messages >= 1", 1000]);
        settingsValues(bad, report);
        reports.length.should.equal(3); // once per process and value
    });

    it("takes 1 to 16 workers or \"auto\" (one per CPU, at most 8), and reports anything else", function () {
        defaults.workers.should.equal(1);
        const reports = [];
        const report = (...args) => reports.push(args);
        settingsValues({ pyWebsocketWorkers: 4 }, report).workers.should.equal(4);
        settingsValues({ pyWebsocketWorkers: "auto" }, report).workers.should.equal("auto");
        for (const bad of [0, 17, 2.5, "2", true]) settingsValues({ pyWebsocketWorkers: bad }, report).workers.should.equal(1);
        reports.map((args) => args[1]).should.eql([0, 17, 2.5, "2", true]);
        reports[0].should.eql(["pyWebsocketWorkers", 0, 'a whole number of workers from 1 to 16, or "auto"', 1]);
        workerCount(3).should.equal(3);
        const cpus = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
        workerCount("auto").should.equal(Math.min(Math.max(cpus, 1), 8));
    });

    it("parses config node properties as core does", function () {
        configProperties({ path: "/ws", wholemsg: "true" }).should.containDeep({
            path: "/ws", isServer: true, wholemsg: true, subprotocol: [], heartbeatSeconds: 0, authType: "" });
        configProperties({ path: "WSS://host/x", wholemsg: "false", subprotocol: " a, b ,", hb: "15",
            authType: "bearer" }).should.containDeep({ isServer: false, wholemsg: false,
            subprotocol: ["a", "b", ""], heartbeatSeconds: 15, authType: "bearer" });
        configProperties({ path: "ws://h", hb: "0" }).heartbeatSeconds.should.equal(0);
        configProperties({ path: "ws://h", hb: "" }).heartbeatSeconds.should.equal(0);
    });
});

describe("a listener's backplane", function () {
    const on = { backplane: true };

    it("is off unless ticked, and takes its own URL, namespace and password", function () {
        should(listenerProperties({}).backplane).be.null();
        should(listenerProperties({ backplaneUrl: "redis://h:1/0" }).backplane).be.null();
        listenerProperties(Object.assign({ backplaneUrl: " rediss://h:1/2 ", backplaneNamespace: "app1" }, on),
            { backplanePassword: "pw" }, settingsValues({}), {}).backplane
            .should.eql({ url: "rediss://h:1/2", namespace: "app1", password: "pw" });
    });

    it("falls back on settings.js for the URL and namespace, and on the environment for the password", function () {
        const values = settingsValues({ pyWebsocketListenerBackplane: "redis://shared:6379/0",
            pyWebsocketListenerBackplaneNamespace: "site" });
        listenerProperties(on, {}, values, { NODE_RED_BACKPLANE_PASSWORD: "from-env" }).backplane
            .should.eql({ url: "redis://shared:6379/0", namespace: "site", password: "from-env" });
        should(listenerProperties(on, {}, settingsValues({}), {}).backplane).be.null();
    });

    it("reports a missing or bad URL (serving this instance only), never the password", function () {
        const missing = listenerProperties(on, { backplanePassword: "secret" }, settingsValues({}), {});
        should(missing.backplane).be.null();
        missing.problems.join().should.match(/no URL/).and.not.match(/secret/);
        const bad = listenerProperties(Object.assign({ backplaneUrl: "http://h" }, on), {}, settingsValues({}), {});
        should(bad.backplane).be.null();
        bad.problems.join().should.match(/redis:\/\//);
    });
});

describe("a bad value in settings.js", function () {
    withHelper(helper, { pyWebsocketListenerWriteLimit: -1 });

    it("is logged with what it should be, and the listener runs with the default", async function () {
        await helper.load(websocketNodes, echoFlow("/opts"));
        const ws = await connectClient(wsUrl(helper, "/opts"));
        ws.send("still echoes");
        await waitFor("the echo", () => ws.received.length === 1);
        await closeClient(ws);
        const warnings = helper.log().args.filter((args) => args[0].level === helper.log().WARN &&
            /pyWebsocketListenerWriteLimit in settings.js must be a whole number of bytes >= 0 \(0 = no limit\), not -1; using 16777216/
                .test(String(args[0].msg)));
        warnings.length.should.equal(1);
    });
});
