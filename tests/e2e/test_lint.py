"""The code passes its linters: `ruff check`, `ruff format --check` and
`mypy`, each configured in pyproject.toml (what they check, and why, is
there). A finding fails the test with the tool's own report. Here, with
the end-to-end tests, because each runs a tool as a process (mypy takes ~20 s cold)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(module: str, *args: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[lint]')")
    # From the repository root, where pyproject.toml names the paths and rules.
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=240)
    if proc.returncode != 0:
        pytest.fail(f"{module} {' '.join(args)} found problems:\n{(proc.stdout + proc.stderr).strip()}", pytrace=False)


def test_ruff_check_finds_nothing():
    _run("ruff", "check", "--no-cache", "--output-format", "concise", ".")


def test_ruff_format_would_change_nothing():
    _run("ruff", "format", "--no-cache", "--check", "--output-format", "concise", ".")


def test_mypy_finds_nothing():
    # The files to check are the `files` of [tool.mypy].
    _run("mypy")
