/**
 * The migrate command on Node-RED's own WebSocket example flows: only the four core WebSocket
 * types change, every other property and wire stays, dry runs write nothing, and what is not a
 * flow file is refused. The migrated flow then runs on these nodes.
 */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const should = require("should");
const helper = require("node-red-node-test-helper");
const websocketNodes = require("../nodes/websocket.js");
const { waitFor, connectClient, closeClient, wsUrl, withHelper } = require("./lib/harness");

helper.init(require("./lib/node-red-path").redMain);

const CLI = path.resolve(__dirname, "..", "bin", "cli.js");
const CORE_EXAMPLES = path.join(require("./lib/node-red-path").coreNodesDir(), "examples", "network", "websocket");
const CORE_TYPES = ["websocket in", "websocket out", "websocket-listener", "websocket-client"];

function cli(args) {
    const result = childProcess.spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("migrate command", function () {
    let dir;
    beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyws-migrate-")); });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    const examples = fs.readdirSync(CORE_EXAMPLES).filter((name) => name.endsWith(".json"));

    it("finds Node-RED's own WebSocket examples to work on", function () {
        examples.length.should.be.aboveOrEqual(2);
    });

    for (const example of examples) {
        it(`migrates "${example}" changing only the WebSocket types`, function () {
            const file = path.join(dir, "flows.json");
            fs.copyFileSync(path.join(CORE_EXAMPLES, example), file);
            const before = JSON.parse(fs.readFileSync(file, "utf8"));
            const { code, stdout } = cli(["migrate", file]);
            code.should.equal(0);
            const after = JSON.parse(fs.readFileSync(file, "utf8"));
            JSON.parse(fs.readFileSync(file + ".backup", "utf8")).should.eql(before);
            after.length.should.equal(before.length);
            let changed = 0;
            before.forEach((node, i) => {
                if (CORE_TYPES.includes(node.type)) {
                    after[i].type.should.equal("py-" + node.type);
                    changed++;
                }
                const { type: typeBefore, ...restBefore } = node;
                const { type: typeAfter, ...restAfter } = after[i];
                restAfter.should.eql(restBefore);
                if (!CORE_TYPES.includes(typeBefore)) typeAfter.should.equal(typeBefore);
            });
            changed.should.be.above(0);
            stdout.split("\n").filter((line) => line.includes(" -> ")).length.should.equal(changed);
        });
    }

    it("prints what would change on a dry run and writes nothing", function () {
        const file = path.join(dir, "flows.json");
        fs.copyFileSync(path.join(CORE_EXAMPLES, examples[0]), file);
        const original = fs.readFileSync(file, "utf8");
        const { code, stdout } = cli(["migrate", file, "--dry-run"]);
        code.should.equal(0);
        stdout.should.match(/websocket (in|out) -> py-websocket (in|out)/);
        stdout.should.match(/dry run: \d+ node\(s\) would change, nothing written/);
        fs.readFileSync(file, "utf8").should.equal(original);
        fs.existsSync(file + ".backup").should.be.false();
    });

    it("refuses a file that is not a flow, and leaves it alone", function () {
        const file = path.join(dir, "settings.json");
        fs.writeFileSync(file, JSON.stringify({ uiPort: 1880 }));
        const { code, stderr } = cli(["migrate", file]);
        code.should.equal(2);
        stderr.should.match(/not a Node-RED flow file/);
        fs.readFileSync(file, "utf8").should.equal(JSON.stringify({ uiPort: 1880 }));
    });

    it("says there is nothing to change in a flow without WebSocket nodes", function () {
        const file = path.join(dir, "flows.json");
        fs.writeFileSync(file, JSON.stringify([{ id: "a", type: "inject", wires: [] }]));
        const { code, stdout } = cli(["migrate", file]);
        code.should.equal(0);
        stdout.should.match(/nothing to change/);
        fs.existsSync(file + ".backup").should.be.false();
    });

    describe("a migrated core flow", function () {
        withHelper(helper);

        it("runs on these nodes after changing only type", async function () {
            const core = [
                { id: "l", type: "websocket-listener", path: "/migrated", wholemsg: "false" },
                { id: "i", type: "websocket in", name: "", server: "l", client: "", wires: [["o"]] },
                { id: "o", type: "websocket out", name: "", server: "l", client: "" },
            ];
            const file = path.join(dir, "flows.json");
            fs.writeFileSync(file, JSON.stringify(core));
            cli(["migrate", file]).code.should.equal(0);
            await helper.load(websocketNodes, JSON.parse(fs.readFileSync(file, "utf8")));
            const ws = await connectClient(wsUrl(helper, "/migrated"));
            ws.send("migrated");
            await waitFor("the echo", () => ws.received.length === 1);
            ws.received[0].should.equal("migrated");
            should.exist(helper.getNode("l"));
            await closeClient(ws);
        });
    });
});
