"""Which versions of its packages the worker runs with, checked before any of them is imported.

The worker uses only the public API of websockets, tested with the releases in
``requirements.txt``; an interpreter chosen by the user (``pyWebsocketListenerPython``, for
air-gapped installs) may hold others. ``redis`` is optional: only listeners with a backplane need
it (an interpreter without it still runs every other listener and client), so it is not among
the problems that stop the worker; :func:`optional_problem` says why a backplane cannot run.
``python -m websocket_worker --check`` prints a JSON report
and exits 0 when everything fits, :data:`EXIT_INCOMPATIBLE` otherwise; the worker itself refuses
to start with the same exit code and a line on stderr saying what does not fit.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata

__all__ = [
    "EXIT_INCOMPATIBLE",
    "OPTIONAL",
    "REQUIRED",
    "installed",
    "main",
    "optional_problem",
    "problems",
]

#: Exit code of a worker (or ``--check``) whose packages do not fit.
EXIT_INCOMPATIBLE = 3

#: Package → (lowest release supported, first major release not supported).
REQUIRED: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "websockets": ((15, 0), (18,)),
    "msgpack": ((1, 0), (2,)),
}

#: The same for packages only some features need: redis, for listeners with a backplane.
OPTIONAL: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "redis": ((7, 0), (9,)),
}


def _release(version: str) -> tuple[int, ...]:
    numbers: list[int] = []
    for part in version.split("."):
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        numbers.append(int(digits))
        if len(digits) != len(part):
            break
    return tuple(numbers)


def _dotted(release: tuple[int, ...]) -> str:
    return ".".join(str(n) for n in release)


def installed() -> dict[str, str | None]:
    """The installed version of each required and optional package (None when missing)."""
    versions: dict[str, str | None] = {}
    for name in (*REQUIRED, *OPTIONAL):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _problem(name: str, version: str | None, lowest: tuple[int, ...], beyond: tuple[int, ...],
             who: str) -> str | None:  # fmt: skip
    wanted = f"{_dotted(lowest)} or newer, before {_dotted(beyond)}"
    if version is None:
        return f"{name} is not installed (needs {wanted})"
    if not lowest <= _release(version) < beyond:
        return f"{name} {version} is installed, {who} needs {wanted}"
    return None


def problems(versions: dict[str, str | None]) -> list[str]:
    """One sentence per required package that is missing or outside its supported range."""
    found: list[str] = []
    for name, (lowest, beyond) in REQUIRED.items():
        problem = _problem(name, versions.get(name), lowest, beyond, "the worker")
        if problem is not None:
            found.append(problem)
    return found


def optional_problem(name: str, versions: dict[str, str | None] | None = None) -> str | None:
    """Why optional package ``name`` cannot be used (missing, or outside its range), or None."""
    lowest, beyond = OPTIONAL[name]
    version = (versions if versions is not None else installed()).get(name)
    return _problem(name, version, lowest, beyond, "the worker")


def main() -> int:
    """``--check``: print the report as JSON; 0 when it fits."""
    versions = installed()
    found = problems(versions)
    unavailable = {name: optional_problem(name, versions) for name in OPTIONAL}
    print(json.dumps({"installed": versions, "problems": found, "unavailable": unavailable}))
    return EXIT_INCOMPATIBLE if found else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
