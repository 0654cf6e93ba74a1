/**
 * The package check the bridge runs before it trusts an interpreter: the worker's own
 * `python -m websocket_worker --check`, read through nodes/lib/python-env.js.
 */
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const should = require("should");
const { packageProblems, venvPython } = require("../nodes/lib/python-env");

const VENV_PYTHON = venvPython(process.env.NODE_RED_PYTHON_VENV);

describe("the Python package check", function () {
    let fakeDir;
    const savedPath = process.env.PYTHONPATH;

    afterEach(function () {
        if (savedPath === undefined) delete process.env.PYTHONPATH;
        else process.env.PYTHONPATH = savedPath;
        if (fakeDir) fs.rmSync(fakeDir, { recursive: true, force: true });
        fakeDir = null;
    });

    it("finds nothing wrong with the pinned packages", async function () {
        should(await packageProblems(VENV_PYTHON)).eql([]);
    });

    it("names a websockets release the worker does not run with", async function () {
        // A distribution found first on the path, as in an interpreter the user set up.
        fakeDir = fs.mkdtempSync(path.join(os.tmpdir(), "pyws-old-websockets-"));
        const info = path.join(fakeDir, "websockets-12.0.dist-info");
        fs.mkdirSync(info);
        fs.writeFileSync(path.join(info, "METADATA"), "Metadata-Version: 2.1\nName: websockets\nVersion: 12.0\n");
        process.env.PYTHONPATH = fakeDir;
        should(await packageProblems(VENV_PYTHON)).eql([
            "websockets 12.0 is installed, the worker needs 15.0 or newer, before 18",
        ]);
    });

    it("says what happened when the interpreter cannot run the check at all", async function () {
        const problems = await packageProblems(path.join(os.tmpdir(), "no-such-python"));
        problems.should.have.length(1);
        problems[0].should.match(/^the package check failed: /);
    });
});
