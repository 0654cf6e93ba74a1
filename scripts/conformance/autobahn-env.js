/**
 * The Python 2.7 environment Autobahn|Testsuite runs in, set up at first use in `.autobahn/`
 * (gitignored) inside the checkout, with nothing done by hand:
 *   1. find a Python 2.7 interpreter (CONFORMANCE_PYTHON27, pyenv's versions, python2.7 on PATH);
 *   2. a small Python 3 venv (`.autobahn/py3`) holding virtualenv<20.22, the last line that
 *      still creates 2.7 environments (Python 2.7 has no usable `venv` module);
 *   3. `.autobahn/py27` made by that virtualenv, with requirements-py27.txt installed.
 * A stamp file records what was installed; a changed requirements file or interpreter redoes it.
 */
"use strict";

const childProcess = require("child_process");
const crypto = require("crypto");
const fs = require("fs");
const os = require("os");
const path = require("path");

const ROOT = path.resolve(__dirname, "..", "..");
const HOME = path.join(ROOT, ".autobahn");
const REQUIREMENTS = path.join(__dirname, "requirements-py27.txt");
const PY3_VENV = path.join(HOME, "py3");
const PY27_VENV = path.join(HOME, "py27");
const STAMP = path.join(PY27_VENV, "conformance.stamp");
const VIRTUALENV_SPEC = "virtualenv<20.22";

function run(command, args, options = {}) {
    const result = childProcess.spawnSync(command, args, Object.assign({
        encoding: "utf8",
        timeout: 15 * 60 * 1000,
        maxBuffer: 64 * 1024 * 1024,
        env: Object.assign({}, process.env, {
            PIP_DISABLE_PIP_VERSION_CHECK: "1",
            PIP_NO_PYTHON_VERSION_WARNING: "1",
            PYTHONWARNINGS: "ignore:DEPRECATION",
            // virtualenv would otherwise keep its seed wheels in ~/.local/share.
            VIRTUALENV_OVERRIDE_APP_DATA: path.join(HOME, "virtualenv-data"),
        }),
    }, options));
    const output = `${result.stdout || ""}${result.stderr || ""}`;
    return { ok: result.status === 0, status: result.status, error: result.error, output };
}

function tail(text, lines = 15) {
    return text.trim().split("\n").slice(-lines).join("\n");
}

/** [major, minor] of an interpreter, or null when it does not run. */
function pythonVersion(executable) {
    const result = run(executable, ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"], { timeout: 20000 });
    if (!result.ok) return null;
    const match = /^(\d+)\.(\d+)\s*$/m.exec(result.output);
    return match ? [Number(match[1]), Number(match[2])] : null;
}

function pyenvRoots() {
    const roots = [];
    if (process.env.PYENV_ROOT) roots.push(process.env.PYENV_ROOT);
    const asked = run("pyenv", ["root"], { timeout: 20000 });
    if (asked.ok && asked.output.trim()) roots.push(asked.output.trim().split("\n").pop());
    roots.push(path.join(os.homedir(), ".pyenv"));
    return [...new Set(roots)];
}

/** Every candidate for Python 2.7, in the order they are tried. */
function python27Candidates() {
    const candidates = [];
    if (process.env.CONFORMANCE_PYTHON27) candidates.push(process.env.CONFORMANCE_PYTHON27);
    for (const root of pyenvRoots()) {
        const versions = path.join(root, "versions");
        let names = [];
        try {
            names = fs.readdirSync(versions).filter((name) => /^2\.7(\.\d+)?$/.test(name));
        } catch (_) { /* no such pyenv */ }
        names.sort((a, b) => Number(b.split(".")[2] || 0) - Number(a.split(".")[2] || 0));
        for (const name of names) candidates.push(path.join(versions, name, "bin", "python2.7"));
    }
    // Plain names last: a pyenv shim named python2.7 may exist and still refuse to run.
    candidates.push("python2.7", "python2");
    return [...new Set(candidates)];
}

function findPython27() {
    const tried = [];
    for (const candidate of python27Candidates()) {
        const version = pythonVersion(candidate);
        if (version && version[0] === 2 && version[1] === 7) return candidate;
        tried.push(`${candidate} (${version ? `is ${version.join(".")}` : "does not run"})`);
    }
    throw new Error("Python 2.7 not found: Autobahn|Testsuite runs on Python 2.7 only. Tried: " +
        `${tried.join(", ")}. Install it (e.g. \`pyenv install 2.7.18\`) or set CONFORMANCE_PYTHON27 ` +
        "to a python2.7 executable.");
}

function findPython3() {
    const candidates = [process.env.CONFORMANCE_PYTHON3, "python3"].filter(Boolean);
    for (const candidate of candidates) {
        const version = pythonVersion(candidate);
        if (version && version[0] === 3 && version[1] >= 7) return candidate;
    }
    throw new Error(`Python 3 not found (tried ${candidates.join(", ")}): it is needed to install ` +
        `${VIRTUALENV_SPEC}, which creates the Python 2.7 environment. Set CONFORMANCE_PYTHON3.`);
}

function fingerprint(python27) {
    return crypto.createHash("sha256")
        .update(fs.readFileSync(REQUIREMENTS))
        .update(`\n${safeRealpath(python27)}\n${VIRTUALENV_SPEC}`)
        .digest("hex").slice(0, 16);
}

function safeRealpath(file) {
    try {
        return fs.realpathSync(file);
    } catch (_) {
        return file;
    }
}

function step(log, what, command, args) {
    log(what);
    const result = run(command, args);
    if (!result.ok) {
        const why = result.error ? result.error.message : `exit code ${result.status}`;
        throw new Error(`${what} failed (${why}):\n${tail(result.output)}`);
    }
    return result;
}

function sleepSync(milliseconds) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, milliseconds);
}

