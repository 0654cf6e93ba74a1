/**
 * Reading Autobahn|Testsuite's reports (index.json and one JSON file per case), judging each
 * outcome against expected.json, and the text the run prints: a table per mode by case group,
 * the cases that differ from the target with what the peer did, and a closing summary.
 */
"use strict";

const fs = require("fs");
const path = require("path");

const COLUMNS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"];
const SHORT = { OK: "OK", "NON-STRICT": "NON-STRICT", INFORMATIONAL: "INFO", UNIMPLEMENTED: "UNIMPL", FAILED: "FAILED" };

/** Autobahn's case patterns: `*` matches anything, everything else literally, whole id. */
function patternMatcher(patterns) {
    const regexps = patterns.map((p) => new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`));
    return (id) => regexps.some((r) => r.test(id));
}

function loadExpected(file, knownModes) {
    const expected = JSON.parse(fs.readFileSync(file, "utf8"));
    if (!Array.isArray(expected.acceptable) || !Array.isArray(expected.exceptions)) {
        throw new Error(`${file}: needs "acceptable" and "exceptions" arrays`);
    }
    for (const rule of expected.exceptions) {
        if (!Array.isArray(rule.cases) || !Array.isArray(rule.accept) || !rule.why) {
            throw new Error(`${file}: every exception needs "cases", "accept" and "why": ${JSON.stringify(rule)}`);
        }
        for (const mode of rule.modes || []) {
            if (!knownModes.includes(mode)) throw new Error(`${file}: unknown mode ${mode} (known: ${knownModes.join(", ")})`);
        }
        rule.match = patternMatcher(rule.cases);
    }
    return expected;
}

/** The rule for one case in one mode: {accept, why, skip}. */
function ruleFor(expected, mode, id) {
    for (const rule of expected.exceptions) {
        if (rule.match(id) && (!rule.modes || rule.modes.includes(mode))) return rule;
    }
    return { accept: expected.acceptable, why: null, skip: false };
}

/** {caseId: {behavior, behaviorClose, remoteCloseCode, duration, reportfile}} of one agent. */
function readIndex(outdir, agent) {
    const file = path.join(outdir, "index.json");
    if (!fs.existsSync(file)) return null;
    const index = JSON.parse(fs.readFileSync(file, "utf8"));
    return index[agent] || {};
}

function readCase(outdir, entry) {
    try {
        return JSON.parse(fs.readFileSync(path.join(outdir, entry.reportfile), "utf8"));
    } catch (_) {
        return null;
    }
}

function group(id) {
    return id.split(".")[0];
}

function clip(text, length = 160) {
    const flat = String(text).replace(/\s+/g, " ").trim();
    return flat.length > length ? `${flat.slice(0, length - 1)}…` : flat;
}

/** What the peer did, in a line or two, from a case's JSON report. */
function whatHappened(detail) {
    if (!detail) return "no case report";
    const parts = [];
    if (detail.result) parts.push(clip(detail.result));
    if (detail.behaviorClose && detail.behaviorClose !== "OK" && detail.resultClose !== detail.result) {
        parts.push(`close ${detail.behaviorClose}: ${clip(detail.resultClose || "")}`);
    }
    if (detail.remoteCloseCode !== null && detail.remoteCloseCode !== undefined) {
        parts.push(`peer closed with ${detail.remoteCloseCode}` +
            (detail.remoteCloseReason ? ` "${clip(detail.remoteCloseReason, 80)}"` : ""));
    } else if (detail.droppedByMe) {
        parts.push("no close frame from the peer: Autobahn dropped the TCP connection");
    } else {
        parts.push("no close frame from the peer: it dropped the TCP connection");
    }
    return parts.join("; ");
}

/**
 * Judges a mode's results (from `outdir`, read at once: the reports may be removed later).
 * Returns {rows: [{id, outcome, rule, ok, entry, detail}], counts: {group: {outcome: n}}, differences};
 * `detail` (the case's own report) only for the rows that differ.
 */
function judge(expected, mode, ids, results, outdir) {
    const rows = [];
    const counts = {};
    for (const id of ids) {
        const entry = results ? results[id] : undefined;
        const outcome = entry ? entry.behavior : "MISSING";
        const rule = ruleFor(expected, mode, id);
        const ok = rule.accept.includes(outcome);
        rows.push({ id, outcome, rule, ok, entry, detail: !ok && entry ? readCase(outdir, entry) : null });
        const g = (counts[group(id)] = counts[group(id)] || {});
        g[outcome] = (g[outcome] || 0) + 1;
    }
    return { rows, counts, differences: rows.filter((row) => !row.ok) };
}

/** "3 FAILED (1.1.1, 6.1.1, 6.1.2)" per exception of expected.json that accepted an outcome outside `acceptable`. */
function acceptedLines(rows, acceptable) {
    const byRule = new Map();
    for (const row of rows) {
        if (!row.ok || !row.rule.why || acceptable.includes(row.outcome)) continue;
        const list = byRule.get(row.rule) || [];
        list.push(row);
        byRule.set(row.rule, list);
    }
    const lines = [];
    for (const [rule, list] of byRule) {
        const outcomes = {};
        for (const row of list) outcomes[row.outcome] = (outcomes[row.outcome] || 0) + 1;
        const ids = list.length <= 6 ? list.map((row) => row.id).join(", ") : rule.cases.join(", ");
        lines.push(`    accepted by expected.json: ${Object.entries(outcomes).map(([k, n]) => `${n} ${k}`).join(", ")} ` +
            `(${ids}): ${clip(rule.why, 90)}`);
    }
    return lines;
}

function pad(text, width, right = false) {
    text = String(text);
    return right ? text.padStart(width) : text.padEnd(width);
}

/** The per-group table of one mode. */
function groupTable(counts, categories) {
    const lines = [];
    const head = `    ${pad("group", 44)}${COLUMNS.map((c) => pad(SHORT[c], 11, true)).join("")}${pad("other", 9, true)}`;
    lines.push(head);
    const total = {};
    const groups = Object.keys(counts).sort((a, b) => Number(a) - Number(b));
    for (const g of groups) {
        const row = counts[g];
        for (const [outcome, n] of Object.entries(row)) total[outcome] = (total[outcome] || 0) + n;
        lines.push(tableRow(`${pad(g, 3, true)} ${categories[g] || ""}`, row));
    }
    lines.push(tableRow("    all", total));
    return lines;
}

function tableRow(label, row) {
    const other = Object.entries(row).filter(([outcome]) => !COLUMNS.includes(outcome));
    const otherText = other.map(([outcome, n]) => `${n} ${outcome}`).join(", ");
    return `    ${pad(label, 44)}${COLUMNS.map((c) => pad(row[c] || ".", 11, true)).join("")}` +
        `${pad(otherText ? "" : ".", 9, true)}${otherText ? `  ${otherText}` : ""}`;
}

/** Lines describing each row (case) given, with its description and what happened. */
function caseLines(rows, descriptions) {
    const lines = [];
    for (const row of rows) {
        const detail = row.detail;
        const wanted = ` (expected ${row.rule.accept.join(" or ")})`;
        const close = row.entry && row.entry.behaviorClose && row.entry.behaviorClose !== "OK" ?
            `, close ${row.entry.behaviorClose}` : "";
        lines.push(`    ${row.id}: ${row.outcome}${close}${wanted}`);
        const description = (detail && detail.description) || descriptions[row.id];
        if (description) lines.push(`        case: ${clip(description)}`);
        if (detail && detail.expectation) lines.push(`        Autobahn expects: ${clip(detail.expectation)}`);
        lines.push(`        got: ${row.entry ? whatHappened(detail) : "no result (the case did not finish or was not run)"}`);
    }
    return lines;
}

module.exports = { patternMatcher, loadExpected, ruleFor, readIndex, judge, acceptedLines, groupTable, caseLines, COLUMNS };
