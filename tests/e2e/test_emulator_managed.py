"""Lambda Managed Instances in the emulator, with real processes and boto3 (docs/model.md, "Managed
Instances"): M1 and M2 of issue 19 at seconds scale (K = 4, 8 users), and the runtime each environment
really is. The same constraints at AWS's numbers are in tests/unit/test_managed.py."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from lambda_affinity.emulator.config import config_from_mapping, probe_folder
from lambda_affinity.emulator.server import Emulator

pytestmark = pytest.mark.slow


def emulator(tmp_path, function: dict, **model) -> Emulator:
    model = {"managed_scale_interval_s": 1.0, "init_delay_s": 0.0, **model}
    cfg = config_from_mapping({"model": model, "functions": [{"name": "mi", **function}]}, base_dir=str(tmp_path))
    return Emulator(cfg)


def node_probe(k: int, **extra) -> dict:
    return {
        "runtime": "nodejs22.x",
        "code": probe_folder(node=True),
        "handler": "probe.handler",
        "per_environment_max_concurrency": k,
        **extra,
    }


def invoke(lam, session: str) -> dict:
    payload = json.dumps({"session": session}).encode()
    return json.loads(lam.invoke(FunctionName="mi", Payload=payload)["Payload"].read())


def together(lam, sessions: list) -> list:
    """One call per session, all started at once: replies, or ClientErrors."""
    out: list = [None] * len(sessions)
    barrier = threading.Barrier(len(sessions))

    def one(i: int) -> None:
        barrier.wait()
        try:
            out[i] = invoke(lam, sessions[i])
        except ClientError as exc:
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(sessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def environments(emu: Emulator) -> list:
    return json.loads(urllib.request.urlopen(emu.introspection_url, timeout=5).read())["environments"]


def wait_parked(emu: Emulator, loops: int) -> None:
    """Until every environment's runtime loops wait on /next (processes start one after another)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(e["waiting_on_next"] >= loops for e in environments(emu)):
            return
        time.sleep(0.05)
    raise AssertionError(f"runtime loops not all waiting on /next: {environments(emu)}")


def test_m1_env_concurrency_4_node_8_simultaneous_users_at_most_3_environments(tmp_path, emulator_lambda_client):
    """M1 at seconds scale: K = 4, the Node.js probe (2 worker threads), 8 users calling together, three
    times over 3 s (three scaler actions): the three environments started before the first call serve
    every call, none of them a cold start; a ninth..thirteenth simultaneous call is a throttle, not a new
    environment."""
    fn = node_probe(4, environment={"AWS_LAMBDA_NODEJS_WORKER_COUNT": 2, "AFFINITY_MISS_DELAY_MS": 300})
    with emulator(tmp_path, fn) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        assert len(environments(emu)) == 3  # ready before the emulator took a call
        wait_parked(emu, 4)
        replies = []
        for _ in range(3):
            replies += together(lam, [f"user{i}" for i in range(8)])
            time.sleep(1.0)
        assert all(isinstance(r, dict) for r in replies), replies
        assert len({r["env_id"] for r in replies}) <= 3
        envs = environments(emu)
        assert len(envs) == 3 and all(e["runtime"] == "nodejs22.x" and len(e["pids"]) == 1 for e in envs)
        # 13 at once with 12 slots: one is refused (the scaler acts later, never per call)
        burst = together(lam, [f"new{i}" for i in range(13)])
        refused = [r for r in burst if isinstance(r, ClientError)]
        assert len(refused) >= 1 and {r.response["Error"]["Code"] for r in refused} == {"TooManyRequestsException"}
        assert len({r["env_id"] for r in burst if isinstance(r, dict)}) <= 3


