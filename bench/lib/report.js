/**
 * Summaries and the printed report: median with min–max per figure and implementation (core,
 * ours, and ours with more workers: "ours-w2", ...), the ratio of each to core, marks for runs
 * that crashed, stalled or lost messages, the load generator's CPU next to the server's, and a
 * table of the large-message cases.
 */
"use strict";

function median(values) {
    const sorted = values.slice().sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function stats(values) {
    const present = values.filter((v) => typeof v === "number" && Number.isFinite(v));
    if (!present.length) return null;
    return { median: median(present), min: Math.min(...present), max: Math.max(...present), n: present.length };
}

function fmt(value) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "–";
    const abs = Math.abs(value);
    if (abs >= 1000) return Math.round(value).toLocaleString("en-US");
    if (abs >= 100) return value.toFixed(0);
    if (abs >= 10) return value.toFixed(1);
    if (abs >= 1) return value.toFixed(2);
    if (abs === 0) return "0";
    return value.toPrecision(2);
}

/**
 * rows: [{figure, label, better}] in print order; runs: [{impl, scenario, figures, problems}];
 * impls: the implementations, core first. Returns the summary: [{figure, label, better, core:
 * stats, ours: stats, ..., ratio (ours/core), ratios: {impl: impl/core}, marks}].
 */
function summarize(figureDefs, runs, impls = ["core", "ours"]) {
    return figureDefs.map((def) => {
        const row = Object.assign({ figure: def.key }, def, { better: def.better || null });
        delete row.key;
        // A large case's run counts as troubled for its own problems and the run's general ones.
        const mark = def.size ? (problem) => problem.startsWith(`${def.size}:${def.kind}:`) ||
            !/^\w+:(text|binary):/.test(problem) : () => true;
        row.impls = impls;
        row.ratios = {};
        for (const impl of impls) {
            const mine = runs.filter((run) => run.impl === impl && run.scenario === def.scenario);
            row[impl] = stats(mine.map((run) => run.figures[def.key]));
            row[impl + "Problems"] = mine.filter((run) => run.problems.some(mark)).length;
            row[impl + "Runs"] = mine.length;
            if (impl === "core") continue;
            row.ratios[impl] = row.core && row[impl] && row.core.median ? row[impl].median / row.core.median : null;
        }
        row.ratio = row.ratios.ours ?? null;
        return row;
    });
}

function cell(s, problems, runs) {
    if (!runs) return "not run";
    if (!s) return problems ? `– ! ${problems}/${runs}` : "n/a";
    const range = s.n > 1 ? ` (${fmt(s.min)}–${fmt(s.max)})` : "";
    return `${fmt(s.median)}${range}${problems ? ` ! ${problems}/${runs}` : ""}`;
}

function table(header, rows) {
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
    const line = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i])))
        .join(" | ");
    return [line(header), widths.map((w) => "-".repeat(w)).join("-|-"), ...rows.map(line)].join("\n");
}

function mainTable(summary) {
    const impls = summary[0].impls;
    const rows = summary.map((row) => [
        row.label + (row.better === "higher" ? " ↑" : row.better === "lower" ? " ↓" : ""),
        ...impls.flatMap((impl) => [cell(row[impl], row[impl + "Problems"], row[impl + "Runs"])].concat(impl === "core" ? []
            : [row.ratios[impl] === null ? "–" : row.ratios[impl].toFixed(2)])),
    ]);
    return table(["figure", ...impls.flatMap((impl) => [`${impl} median (min–max)`].concat(impl === "core" ? []
        : [`${impl}/core`]))], rows);
}

/**
 * The large-message cases, one row each: MiB/s, round trip, peak RSS (medians), with a legend of
 * the scenarios. Returns lines (none when no large scenario ran).
 */
function largeTable(summary, scenarios) {
    if (!summary.length) return [];
    const rows = [];
    const byCase = new Map();
    for (const row of summary) {
        const key = `${row.scenario} ${row.size} ${row.kind}`;
        if (!byCase.has(key)) byCase.set(key, {});
        byCase.get(key)[row.metric] = row;
    }
    // Problem marks go on the rate only: a peak RSS is still what it was in a stalled run.
    const median = (row, impl, marked = false) => {
        if (!row) return "";
        const s = row[impl];
        const problems = marked ? row[impl + "Problems"] : 0;
        return (s ? fmt(s.median) : "–") + (problems ? ` !${problems}/${row[impl + "Runs"]}` : "");
    };
    for (const [key, m] of byCase) {
        rows.push([key, median(m.rate, "core", true), median(m.rate, "ours", true),
            m.rate.ratio === null ? "–" : m.rate.ratio.toFixed(2),
            median(m.rtt, "core"), median(m.rtt, "ours"), median(m.cpu, "core"), median(m.cpu, "ours"),
            median(m.rssMain, "core"), median(m.rssMain, "ours"),
            median(m.rssWorker, "ours"), median(m.rssWorkerGrowth, "ours"), median(m.rssAll, "ours")]);
    }
    const names = [...new Set(summary.map((row) => row.scenario))];
    return [
        "Large messages, medians: MiB/s of payload one way; p50 round trip (ms); CPU of Node-RED + worker " +
            "per MiB; peak RSS (MiB) during the case; worker growth = its peak minus its RSS at the case's start",
        table(["scenario size kind", "core MiB/s ↑", "ours MiB/s ↑", "ours/core", "core p50 ms", "ours p50 ms",
            "core CPU ms/MiB", "ours CPU ms/MiB", "core NR peak", "ours NR peak", "ours worker peak", "worker growth",
            "ours NR+worker"], rows),
        ...names.map((name) => `  ${name}: ${scenarios[name].title}`),
        "",
    ];
}

/** Per scenario and implementation: medians of loadgen and server CPU over the window. */
function cpuTable(scenarios, runs, impls = ["core", "ours"]) {
    const rows = [];
    for (const scenario of scenarios) {
        for (const impl of impls) {
            const mine = runs.filter((run) => run.impl === impl && run.scenario === scenario && run.window);
            if (!mine.length) continue;
            const m = (f) => stats(mine.map((run) => f(run.window)));
            const pct = (cpu) => (w) => (w.seconds > 0 ? (100 * cpu(w)) / w.seconds : null);
            const get = (s) => (s ? fmt(s.median) : "–");
            rows.push([scenario, impl, get(m((w) => w.seconds)),
                get(m((w) => w.cpuLoadgen)), get(m(pct((w) => w.cpuLoadgen))),
                get(m((w) => w.cpuMain)), get(m(pct((w) => w.cpuMain))),
                get(m((w) => w.cpuAll)), get(m(pct((w) => w.cpuAll))),
                get(m(pct((w) => w.cpuAll + w.cpuLoadgen)))]);
        }
    }
    return table(["scenario", "impl", "window s", "loadgen CPU s", "loadgen %core", "Node-RED CPU s",
        "Node-RED %core", "NR+worker CPU s", "NR+worker %core", "all %core"], rows);
}

function notes(runs) {
    return runs.filter((run) => run.problems.length)
        .map((run) => `! ${run.impl} repeat ${run.repeat} ${run.scenario}: ${run.problems.join("; ")}`);
}

module.exports = { median, stats, fmt, table, summarize, mainTable, largeTable, cpuTable, notes };
