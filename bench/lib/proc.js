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

/** A "<field>: N kB" line of a /proc file (status, meminfo) in bytes, or null when absent. */
function kbField(file, field) {
    let text;
    try {
        text = fs.readFileSync(file, "utf8");
    } catch (_) {
        return null;
    }
    const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(text);
    return match ? Number(match[1]) * 1024 : null;
}

/** A size field of /proc/<pid>/status (e.g. VmRSS, VmHWM) in bytes, or null when it is gone. */
function statusBytes(pid, field) {
    return kbField(`/proc/${pid}/status`, field);
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

/** Microseconds on the monotonic clock (CLOCK_MONOTONIC): comparable between processes of one machine. */
function monotonicUs() {
    return Number(process.hrtime.bigint() / 1000n);
}

/** How many file descriptors a process holds, or null when it is gone (or not ours to read). */
function fdCount(pid) {
    try {
        return fs.readdirSync(`/proc/${pid}/fd`).length;
    } catch (_) {
        return null;
    }
}

/**
 * The kernel's TCP counters (/proc/net/snmp "Tcp:" and /proc/net/netstat "TcpExt:"), e.g.
 * ListenOverflows, ListenDrops, AttemptFails: {name: value}. System-wide, since boot.
 */
function tcpCounters() {
    const counters = {};
    for (const file of ["/proc/net/snmp", "/proc/net/netstat"]) {
        let lines;
        try {
            lines = fs.readFileSync(file, "utf8").split("\n");
        } catch (_) {
            continue;
        }
        // Each group is two lines: "Prefix: name name ..." then "Prefix: value value ...".
        for (let i = 0; i + 1 < lines.length; i += 2) {
            const names = lines[i].split(/\s+/);
            const values = lines[i + 1].split(/\s+/);
            if (!/^Tcp(Ext)?:$/.test(names[0])) continue;
            names.slice(1).forEach((name, k) => { counters[name] = Number(values[k + 1]); });
        }
    }
    return counters;
}

/** A /proc/sys value as text (trimmed, tabs as spaces), or null when absent. */
function sysctl(name) {
    try {
        return fs.readFileSync(`/proc/sys/${name.replace(/\./g, "/")}`, "utf8").trim().replace(/\s+/g, " ");
    } catch (_) {
        return null;
    }
}

/** A field of /proc/meminfo (e.g. Slab) in bytes, or null. */
function meminfoBytes(field) {
    return kbField("/proc/meminfo", field);
}

/** /proc/net/sockstat's TCP line: {inuse, orphan, tw, alloc, mem (pages)}. */
function tcpSockstat() {
    try {
        const line = fs.readFileSync("/proc/net/sockstat", "utf8").split("\n").find((l) => l.startsWith("TCP:"));
        const fields = line.split(/\s+/).slice(1);
        const out = {};
        for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i]] = Number(fields[i + 1]);
        return out;
    } catch (_) {
        return {};
    }
}

module.exports = { cpuSeconds, rssBytes, peakRssBytes, resetPeakRss, childPids, snapshot, fileLimits, clockTicks,
    monotonicUs, fdCount, tcpCounters, sysctl, tcpSockstat, meminfoBytes };
