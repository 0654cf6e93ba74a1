"""The worker checks the versions of its packages before importing them, and refuses to start
with a clear line when they do not fit (an interpreter the user chose may hold others)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from websocket_worker.compat import EXIT_INCOMPATIBLE, installed, problems

PYTHON_DIR = Path(__file__).resolve().parents[1]


def test_the_tested_releases_fit() -> None:
    assert problems(installed()) == []
    assert problems({"websockets": "15.0.1", "msgpack": "1.1.2"}) == []
    assert problems({"websockets": "17.4", "msgpack": "1.2.4"}) == []


def test_missing_too_old_and_too_new_are_named() -> None:
    found = problems({"websockets": "14.2", "msgpack": None})
    assert found == [
        "websockets 14.2 is installed, the worker needs 15.0 or newer, before 18",
        "msgpack is not installed (needs 1.0 or newer, before 2)",
    ]
    assert problems({"websockets": "18.0rc1", "msgpack": "1.0.0"}) == [
        "websockets 18.0rc1 is installed, the worker needs 15.0 or newer, before 18"
    ]


def with_fake_websockets(tmp_path: Path, version: str) -> dict[str, str]:
    """An environment where the first websockets distribution on the path has ``version``."""
    info = tmp_path / f"websockets-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: websockets\nVersion: {version}\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(PYTHON_DIR)])
    return env


def test_worker_refuses_to_start_with_packages_that_do_not_fit(tmp_path: Path) -> None:
    env = with_fake_websockets(tmp_path, "12.0")
    worker = subprocess.run(
        [sys.executable, "-m", "websocket_worker", "--events-fd", "99"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert worker.returncode == EXIT_INCOMPATIBLE
    assert "websocket_worker cannot run: websockets 12.0 is installed" in worker.stderr
    check = subprocess.run(
        [sys.executable, "-m", "websocket_worker", "--check"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert check.returncode == EXIT_INCOMPATIBLE
    report = json.loads(check.stdout)
    assert report["installed"]["websockets"] == "12.0"
    assert report["problems"] == [
        "websockets 12.0 is installed, the worker needs 15.0 or newer, before 18"
    ]


def test_check_passes_with_the_pinned_packages() -> None:
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    check = subprocess.run(
        [sys.executable, "-m", "websocket_worker", "--check"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["problems"] == []
