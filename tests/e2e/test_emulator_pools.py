"""Provisioned concurrency and SnapStart in the emulator, with real environment processes and boto3:
P1 and P2 (docs/model.md) checked with the emulator's introspection and the replies, and SnapStart's
one snapshot shared by the environments restored from it. The same in the simulator: test_pools.py."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import threading
import time
import urllib.request
import zipfile

import psutil
import pytest
from concurrent_calls import together

from lambda_affinity.emulator.config import config_from_mapping
from lambda_affinity.emulator.pools import ProvisioningError
from lambda_affinity.emulator.server import Emulator

pytestmark = pytest.mark.slow

# Module-level state, computed once per init: what a snapshot carries into every restored environment.
APP = """
import os, random
DRAWN = random.random()
INIT_TYPE = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE")
{extra}

def handler(event, context):
    return {{"drawn": DRAWN, "init_type": INIT_TYPE, "now_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
            "pid": os.getpid(), "env_id": context.log_stream_name, "code": globals().get("CODE")}}
"""


def app(tmp_path, extra: str = "") -> str:
    code = tmp_path / "app"
    code.mkdir(exist_ok=True)
    (code / "app.py").write_text(APP.format(extra=extra))
    return str(code)


def emulator(tmp_path, functions: list, **model) -> Emulator:
    cfg = config_from_mapping({"model": {"init_delay_s": 0.0, **model}, "functions": functions}, str(tmp_path))
    return Emulator(cfg)


def introspect(emu: Emulator) -> dict:
    with urllib.request.urlopen(emu.introspection_url, timeout=10) as resp:
        return json.loads(resp.read())


def invoke(lam, name: str = "probe", session: str = "s") -> dict:
    return json.loads(lam.invoke(FunctionName=name, Payload=json.dumps({"session": session}))["Payload"].read())


def provisioned_ids(doc: dict) -> set:
    return {e["id"] for e in doc["environments"] if e["initialization_type"] == "provisioned-concurrency"}


def test_p1_serial_users_on_provisioned_concurrency_meet_no_cold_start(tmp_path, emulator_lambda_client):
    """P1: provisioned 5, 5 users each calling serially: the 5 environments are up before the first
    call, every call lands on one of them, no cold start, at most 5 new-environment calls."""
    with emulator(tmp_path, [{"name": "probe", "provisioned_concurrency": 5}]) as emu:
        before = introspect(emu)
        lam = emulator_lambda_client(emu.endpoint)
        replies = together(5, lambda u: [invoke(lam, session=f"user{u}") for _ in range(4)])
        after = introspect(emu)
    pool = provisioned_ids(before)
    assert len(pool) == 5
    assert all(e["state"] == "idle" and e["invocations"] == 0 for e in before["environments"])
    assert {r["env_id"] for user in replies for r in user} <= pool
    calls = [r for user in replies for r in user]
    assert not any(r["cold"] for r in calls) and {r["init_type"] for r in calls} == {"provisioned-concurrency"}
    assert sum(r["new_environment"] for r in calls) == after["new_environment_calls"]  # the probe agrees
    assert after["cold_starts"] == 0 and after["spillover"] == 0
    assert 1 <= after["new_environment_calls"] <= 5
    assert after["new_environment_calls"] + after["warm_starts"] == 20
    assert after["functions"]["probe"]["provisioned"] == 5


def test_p2_calls_beyond_the_pool_spill_over_to_cold_on_demand_environments(tmp_path, emulator_lambda_client):
    """P2: provisioned 5, 10 simultaneous calls (each holds its environment 2 s, so all overlap): 5 on the
    provisioned environments, 5 spill over to new on-demand environments, each a cold start."""
    functions = [{"name": "probe", "provisioned_concurrency": 5}]
    cfg = {"model": {"init_delay_s": 0.0}, "functions": functions, "service_time": "2"}
    with Emulator(config_from_mapping(cfg, str(tmp_path))) as emu:
        pool = provisioned_ids(introspect(emu))
        lam = emulator_lambda_client(emu.endpoint)
        replies = together(10, lambda u: invoke(lam, session=f"user{u}"))
        after = introspect(emu)
    ids = {r["env_id"] for r in replies}
    assert len(ids) == 10 and len(ids & pool) == 5
    # the probe's own view: 5 first calls on provisioned environments, 5 cold starts on on-demand ones
    kinds = sorted((r["cold"], r["new_environment"], r["init_type"]) for r in replies)
    assert kinds == [(False, True, "provisioned-concurrency")] * 5 + [(True, False, "on-demand")] * 5
    assert (after["spillover"], after["cold_starts"], after["new_environment_calls"]) == (5, 5, 5)
    on_demand = [e for e in after["environments"] if e["id"] not in pool]
    assert len(on_demand) == 5 and {e["initialization_type"] for e in on_demand} == {"on-demand"}


def test_provisioned_inits_run_as_provisioned_concurrency(tmp_path, emulator_lambda_client):
    """The pool's processes init with AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency, a spilled-over
    one with on-demand; an idle provisioned environment outlives the keep-alive."""
    fn = {"name": "app", "code": app(tmp_path), "handler": "app.handler", "provisioned_concurrency": 1}
    with emulator(tmp_path, [fn], keep_alive_s=0.3) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        first = invoke(lam, "app")
        threading.Event().wait(0.6)  # past the keep-alive
        second = invoke(lam, "app")
        both = together(2, lambda _: invoke(lam, "app"))
        doc = introspect(emu)
    assert first["init_type"] == second["init_type"] == "provisioned-concurrency"
    assert first["pid"] == second["pid"]
    assert sorted(r["init_type"] for r in both) in (
        ["on-demand", "provisioned-concurrency"],  # the two overlapped: one spilled over
        ["provisioned-concurrency", "provisioned-concurrency"],  # they did not
    )
    assert doc["retired"].get("keep-alive", 0) <= 1  # only a spilled-over environment may idle out


def test_a_crashed_provisioned_environment_is_replaced(tmp_path, emulator_lambda_client):
    fn = {"name": "app", "code": app(tmp_path), "handler": "app.handler", "provisioned_concurrency": 1}
    with emulator(tmp_path, [fn]) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        first = invoke(lam, "app")
        os.kill(first["pid"], signal.SIGKILL)
        for _ in range(100):  # its successor's init runs in the background
            doc = introspect(emu)
            live = [e for e in doc["environments"] if e["state"] == "idle"]
            if live and live[0]["pid"] != first["pid"]:
                break
            threading.Event().wait(0.05)
        second = invoke(lam, "app")
        doc = introspect(emu)
    assert second["pid"] != first["pid"] and second["init_type"] == "provisioned-concurrency"
    assert doc["cold_starts"] == 0 and doc["new_environment_calls"] == 2


def test_snapstart_environments_share_the_snapshot_s_init(tmp_path, emulator_lambda_client):
    """SnapStart: the init runs once (snap-start); environments forked from its snapshot share a number
    drawn at import, each its own process; on-demand environments of the same code draw their own."""
    code = app(tmp_path)
    functions = [
        {"name": "snap", "code": code, "handler": "app.handler", "runtime": "python3.12", "snapstart": True},
        {"name": "plain", "code": code, "handler": "app.handler"},
    ]
    cfg = {"model": {"init_delay_s": 0.0}, "functions": functions, "service_time": "1.5"}  # the pairs overlap
    with Emulator(config_from_mapping(cfg, str(tmp_path))) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        first = lam.invoke(FunctionName="snap", Payload=b"{}", LogType="Tail")
        replies = together(4, lambda i: invoke(lam, "snap" if i < 2 else "plain"))
        snap, plain = replies[:2], replies[2:]
        doc = introspect(emu)
    assert snap[0]["pid"] != snap[1]["pid"] and snap[0]["env_id"] != snap[1]["env_id"]
    assert snap[0]["drawn"] == snap[1]["drawn"] == json.loads(first["Payload"].read())["drawn"]
    report = base64.b64decode(first["LogResult"]).decode().splitlines()[-1]
    assert "\tRestore Duration: " in report and "Init Duration" not in report  # AWS's REPORT for a restore
    assert {r["init_type"] for r in snap} == {r["now_type"] for r in snap} == {"snap-start"}
    assert plain[0]["pid"] != plain[1]["pid"] and plain[0]["drawn"] != plain[1]["drawn"]
    assert {r["init_type"] for r in plain} == {"on-demand"}
    restored = [e for e in doc["environments"] if e["function"] == "snap"]
    assert len(restored) == 2 and {e["initialization_type"] for e in restored} == {"snap-start"}


@pytest.mark.parametrize(
    "fn, message",
    [
        ({"provisioned_concurrency": 2}, r"^provisioned concurrency: app: RuntimeError: init went wrong$"),
        ({"snapstart": True, "runtime": "python3.12"}, r"app: SnapStart's init failed: RuntimeError: init went wrong"),
    ],
)
def test_a_failing_init_at_start_stops_the_emulator_from_serving(tmp_path, fn, message):
    """An init that fails before any call (a provisioned environment's, the snapshot's) is an error at
    start, as AWS fails the allocation or the version; nothing is left running."""
    code = app(tmp_path, extra="raise RuntimeError('init went wrong')")
    emu = emulator(tmp_path, [{"name": "app", "code": code, "handler": "app.handler", **fn}])
    with pytest.raises(ProvisioningError, match=message):
        emu.start()


def app_zip(code: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", APP.format(extra=f"CODE = {code!r}"))
    return buf.getvalue()


def zygotes() -> int:
    """The fork-servers this test process runs (the emulator runs in one of its threads); one that has
    ended but is not reaped yet (a zombie, or gone meanwhile) runs nothing and is not counted."""
    n = 0
    for p in psutil.Process().children():
        try:
            n += "zygote.py" in " ".join(p.cmdline())
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            pass
    return n


def eventually(check, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_snapstart_snapshots_follow_updates_and_versions(tmp_path, emulator_lambda_client):
    """An update's new code gets a new snapshot (the old one's fork-server ends once nothing forked from it
    runs); a published version gets its own, as AWS snapshots each version."""
    code = app(tmp_path, extra="CODE = 'v1'")
    fn = {"name": "snap", "code": code, "handler": "app.handler", "runtime": "python3.12", "snapstart": True}
    with emulator(tmp_path, [fn]) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        before = invoke(lam, "snap")
        assert zygotes() == 2  # the shared one and the snapshot
        lam.update_function_code(FunctionName="snap", ZipFile=app_zip("v2"))
        after = invoke(lam, "snap")
        assert eventually(lambda: zygotes() == 2)  # v1's snapshot ended with its environment
        version = lam.publish_version(FunctionName="snap")["Version"]
        published = json.loads(lam.invoke(FunctionName="snap", Qualifier=version, Payload=b"{}")["Payload"].read())
        assert zygotes() == 3
    assert (before["code"], after["code"], published["code"]) == ("v1", "v2", "v2")
    assert after["pid"] != before["pid"] and after["drawn"] != before["drawn"]
    assert {r["init_type"] for r in (before, after, published)} == {"snap-start"}
    assert published["drawn"] not in (before["drawn"], after["drawn"])


def test_provisioned_environments_after_an_update_run_the_new_code(tmp_path, emulator_lambda_client):
    fn = {"name": "app", "code": app(tmp_path), "handler": "app.handler", "provisioned_concurrency": 2}
    with emulator(tmp_path, [fn]) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        pool = provisioned_ids(introspect(emu))
        lam.update_function_code(FunctionName="app", ZipFile=app_zip("v2"))
        assert eventually(lambda: len({e["id"] for e in introspect(emu)["environments"] if e["state"] == "idle"}) == 2)
        reply = invoke(lam, "app")
        version = lam.publish_version(FunctionName="app")["Version"]
        lam.invoke(FunctionName="app", Qualifier=version, Payload=b"{}")  # a version has no provisioned concurrency
        doc = introspect(emu)
    assert doc["functions"][f"app:{version}"]["provisioned"] == 0 and doc["spillover"] == 0
    assert reply["code"] == "v2" and reply["env_id"] not in pool and reply["init_type"] == "provisioned-concurrency"
    assert doc["retired"]["deploy"] == 2 and doc["cold_starts"] == 1 and doc["new_environment_calls"] == 1
    assert provisioned_ids(doc).isdisjoint(pool) and len(provisioned_ids(doc)) == 2
