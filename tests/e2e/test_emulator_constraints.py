"""The platform model's constraints (docs/model.md) held by the emulator with
real environment processes and a real client (boto3), each in seconds: where
a fact spans minutes on AWS (keep-alive, scale-out window) the model's clock
constants are shrunk, not the logic.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError
from concurrent_calls import together

from lambda_affinity.emulator.config import config_from_mapping
from lambda_affinity.emulator.server import Emulator

pytestmark = pytest.mark.slow


def emulator(tmp_path, **model):
    """The default model (only the init delay shortened unless given)."""
    cfg = config_from_mapping(
        {"model": {"init_delay_s": 0.0, **model}, "functions": [{"name": "probe"}]}, base_dir=str(tmp_path)
    )
    return Emulator(cfg)


def together_invokes(lam, n: int) -> list:
    """n invocations started at once from n threads: replies, or ClientErrors."""
    return together(n, lambda _i: invoke(lam), catch=(ClientError,))


def invoke(lam) -> dict:
    return json.loads(lam.invoke(FunctionName="probe", Payload=b'{"session": "s"}')["Payload"].read())


def test_c1_sequential_invokes_on_a_fresh_emulator_reuse_one_environment(tmp_path, emulator_lambda_client):
    """C1 and the issue's own reproduction: back-to-back boto3 invokes (the
    old 2-router model cold-started the second one half the time)."""
    with emulator(tmp_path) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        replies = [invoke(lam) for _ in range(20)]
    assert {r["env_id"] for r in replies} == {replies[0]["env_id"]}
    assert [r["cold"] for r in replies] == [True] + [False] * 19
    assert [r["cache"]["hit"] for r in replies] == [False] + [True] * 19


def test_c2_keep_alive_decides_warm_or_cold(tmp_path, emulator_lambda_client):
    """C2 with keep-alive shrunk to 0.6 s: a call after 0.3 s idle is warm, one
    after 1 s idle is cold on a new environment."""
    with emulator(tmp_path, keep_alive_s=0.6) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        first = invoke(lam)
        time.sleep(0.3)
        warm = invoke(lam)
        time.sleep(1.0)
        cold = invoke(lam)
    assert warm["env_id"] == first["env_id"] and not warm["cold"]
    assert cold["cold"] and cold["env_id"] != first["env_id"]


def test_c3_c4_simultaneous_first_calls_then_serial_calls(tmp_path, emulator_lambda_client):
    """C4: 6 simultaneous first calls (a 0.3 s init keeps them overlapping)
    make 6 environments; C3: 12 serial calls after them make none."""
    with emulator(tmp_path, init_delay_s=0.3) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        first = together_invokes(lam, 6)
        assert all(isinstance(r, dict) and r["cold"] for r in first), first
        envs = {r["env_id"] for r in first}
        later = [invoke(lam) for _ in range(12)]
        live = json.loads(urllib.request.urlopen(emu.introspection_url, timeout=10).read())
    assert len(envs) == 6
    assert not any(r["cold"] for r in later) and {r["env_id"] for r in later} <= envs
    assert live["cold_starts"] == 6 and len(live["environments"]) == 6


def test_c6_scale_out_limit_throttles_with_429(tmp_path, emulator_lambda_client):
    """C6 with the bucket shrunk to 3 environments per 10 s: of 5 simultaneous
    first calls, 3 run and 2 get AWS's 429 TooManyRequestsException."""
    with emulator(tmp_path, init_delay_s=0.5, scale_limit=3, scale_window_s=10.0) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        out = together_invokes(lam, 5)
    ok = [r for r in out if isinstance(r, dict)]
    errors = [r for r in out if isinstance(r, ClientError)]
    assert len(ok) == 3 and len(errors) == 2, out
    for exc in errors:
        assert exc.response["Error"]["Code"] == "TooManyRequestsException"
        assert exc.response["Reason"] == "FunctionInvocationRateLimitExceeded"
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_busy_overhead_keeps_the_environment_reserved_in_the_emulator(tmp_path, emulator_lambda_client):
    """The model's busy_overhead_s, driven by the wall clock: a call during
    the 0.5 s hand-off cold-starts, one after it reuses the first environment
    (the most recently freed)."""
    with emulator(tmp_path, busy_overhead_s=0.5, policy="mru") as emu:
        lam = emulator_lambda_client(emu.endpoint)
        first = invoke(lam)
        second = invoke(lam)
        time.sleep(0.7)
        third = invoke(lam)
    assert second["cold"] and second["env_id"] != first["env_id"]
    assert not third["cold"] and third["env_id"] == second["env_id"]
