"""The `lambda-affinity` command's own dispatch."""

import os

import commands

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(*args):
    return commands.cli(*args, timeout=60, cwd=ROOT)


def test_help_lists_every_part():
    p = cli("--help")
    assert p.returncode == 0
    for name in ("simulate", "sweep", "calibrate", "emulate", "deploy", "destroy", "locust"):
        assert name in p.stdout


def test_locust_subcommand_shows_plugin_options_in_locusts_help():
    p = cli("locust", "-f", "locustfiles/seed_experiment.py", "--help")
    assert p.returncode == 0, p.stderr
    for option in (
        "--affinity-json",
        "--affinity-min-hit-rate",
        "--affinity-min-warm-rate",
        "--affinity-max-cold-ratio",
        "--affinity-sigv4",
    ):
        assert option in p.stdout
    assert "--headless" in p.stdout  # Locust's own options are all still there
    assert "MonkeyPatchWarning" not in p.stderr


def test_unknown_subcommand_is_a_usage_error():
    p = cli("teleport")
    assert p.returncode == 2 and "invalid choice: 'teleport'" in p.stderr


def test_a_reader_that_stops_reading_gets_no_traceback():
    # `lambda-affinity simulate | head -2`: before, a BrokenPipeError traceback on stderr.
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "lambda_affinity.cli", "simulate", "--users", "50", "--random-seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1 and err == "", err
