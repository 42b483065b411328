"""Run an ES module script in Node.js with JSON on its stdin, and read the JSON it writes (tests comparing the
Node.js probe and wrapper with their Python references)."""

from __future__ import annotations

import json
import subprocess


def node_json(script: str, data, env: dict | None = None):
    run = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        input=json.dumps(data),
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)
