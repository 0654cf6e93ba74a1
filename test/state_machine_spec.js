/**
 * The explicit state machines (nodes/lib/state-machine.js) of the worker process and of a client
 * connection: their tables are whole, and a transition a table does not allow is refused and
 * reported, never thrown into Node-RED.
 */
"use strict";

const should = require("should");
const { StateMachine } = require("../nodes/lib/state-machine");
const worker = require("../nodes/lib/worker-process");
const client = require("../nodes/lib/client");

describe("state machines", function () {
    it("have tables whose every target is a state and every state is reachable from the first", function () {
        for (const [name, table, first] of [["worker", worker.TRANSITIONS, "idle"], ["client", client.TRANSITIONS, "idle"]]) {
            new StateMachine(name, table, first); // throws on a target that is not a state
            const reached = new Set([first]);
            for (let grew = true; grew;) {
                grew = false;
                for (const state of Array.from(reached)) {
                    for (const to of table[state]) if (!reached.has(to)) grew = reached.add(to);
                }
            }
            Array.from(reached).sort().should.eql(Object.keys(table).sort(), name);
        }
    });

    it("moves along allowed transitions, telling the listener, and refuses the others without throwing", function () {
        const changes = [];
        const refused = [];
        const machine = new StateMachine("worker", worker.TRANSITIONS, "idle", {
            onChange: (to, from, detail) => changes.push([from, to, detail]),
            onRefused: (message) => refused.push(message),
        });
        machine.to("starting").should.be.true();
        machine.to("ready").should.be.true();
        machine.to("installing").should.be.false();
        machine.state.should.equal("ready");
        machine.to("restarting", { message: "exit code 1" }).should.be.true();
        changes.should.eql([["idle", "starting", undefined], ["starting", "ready", undefined],
            ["ready", "restarting", { message: "exit code 1" }]]);
        refused.should.eql(["worker: ready -> installing is not an allowed transition"]);
        machine.to("stopped").should.be.true();
        machine.is("stopped").should.be.true();
        machine.can("starting").should.be.false(); // nothing starts while Node-RED is stopping
    });

    it("rejects a table naming a state it does not have", function () {
        should.throws(() => new StateMachine("t", { a: ["b"] }, "a"), /a -> b: unknown state b/);
    });
});
