/**
 * Finds a Python interpreter and makes sure the worker's packages are there, at run time:
 * no npm install scripts (the palette manager may block them, Debian refuses a global pip).
 *
 * Order: an interpreter named in settings.js (pyWebsocketListenerPython) or in NODE_RED_PYTHON
 * is used as it is when it already has packages that fit (`python -m websocket_worker --check`:
 * air-gapped installs); otherwise a venv is
 * created from it (or from python3) under the Node-RED user directory, outside node_modules so
 * package updates keep it, and the pinned requirements are installed there once.
 */
"use strict";

const childProcess = require("child_process");
const crypto = require("crypto");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { settingsValues } = require("./options");

const PYTHON_DIR = path.resolve(__dirname, "..", "..", "python");
const REQUIREMENTS = path.join(PYTHON_DIR, "requirements.txt");
// uvloop: wheels only and best effort; without it the worker runs on asyncio.
const SPEEDUPS = path.join(PYTHON_DIR, "requirements-speedups.txt");
const JWT_KEYS = path.join(PYTHON_DIR, "requirements-jwt-keys.txt");
const STAMP_FILE = "node-red-python-websocket.stamp";
const MIN_VERSION = [3, 9];
const IS_WINDOWS = process.platform === "win32";

class PythonSetupError extends Error {
    constructor(code, message) {
        super(message);
        this.code = code; // "python-missing" | "install-failed"
    }
}

function run(command, args, { timeout = 600000, env } = {}) {
    return new Promise((resolve) => {
        let output = "";
        let child;
        try {
            child = childProcess.spawn(command, args, {
                stdio: ["ignore", "pipe", "pipe"],
                env: env || process.env,
                windowsHide: true,
            });
        } catch (err) {
            resolve({ code: -1, output: err.message, error: err });
            return;
        }
        const timer = setTimeout(() => child.kill("SIGKILL"), timeout);
        const collect = (chunk) => {
            output += chunk.toString();
            if (output.length > 65536) output = output.slice(-32768);
        };
        child.stdout.on("data", collect);
        child.stderr.on("data", collect);
        child.on("error", (err) => {
            clearTimeout(timer);
            resolve({ code: -1, output: err.message, error: err });
        });
        child.on("close", (code, signal) => {
            clearTimeout(timer);
            resolve({ code: code === null ? -1 : code, output, signal });
        });
    });
}

function lastLines(text, count = 3) {
    return text.trim().split(/\r?\n/).slice(-count).join(" | ");
}

function venvPython(venvDir) {
    return IS_WINDOWS ? path.join(venvDir, "Scripts", "python.exe") : path.join(venvDir, "bin", "python");
}

function requirementsHash() {
    const hash = crypto.createHash("sha256");
    for (const file of [REQUIREMENTS, SPEEDUPS, JWT_KEYS]) hash.update(fs.readFileSync(file));
    return hash.digest("hex").slice(0, 16);
}

/** Where things are, from settings.js, the environment, then defaults. */
function resolveOptions(settings = {}, env = process.env) {
    const userDir = settings.userDir || path.join(os.homedir(), ".node-red");
    const values = settingsValues(settings);
    return {
        python: values.python || env.NODE_RED_PYTHON || null,
        venvDir: values.venv || env.NODE_RED_PYTHON_VENV ||
            path.join(userDir, "python-websocket", "venv"),
    };
}

const PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3])";

async function probeVersion(python) {
    const result = await run(python, ["-c", PROBE], { timeout: 30000 });
    if (result.code !== 0) {
        const why = result.error && result.error.code === "ENOENT" ? `'${python}' is not installed or not on PATH`
            : `'${python}' failed: ${lastLines(result.output, 1)}`;
        throw new PythonSetupError("python-missing", why);
    }
    const version = result.output.trim();
    const [major, minor] = version.split(".").map(Number);
    if (major < MIN_VERSION[0] || (major === MIN_VERSION[0] && minor < MIN_VERSION[1])) {
        throw new PythonSetupError("python-missing", `'${python}' is Python ${version}, 3.9 or newer is needed`);
    }
    return version;
}

