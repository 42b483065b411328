"""`lambda-affinity emulate` as a command: a bad config stops it with the message."""

from __future__ import annotations

import subprocess
import sys

from config_files import write


def test_cli_stops_on_a_bad_config_with_the_message(tmp_path):
    path = write(tmp_path, "functions: [{name: a, memory: 1}]")
    run = subprocess.run(
        [sys.executable, "-m", "lambda_affinity.cli", "emulate", "--config", path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert f"{path}: functions[0].memory: expected a whole number from 128 to 10240, got 1" in run.stderr
