"""Environment lifecycle in real time (keep-alive, maximum lifetime), account
throttling, and stopping: in-flight invocations answered, no process left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import psutil
import pytest
import yaml

from lambda_affinity.emulator.config import config_from_mapping
from lambda_affinity.emulator.process import EmulatorProcess
from lambda_affinity.emulator.server import Emulator

pytestmark = pytest.mark.slow


def alive(pids) -> list:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def wait_gone(pids, timeout=5.0) -> list:
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive(pids)


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def make_config(tmp_path, functions, **model):
    return config_from_mapping(
        {"model": {"init_delay_s": 0, "policy": "mru", **model}, "functions": functions}, base_dir=str(tmp_path)
    )


# -- in-process Emulator (the Python API's context manager) -----------------------
def test_keep_alive_expiry_retires_idle_environments_and_their_processes(tmp_path, emulator_lambda_client):
    cfg = make_config(tmp_path, [{"name": "probe"}], keep_alive_s=0.4)
    with Emulator(cfg) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        first = json.loads(lam.invoke(FunctionName="probe", Payload=b"{}")["Payload"].read())
        [env] = get_json(emu.introspection_url)["environments"]
        assert env["id"] == first["env_id"] and env["state"] == "idle"
        time.sleep(0.8)
        doc = get_json(emu.introspection_url)
        assert doc["environments"] == [] and doc["retired"] == {"keep-alive": 1}
        assert wait_gone([env["pid"]]) == []
        second = json.loads(lam.invoke(FunctionName="probe", Payload=b"{}")["Payload"].read())
        assert second["cold"] and second["env_id"] != first["env_id"]
        pids = [e["pid"] for e in get_json(emu.introspection_url)["environments"]]
    assert wait_gone(pids) == []


def test_maximum_lifetime_replaces_environments(tmp_path, emulator_lambda_client):
    cfg = make_config(tmp_path, [{"name": "probe"}], keep_alive_s=60, max_lifetime_s=0.6)
    with Emulator(cfg) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        seen = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            seen.append(json.loads(lam.invoke(FunctionName="probe", Payload=b"{}")["Payload"].read()))
            time.sleep(0.1)
        ids = list(dict.fromkeys(r["env_id"] for r in seen))
        assert len(ids) >= 2  # replaced at least once
        for r in seen:
            assert r["env_age_ms"] < 600 + 150  # none served past its lifetime (plus one call)
        assert get_json(emu.introspection_url)["retired"].get("max-lifetime", 0) >= 1


def test_account_concurrency_throttles_with_the_account_reason(tmp_path, emulator_code, emulator_lambda_client):
    cfg = make_config(
        tmp_path,
        [{"name": "slow", "handler": "app.handler", "code": str(emulator_code["faults"])}, {"name": "probe"}],
        account_concurrency=1,
    )
    with Emulator(cfg) as emu:
        lam = emulator_lambda_client(emu.endpoint)
        busy = threading.Thread(
            target=lambda: emulator_lambda_client(emu.endpoint).invoke(
                FunctionName="slow", Payload=b'{"action": "sleep", "seconds": 1}'
            )
        )
        busy.start()
        try:
            deadline = time.monotonic() + 10
            while not get_json(emu.introspection_url)["environments"]:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            with pytest.raises(lam.exceptions.TooManyRequestsException) as exc:
                lam.invoke(FunctionName="probe")
            assert exc.value.response["Reason"] == "ConcurrentInvocationLimitExceeded"
        finally:
            busy.join(10)


# -- stopping --------------------------------------------------------------------
def _config_file(tmp_path, emulator_code):
    path = tmp_path / "emu.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": {"init_delay_s": 0},
                "functions": [
                    {"name": "faults", "handler": "app.handler", "code": str(emulator_code["faults"]), "timeout": 30}
                ],
            }
        )
    )
    return str(path)


def test_stop_with_invocations_in_flight_answers_them_and_leaves_no_process(
    tmp_path, emulator_code, emulator_lambda_client, emulator_descendants
):
    emu = EmulatorProcess(config_path=_config_file(tmp_path, emulator_code))
    emu.start()
    try:
        lam = emulator_lambda_client(emu.endpoint)
        results = {}

        def via_invoke():
            try:
                lam.invoke(FunctionName="faults", Payload=b'{"action": "sleep", "seconds": 20}')
                results["invoke"] = "returned"
            except Exception as exc:
                results["invoke"] = exc

        def via_url():
            try:
                urllib.request.urlopen(emu.function_urls["faults"] + "?action=sleep&seconds=20", timeout=30)
                results["url"] = "returned"
            except urllib.error.HTTPError as exc:
                results["url"] = exc.code
            except Exception as exc:
                results["url"] = exc

        threads = [threading.Thread(target=via_invoke), threading.Thread(target=via_url)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while sum(e["state"] == "busy" for e in get_json(emu.introspection_url)["environments"]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        below = emulator_descendants(emu.proc.pid)
        assert len(below) == 3  # the fork-server and two environments
        started = time.monotonic()
        assert emu.stop() == 0
        assert time.monotonic() - started < 5
        for t in threads:
            t.join(10)
    finally:
        emu.stop()
    assert results["invoke"].response["Error"]["Code"] == "ServiceException"
    assert results["invoke"].response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert results["url"] == 503
    assert wait_gone(below) == []


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "parent-gone", "SIGKILL"])
def test_every_way_of_ending_leaves_no_process(tmp_path, emulator_code, how, emulator_descendants):
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lambda_affinity.cli",
            "emulate",
            "--quiet",
            "--port",
            "0",
            "--ready-file",
            str(ready),
            "--config",
            _config_file(tmp_path, emulator_code),
            "--exit-with-parent",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        doc = json.loads(ready.read_text())
        for i in range(3):  # two environments: one busy, one idle
            threading.Thread(
                target=lambda: urllib.request.urlopen(
                    doc["function_urls"]["faults"] + "?action=sleep&seconds=0.5", timeout=30
                ).read()
            ).start()
            time.sleep(0.05 if i == 0 else 0.7)
        below = emulator_descendants(proc.pid)
        assert len(below) >= 2
        if how == "parent-gone":
            proc.stdin.close()  # what the emulator sees when its parent dies
        else:
            proc.send_signal(getattr(signal, how))
        code = proc.wait(10)
        assert code == (-9 if how == "SIGKILL" else 0)
        assert wait_gone(below) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_process_count_is_back_to_where_it_started():
    """Nothing this module started is still running: the test process has no
    children left (a zombie-free, environment-free machine for the next test)."""
    me = psutil.Process(os.getpid())
    leftovers = [p for p in me.children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    assert leftovers == []
