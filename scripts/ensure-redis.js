#!/usr/bin/env node
/**
 * Makes sure a redis-server the backplane tests can start is installed at /usr/bin/redis-server:
 * if it is missing, installs Debian's `redis-server` package with apt-get (needs root and the
 * Debian mirror). The tests start their own server on 127.0.0.1 and a free port; the package's
 * service is not used. Exits non-zero with a clear message when it cannot.
 */
"use strict";

const { ensureDebianPackage } = require("./lib/apt-package");

ensureDebianPackage({ tag: "ensure-redis", program: "/usr/bin/redis-server", pkg: "redis-server",
    why: "The backplane tests (python/tests/test_backplane.py, test/backplane_spec.js)" });
