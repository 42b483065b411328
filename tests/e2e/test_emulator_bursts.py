"""Bursts of cold starts: hundreds of concurrent first calls are all answered
(none dropped, every reply a valid probe reply) and leave no process behind."""

from __future__ import annotations

import http.client
import json
import resource
import threading
import time

import psutil
import pytest
import yaml

from lambda_affinity.emulator.process import EmulatorProcess

pytestmark = pytest.mark.slow

BURST = 200
FD_LIMIT = 64  # a few environments' worth of descriptors
EVENTS = 30


def test_a_burst_of_200_concurrent_cold_invokes_drops_none(tmp_path, emulator_lambda_client, emulator_descendants):
    config = tmp_path / "emu.yaml"
    config.write_text(
        yaml.safe_dump({"model": {"max_environments": 250, "init_delay_s": 3.0}, "functions": [{"name": "probe"}]})
    )
    emu = EmulatorProcess(config_path=str(config))
    emu.start()
    try:
        lam = emulator_lambda_client(emu.endpoint, read_timeout=60)
        lam.invoke(FunctionName="probe", InvocationType="DryRun")  # botocore loaded before the burst
        replies, errors = [None] * BURST, []
        gate = threading.Barrier(BURST)

        def call(i):
            # A client per thread (boto3 clients share a connection pool of 10).
            client = emulator_lambda_client(emu.endpoint, read_timeout=60)
            gate.wait()
            try:
                out = client.invoke(FunctionName="probe", Payload=json.dumps({"session": f"u{i}"}).encode())
                replies[i] = (out["StatusCode"], out.get("FunctionError"), json.loads(out["Payload"].read()))
            except Exception as exc:  # what the test counts: any failure at all
                errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=call, args=(i,)) for i in range(BURST)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        elapsed = time.monotonic() - started
        assert errors == [], f"{len(errors)} of {BURST} calls failed, e.g. {errors[:3]}"
        assert all(r is not None for r in replies)
        for i, (status, function_error, doc) in enumerate(replies):
            assert status == 200 and function_error is None, doc
            assert doc["session"] == f"u{i}" and doc["probe"] == 1
        # A call that reached the emulator after an earlier one finished (3 s of init) may be
        # warm (200 threads of boto3 take a while to send); every other made its own.
        envs = {doc["env_id"] for _, _, doc in replies}
        colds = sum(doc["cold"] for _, _, doc in replies)
        print(f"burst of {BURST}: {len(envs)} environments, {colds} cold, {elapsed:.1f} s")
        assert colds == len(envs) >= BURST * 0.9
        assert elapsed < 60
        below = emulator_descendants(emu.proc.pid)
        assert len(below) == len(envs) + 1  # the fork-server and one process per environment
    finally:
        emu.stop()
    deadline = time.monotonic() + 5
    while (left := [p for p in below if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == []


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_cold_starts_out_of_descriptors_are_answered_counted_and_leak_nothing(tmp_path, emulator_code):
    """A cold start that cannot get descriptors (a low RLIMIT_NOFILE, a cap set
    above what it allows) fails as an invocation, every call is counted, and
    once every environment has retired the emulator holds no more fds than
    before: a failed cold start closes whatever it had opened."""
    config = tmp_path / "emu.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"max_environments": 100, "init_delay_s": 0, "keep_alive_s": 0.5},
                "functions": [{"name": "faults", "handler": "app.handler", "code": str(emulator_code["faults"])}],
            }
        )
    )
    with EmulatorProcess(
        config_path=str(config), preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
    ) as emu:
        conn = http.client.HTTPConnection(emu.endpoint.split("//")[1], timeout=30)

        def stats() -> dict:
            conn.request("GET", "/_emulator/environments")
            return json.loads(conn.getresponse().read())

        stats()  # this connection is open in both counts
        fds_before = psutil.Process(emu.proc.pid).num_fds()
        for _ in range(EVENTS):  # one connection: Event calls answer 202 at once and run side by side
            conn.request(
                "POST",
                "/2015-03-31/functions/faults/invocations",
                body=b'{"action": "sleep", "seconds": 1}',
                headers={"X-Amz-Invocation-Type": "Event"},
            )
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 202
        deadline = time.monotonic() + 20
        while True:
            doc = stats()
            if doc["invocations"] + doc["async_dropped"] >= EVENTS or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (doc["invocations"], doc["async_dropped"]) == (EVENTS, 0)
        assert 0 < doc["function_errors"] < EVENTS  # some could not start; the others ran
        while stats()["environments"] and time.monotonic() < deadline + 10:  # all retire after 0.5 s idle
            time.sleep(0.1)
        assert stats()["environments"] == []
        # A retired environment's port and pipe close once its process has been reaped: a moment later.
        settle = time.monotonic() + 5
        while (fds_after := psutil.Process(emu.proc.pid).num_fds()) > fds_before and time.monotonic() < settle:
            time.sleep(0.1)
        assert fds_after <= fds_before, f"{fds_after - fds_before} descriptors leaked"
