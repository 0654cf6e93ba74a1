/**
 * Linux /proc readings for the benchmark: CPU seconds (utime + stime), resident memory and its
 * peak of a process, its direct children (`pgrep -P`, i.e. the Python worker of a Node-RED), and
 * the file-descriptor limits. Synchronous and cheap, so they can bracket a measurement window.
 */
"use strict";

const childProcess = require("child_process");
const fs = require("fs");

let clockTicks = 100;
try {
    clockTicks = Number(childProcess.execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
} catch (_) { /* keep the usual 100 */ }

/** CPU seconds (user + system) of one process, or null when it is gone. */
function cpuSeconds(pid) {
    let stat;
    try {
        stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch (_) {
        return null;
    }
    // The command name (field 2) may hold spaces: split after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

/** A size field of /proc/<pid>/status (e.g. VmRSS, VmHWM) in bytes, or null when it is gone. */
function statusBytes(pid, field) {
    let status;
    try {
        status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    } catch (_) {
        return null;
    }
    const match = new RegExp(`${field}:\\s+(\\d+)\\s+kB`).exec(status);
    return match ? Number(match[1]) * 1024 : null;
}

/** VmRSS of one process in bytes, or null when it is gone. */
function rssBytes(pid) {
    return statusBytes(pid, "VmRSS");
}

/** VmHWM: the peak RSS in bytes since the process started or since resetPeakRss(pid). */
function peakRssBytes(pid) {
    return statusBytes(pid, "VmHWM");
}

/**
 * Starts a new peak-RSS period (Linux 4.0+: "5" written to /proc/<pid>/clear_refs sets VmHWM to
 * the current RSS). False when not allowed (another user's process, an older kernel, no /proc).
 */
function resetPeakRss(pid) {
    try {
        fs.writeFileSync(`/proc/${pid}/clear_refs`, "5");
        return true;
    } catch (_) {
        return false;
    }
}

function childPids(pid) {
    try {
        return childProcess.execFileSync("pgrep", ["-P", String(pid)]).toString().trim()
            .split(/\s+/).filter(Boolean).map(Number);
    } catch (_) {
        return [];
    }
}

/**
 * A snapshot of a Node-RED process and the given children: {main, all} CPU seconds and
 * {mainRss, allRss} bytes. Children that are gone count as 0.
 */
function snapshot(pids) {
    const main = cpuSeconds(pids.main);
    const mainRss = rssBytes(pids.main);
    let all = main || 0;
    let allRss = mainRss || 0;
    for (const pid of pids.children || []) {
        all += cpuSeconds(pid) || 0;
        allRss += rssBytes(pid) || 0;
    }
    return { main: main || 0, all, mainRss: mainRss || 0, allRss, alive: main !== null };
}

/** [soft, hard] open-file limits of this shell's user ("unlimited" as Infinity). */
function fileLimits() {
    const read = (flag) => {
        try {
            const text = childProcess.execFileSync("bash", ["-c", `ulimit ${flag} -n`]).toString().trim();
            return text === "unlimited" ? Infinity : Number(text);
        } catch (_) {
            return NaN;
        }
    };
    return [read("-S"), read("-H")];
}

module.exports = { cpuSeconds, rssBytes, peakRssBytes, resetPeakRss, childPids, snapshot, fileLimits, clockTicks };