/** The environment the worker runs in: its package on PYTHONPATH. */
function workerEnv(env = process.env) {
    return Object.assign({}, env, {
        PYTHONPATH: [PYTHON_DIR, env.PYTHONPATH].filter(Boolean).join(path.delimiter),
        PYTHONDONTWRITEBYTECODE: "1",
    });
}

/**
 * What is wrong with the worker's packages in `python` (python/websocket_worker/compat.py says
 * which versions it runs with): an empty list when they fit.
 */
async function packageProblems(python) {
    const result = await run(python, ["-m", "websocket_worker", "--check"], { timeout: 30000, env: workerEnv() });
    const last = result.output.trim().split(/\r?\n/).pop() || "";
    try {
        const report = JSON.parse(last);
        if (Array.isArray(report.problems)) return report.problems.map(String);
    } catch (_) { /* not the report: say what came instead */ }
    return [`the package check failed: ${lastLines(result.output, 1)}`];
}

function stampMatches(venvDir) {
    try {
        return fs.readFileSync(path.join(venvDir, STAMP_FILE), "utf8").trim() === requirementsHash();
    } catch (_) {
        return false;
    }
}

/**
 * Resolves to {python, created, speedupsSkipped} where python is the interpreter that runs the
 * worker and speedupsSkipped, after a fresh install, says why uvloop is not there (null if it is).
 * onProgress("installing") is called before a slow step. Rejects with PythonSetupError.
 */
async function preparePython(settings, { onProgress = () => {}, env = process.env } = {}) {
    const options = resolveOptions(settings, env);
    if (options.python) {
        await probeVersion(options.python);
        if ((await packageProblems(options.python)).length === 0) {
            return { python: options.python, created: false };
        }
    }
    const venvDir = options.venvDir;
    const venvExe = venvPython(venvDir);
    if (fs.existsSync(venvExe) && stampMatches(venvDir) && (await packageProblems(venvExe)).length === 0) {
        return { python: venvExe, created: false };
    }
    const base = options.python || (IS_WINDOWS ? "python" : "python3");
    await probeVersion(base);
    onProgress("installing");
    if (!fs.existsSync(venvExe)) {
        fs.mkdirSync(path.dirname(venvDir), { recursive: true });
        const made = await run(base, ["-m", "venv", venvDir], { timeout: 180000 });
        if (made.code !== 0) {
            throw new PythonSetupError("python-missing",
                `'${base} -m venv' failed (on Debian/Ubuntu: apt install python3-venv): ${lastLines(made.output, 2)}`);
        }
    }
    const installed = await run(venvExe, ["-m", "pip", "install", "--disable-pip-version-check",
        "--no-input", "-q", "-r", REQUIREMENTS], { timeout: 600000 });
    if (installed.code !== 0) {
        throw new PythonSetupError("install-failed",
            `pip could not install ${path.basename(REQUIREMENTS)} into ${venvDir}: ${lastLines(installed.output)}`);
    }
    const speedups = await run(venvExe, ["-m", "pip", "install", "--disable-pip-version-check",
        "--no-input", "-q", "--only-binary=:all:", "-r", SPEEDUPS], { timeout: 300000 });
    // RS256/ES256 keys of listeners; without a wheel those listeners say why (auth.py).
    await run(venvExe, ["-m", "pip", "install", "--disable-pip-version-check",
        "--no-input", "-q", "--only-binary=:all:", "-r", JWT_KEYS], { timeout: 300000 });
    const problems = await packageProblems(venvExe);
    if (problems.length > 0) {
        throw new PythonSetupError("install-failed", `the packages in ${venvDir} do not fit: ${problems.join("; ")}`);
    }
    fs.writeFileSync(path.join(venvDir, STAMP_FILE), requirementsHash() + "\n");
    return { python: venvExe, created: true,
        speedupsSkipped: speedups.code === 0 ? null : lastLines(speedups.output, 1) };
}

module.exports = { preparePython, resolveOptions, venvPython, workerEnv, packageProblems, PythonSetupError, PYTHON_DIR, run };
