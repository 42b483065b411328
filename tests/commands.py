"""The `lambda-affinity` command as a subprocess, for the end-to-end tests of its subcommands."""

from __future__ import annotations

import subprocess
import sys


def cli(*args: str, cwd=None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `lambda-affinity ARGS` with this Python, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "lambda_affinity.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
