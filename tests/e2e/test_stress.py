"""bench/stress.py's quick form: bursts of cold starts, many kept-alive
connections, slowloris and hostile requests against a real emulator process,
with 0 calls dropped and 0 unexpected 5xx."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil
import pytest

pytestmark = pytest.mark.slow

STRESS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench", "stress.py"
)


def test_quick_stress_suite_drops_nothing():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    p = subprocess.run([sys.executable, STRESS, "--quick", "--json"], capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    phases = {r["phase"]: r for r in json.loads(p.stdout.splitlines()[0])}
    assert set(phases) == {"burst-invoke", "burst-url", "keepalive", "slowloris", "hostile"}
    for name, r in phases.items():
        assert r["dropped"] == 0 and r["server_errors"] == 0, (name, r)
        assert r["answered"] == r["sent"] > 0, (name, r)
    assert phases["burst-invoke"]["sent"] == phases["burst-url"]["sent"] == 100
    assert phases["keepalive"]["sent"] == 2 * 1200
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert after <= before  # the suite's emulators and their environments are gone