def test_m2_python_process_scope_env_id_shared_and_warm_rate_falls_as_k_grows(tmp_path, emulator_lambda_client):
    """M2: a Python environment is K real processes sharing one env_id, each with its own cache. One user
    calling serially meets them in turn (the longest-waiting /next takes each call), so its session misses
    once per process: the warm-cache rate falls as K grows, though every reply names the same env_id."""
    rates = {}
    for k in (1, 4, 8):
        fn = {"runtime": "python3.13", "per_environment_max_concurrency": k, "min_execution_environments": 1}
        with emulator(tmp_path, fn) as emu:
            lam = emulator_lambda_client(emu.endpoint)
            (env,) = environments(emu)
            assert len(env["pids"]) == k
            wait_parked(emu, k)
            replies = [invoke(lam, "alice") for _ in range(12)]
            assert {r["env_id"] for r in replies} == {env["id"]}  # one environment, one id
            misses = sum(not r["cache"]["hit"] for r in replies)
            assert misses == k  # once in each process's memory
            assert max(r["env_invocations"] for r in replies) == -(-12 // k)  # each process counts its own
            rates[k] = 1 - misses / len(replies)
    assert rates[1] > rates[4] > rates[8]


def test_managed_environment_says_its_initialization_type(tmp_path, emulator_lambda_client):
    fn = {
        "runtime": "python3.13",
        "code": str(tmp_path),
        "handler": "app.handler",
        "per_environment_max_concurrency": 2,
        "min_execution_environments": 1,
    }
    (tmp_path / "app.py").write_text(
        "import os\ndef handler(event, context):\n"
        "    return {k: os.environ.get(k) for k in ('AWS_LAMBDA_INITIALIZATION_TYPE', 'AWS_LAMBDA_LOG_STREAM_NAME')}\n"
    )
    with emulator(tmp_path, fn) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        reply = json.loads(lam.invoke(FunctionName="mi", Payload=b"{}")["Payload"].read())
        assert reply["AWS_LAMBDA_INITIALIZATION_TYPE"] == "lambda-managed-instances"
        assert reply["AWS_LAMBDA_LOG_STREAM_NAME"] == environments(emu)[0]["id"]


def test_a_timeout_ends_the_environment_and_a_new_one_takes_over(tmp_path, emulator_lambda_client):
    """One invocation timing out ends its environment (all its processes: docs/emulator.md); below the
    minimum, the fleet replaces it at once, and no process is left behind."""
    (tmp_path / "app.py").write_text(
        "import os, time\ndef handler(event, context):\n"
        "    time.sleep(event.get('sleep', 0))\n    return os.environ['AWS_LAMBDA_LOG_STREAM_NAME']\n"
    )
    fn = {
        "runtime": "python3.13",
        "code": str(tmp_path),
        "handler": "app.handler",
        "timeout": 0.5,
        "per_environment_max_concurrency": 2,
        "min_execution_environments": 1,
    }
    with emulator(tmp_path, fn) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        (first,) = environments(emu)
        reply = lam.invoke(FunctionName="mi", Payload=b'{"sleep": 2}')
        assert reply["FunctionError"] == "Unhandled" and b"timed out" in reply["Payload"].read()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            envs = environments(emu)
            if len(envs) == 1 and envs[0]["id"] != first["id"] and envs[0]["state"] == "idle":
                break
            time.sleep(0.05)
        assert json.loads(lam.invoke(FunctionName="mi", Payload=b"{}")["Payload"].read()) == envs[0]["id"]
        pids = first["pids"]
    for pid in pids:
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_d1_update_function_code_moves_a_managed_function_to_new_environments(tmp_path, emulator_lambda_client):
    """A deploy on Managed Instances (boto3's UpdateFunctionCode): the new code's environments start in the
    background, and every call after they are ready lands on them, running the new code."""
    import io
    import zipfile

    app = (
        "import os\nCODE = {!r}\n"
        "def handler(event, context):\n    return [CODE, os.environ['AWS_LAMBDA_LOG_STREAM_NAME']]\n"
    )
    (tmp_path / "app.py").write_text(app.format("v1"))
    fn = {
        "runtime": "python3.13",
        "code": str(tmp_path),
        "handler": "app.handler",
        "per_environment_max_concurrency": 2,
        "min_execution_environments": 1,
    }
    with emulator(tmp_path, fn) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        (old,) = environments(emu)
        assert json.loads(lam.invoke(FunctionName="mi")["Payload"].read()) == ["v1", old["id"]]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("app.py", app.format("v2"))
        lam.update_function_code(FunctionName="mi", ZipFile=buf.getvalue())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            envs = environments(emu)
            if [e["state"] for e in envs] == ["idle"] and envs[0]["id"] != old["id"]:
                break
            time.sleep(0.05)
        replies = [json.loads(lam.invoke(FunctionName="mi")["Payload"].read()) for _ in range(4)]
        assert replies == [["v2", envs[0]["id"]]] * 4
