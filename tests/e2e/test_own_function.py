"""The issue's done-when: an ordinary Python (Powertools-style router) and Node.js app, wrapped through
configuration only (`affinity_wrapper: true` in the emulator's config), run under a plain Locust HttpUser
locustfile with no affinity code (tests/fixtures/locustfiles/plain_own_app.py); the plugin's console and
JSON show per-user and per-endpoint rates, and every reply that carried the headers is counted, once, for
the user that made it. (That the wrapped apps' bytes equal the plain apps' is test_wrapper_emulator.py's.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from fixture_paths import HANDLERS, LOCUSTFILES
from locust_runs import assert_nothing_left, run_locust, stats_json
from test_plugin_headers import LAMBDA_AFFINITY_LOCUST

APP = HANDLERS / "own_app"
COUNTED = {"hello", "binary", "missing"}  # results with a statusCode: the wrapper adds its headers


def config(tmp_path) -> str:
    functions = [
        {"name": "app-py", "code": str(APP / "python"), "handler": "app.handler", "affinity_wrapper": True},
        {
            "name": "app-node",
            "code": str(APP / "node"),
            "handler": "app.handler",
            "runtime": "nodejs20.x",
            "affinity_wrapper": True,
        },
    ]
    path = tmp_path / "emulator.yaml"
    path.write_text(yaml.safe_dump({"model": {"policy": "mru", "init_delay_s": 0.05}, "functions": functions}))
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("function", ["app-py", "app-node"])
def test_a_plain_locustfile_measures_a_wrapped_app(tmp_path, function):
    if function == "app-node" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    args = ["-f", str(LOCUSTFILES / "plain_own_app.py"), "--headless", "-u", "3", "-r", "3", "-t", "2s"]
    args += ["--stop-timeout", "3", "--json", "--affinity-json", "a.json"]
    args += ["--affinity-emulator-config", config(tmp_path), "--affinity-function", function]
    run = run_locust(args, str(tmp_path), command=LAMBDA_AFFINITY_LOCUST)
    assert run.code == 0, run
    assert_nothing_left(run)
    calls = {s["name"]: s["num_requests"] for s in stats_json(run.stdout)}
    assert set(calls) == COUNTED | {"plain"} and calls["plain"] > 0 and all(calls.values())
    doc = json.loads((tmp_path / "a.json").read_text())
    # per user: every reply with headers counted, none without; the plugin's session key reached the wrapper
    assert doc["users"] == 3 and doc["invalid"] == 0
    assert doc["requests"] == sum(calls[n] for n in COUNTED)
    assert doc["hit_rate"] is not None and doc["warm_cache_rate"] is not None
    assert sum(u["warm_hits"] for u in doc["per_user"]) > 0
    # an environment's first call may have been a /plain one, which carries no headers: not every cold start shows
    assert 1 <= doc["cold_starts"] <= doc["environments"]
    # per endpoint: Locust's own counts, name by name
    endpoints = {e["name"]: e for e in doc["per_endpoint"]}
    assert {n: e["requests"] for n, e in endpoints.items()} == {n: calls[n] for n in COUNTED}
    assert all(e["cache_known"] == e["requests"] and e["warm_rate"] is not None for e in endpoints.values())
    console = run.stderr.split("Lambda affinity:", 1)[1]
    assert "max-share hit" in console and "warm-cache hit" in console and "per endpoint" in console
    for name in COUNTED:
        assert f"  {name} " in console.split("per endpoint", 1)[1]


def test_the_sam_snippet_in_own_function_md_passes_cfn_lint():
    from cfnlint.api import ManualArgs, lint

    text = (Path(__file__).resolve().parents[2] / "docs" / "own-function.md").read_text()
    snippets = [s.split("```", 1)[0] for s in text.split("```yaml\n")[1:]]
    sam = [s for s in snippets if "AWS::Serverless::LayerVersion" in s]
    assert len(sam) == 1, "the SAM snippet"
    template = 'AWSTemplateFormatVersion: "2010-09-09"\nTransform: AWS::Serverless-2016-10-31\n' + sam[0]
    matches = lint(template, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    assert matches == [], "\n".join(str(m) for m in matches)
