# Python 2.7 (Autobahn|Testsuite's interpreter), not part of the worker.
"""Two helpers around Autobahn|Testsuite for scripts/conformance/run.js.

    python testsuite.py cases
        prints one JSON object: {"cases": [every case id, in the suite's order],
        "categories": {"1": "Framing", ...}, "descriptions": {"1.1.1": "...", ...}}
    python testsuite.py server SPEC.json
        runs the fuzzing server on 127.0.0.1 and an ephemeral port, and prints
        CASES [the ids the spec selects, in the server's order], then LISTENING <port>.
        (`wstest -m fuzzingserver` binds every interface on a fixed port and starts a web
        server on 8080.)
"""
from __future__ import print_function

from autobahntestsuite import choosereactor  # noqa: F401  (installs the epoll reactor: import it first)

import json
import sys

from twisted.internet import reactor

from autobahntestsuite import fuzzing
from autobahntestsuite.case import Cases, CaseCategories, CaseSubCategories, CaseBasename, CaseSetname
from autobahntestsuite.caseset import CaseSet


def cases():
    case_set = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
    ids = case_set.parseSpecCases({"cases": ["*"]})
    descriptions = dict((case_id, case_set.CasesById[case_id].DESCRIPTION.strip()) for case_id in ids)
    print(json.dumps({"cases": ids, "categories": CaseCategories, "descriptions": descriptions}))


def server(spec_path):
    with open(spec_path) as spec_file:
        spec = json.load(spec_file)
    factory = fuzzing.FuzzingServerFactory(spec)
    port = reactor.listenTCP(0, factory, backlog=50, interface="127.0.0.1")
    # The opening handshake checks the Host header's port against this.
    factory.port = factory.externalPort = port.getHost().port
    print("CASES " + json.dumps(factory.specCases))
    print("LISTENING %d" % factory.externalPort)
    sys.stdout.flush()
    reactor.run()


if __name__ == "__main__":
    if sys.argv[1:2] == ["cases"]:
        cases()
    elif sys.argv[1:2] == ["server"] and len(sys.argv) == 3:
        server(sys.argv[2])
    else:
        sys.exit(__doc__)
