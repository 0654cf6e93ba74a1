#!/usr/bin/env node
/**
 * Makes sure a Chromium the browser tests can drive is installed at /usr/bin/chromium: if it is
 * missing, installs Debian's `chromium` package with apt-get (needs root and the Debian mirror).
 * Exits non-zero with a clear message when it cannot.
 */
"use strict";

const { ensureDebianPackage } = require("./lib/apt-package");

ensureDebianPackage({ tag: "ensure-chromium", program: "/usr/bin/chromium", pkg: "chromium",
    why: "The browser tests" });
