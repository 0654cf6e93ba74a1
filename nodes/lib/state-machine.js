/**
 * A small explicit state machine: the allowed transitions written once as a table
 * ({state: [states it may go to]}), the current state, and a listener told of every change.
 * The worker process (worker-process.js) and a client connection (client.js) each have one.
 *
 * A transition the table does not allow is a bug; it is refused and reported (never thrown:
 * it would happen inside an event handler, and Node-RED must not crash because of us).
 */
"use strict";

class StateMachine {
    /**
     * name: for the report; transitions: the table; onChange(to, from, detail) after each change;
     * onRefused(message) for a transition the table does not allow.
     */
    constructor(name, transitions, initial, { onChange = () => {}, onRefused = () => {} } = {}) {
        for (const [from, targets] of Object.entries(transitions)) {
            for (const to of targets) {
                if (!(to in transitions)) throw new Error(`${name}: ${from} -> ${to}: unknown state ${to}`);
            }
        }
        if (!(initial in transitions)) throw new Error(`${name}: unknown initial state ${initial}`);
        this.name = name;
        this.transitions = transitions;
        this.state = initial;
        this.onChange = onChange;
        this.onRefused = onRefused;
    }

    is(...states) {
        return states.includes(this.state);
    }

    can(to) {
        return this.transitions[this.state].includes(to);
    }

    /** Moves to `to` and returns true, or reports a transition the table does not allow and returns false. */
    to(to, detail) {
        const from = this.state;
        if (!this.can(to)) {
            this.onRefused(`${this.name}: ${from} -> ${to} is not an allowed transition`);
            return false;
        }
        this.state = to;
        this.onChange(to, from, detail);
        return true;
    }
}

module.exports = { StateMachine };