/** Runs `fn` holding `.autobahn/setup.lock` (a directory), so two runs never set up at once. */
function withSetupLock(log, fn) {
    fs.mkdirSync(HOME, { recursive: true });
    const lock = path.join(HOME, "setup.lock");
    const deadline = Date.now() + 20 * 60 * 1000;
    for (let told = false; ; sleepSync(1000)) {
        try {
            fs.mkdirSync(lock);
            break;
        } catch (err) {
            if (err.code !== "EEXIST") throw err;
        }
        let age = 0;
        try { age = Date.now() - fs.statSync(lock).mtimeMs; } catch (_) { continue; }
        if (age > 20 * 60 * 1000 || Date.now() > deadline) {
            log(`removing a stale ${path.relative(ROOT, lock)} (${Math.round(age / 1000)} s old)`);
            fs.rmSync(lock, { recursive: true, force: true });
        } else if (!told) {
            told = true;
            log("another run is setting up .autobahn/: waiting for it");
        }
    }
    try {
        return fn();
    } finally {
        fs.rmSync(lock, { recursive: true, force: true });
    }
}

/**
 * Makes sure `.autobahn/py27` holds Autobahn|Testsuite; returns {python, wstest, seconds, created}.
 * `log` receives one line per step (only when something has to be installed).
 */
function ensureAutobahn(log = () => {}) {
    const started = Date.now();
    const python27 = findPython27();
    const python = path.join(PY27_VENV, "bin", "python");
    const wstest = path.join(PY27_VENV, "bin", "wstest");
    const wanted = fingerprint(python27);
    const ready = () => fs.existsSync(STAMP) && fs.readFileSync(STAMP, "utf8").trim() === wanted &&
        fs.existsSync(wstest);
    if (ready()) return { python, wstest, seconds: 0, created: false };
    return withSetupLock(log, () => {
        if (ready()) return { python, wstest, seconds: (Date.now() - started) / 1000, created: false };
        setUp(log, python27, python, wstest, wanted);
        return { python, wstest, seconds: (Date.now() - started) / 1000, created: true };
    });
}

function setUp(log, python27, python, wstest, wanted) {
    log(`setting up Autobahn|Testsuite in ${path.relative(process.cwd(), HOME) || HOME}/ (Python 2.7: ${python27}); ` +
        "this takes about a minute, once");
    fs.mkdirSync(HOME, { recursive: true });
    const virtualenv = path.join(PY3_VENV, "bin", "virtualenv");
    if (!fs.existsSync(virtualenv)) {
        const python3 = findPython3();
        fs.rmSync(PY3_VENV, { recursive: true, force: true });
        step(log, `creating ${path.relative(ROOT, PY3_VENV)} with ${python3}`, python3, ["-m", "venv", PY3_VENV]);
        step(log, `installing ${VIRTUALENV_SPEC}`, path.join(PY3_VENV, "bin", "python"),
            ["-m", "pip", "install", "-q", VIRTUALENV_SPEC]);
    }
    fs.rmSync(PY27_VENV, { recursive: true, force: true });
    step(log, `creating ${path.relative(ROOT, PY27_VENV)}`, virtualenv, ["-q", "-p", python27, PY27_VENV]);
    step(log, "installing autobahntestsuite and its pinned dependencies (requirements-py27.txt)", python,
        ["-m", "pip", "install", "-q", "-r", REQUIREMENTS]);
    step(log, "checking wstest", wstest, ["-a"]);
    fs.writeFileSync(STAMP, `${wanted}\n`);
}

module.exports = { ensureAutobahn, findPython27, HOME };
