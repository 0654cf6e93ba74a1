"""Which versions of its packages the worker runs with, checked before any of them is imported.

The worker uses only the public API of websockets, tested with the releases in
``requirements.txt``; an interpreter chosen by the user (``pyWebsocketListenerPython``, for
air-gapped installs) may hold others. ``python -m websocket_worker --check`` prints a JSON report
and exits 0 when everything fits, :data:`EXIT_INCOMPATIBLE` otherwise; the worker itself refuses
to start with the same exit code and a line on stderr saying what does not fit.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata

__all__ = ["EXIT_INCOMPATIBLE", "REQUIRED", "installed", "main", "problems"]

#: Exit code of a worker (or ``--check``) whose packages do not fit.
EXIT_INCOMPATIBLE = 3

#: Package → (lowest release supported, first major release not supported).
REQUIRED: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "websockets": ((15, 0), (18,)),
    "msgpack": ((1, 0), (2,)),
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
    """The installed version of each required package (None when missing)."""
    versions: dict[str, str | None] = {}
    for name in REQUIRED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def problems(versions: dict[str, str | None]) -> list[str]:
    """One sentence per package that is missing or outside its supported range."""
    found: list[str] = []
    for name, (lowest, beyond) in REQUIRED.items():
        wanted = f"{_dotted(lowest)} or newer, before {_dotted(beyond)}"
        version = versions.get(name)
        if version is None:
            found.append(f"{name} is not installed (needs {wanted})")
        elif not lowest <= _release(version) < beyond:
            found.append(f"{name} {version} is installed, the worker needs {wanted}")
    return found


def main() -> int:
    """``--check``: print the report as JSON; 0 when it fits."""
    versions = installed()
    found = problems(versions)
    print(json.dumps({"installed": versions, "problems": found}))
    return EXIT_INCOMPATIBLE if found else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
