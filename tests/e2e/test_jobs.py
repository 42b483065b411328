"""--jobs and --executor: the same results whether runs execute here, in worker processes or on a
Dask cluster (a LocalCluster the test starts on 127.0.0.1), for sweep, simulate --runs and calibrate."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import psutil
import pytest
from commands import cli
from simulated_traces import simulated_trace

from lambda_affinity.platform import ModelConfig

ROOT = pathlib.Path(__file__).resolve().parents[2]


def files(folder: pathlib.Path) -> dict:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def no_children_left() -> None:
    _, alive = psutil.wait_procs(psutil.Process().children(recursive=True), timeout=5)
    assert not alive, f"left behind: {[(p.pid, p.cmdline()) for p in alive]}"


SWEEP = ("sweep", "--vary", "keep-alive=1,600", "--runs", "2", "--users", "5", "--duration", "20", "--seed", "3")


def test_sweep_and_simulate_runs_are_the_same_on_any_number_of_jobs(tmp_path):
    for jobs in ("1", "2"):
        p = cli(*SWEEP, "--out", str(tmp_path / jobs), "--jobs", jobs)
        assert p.returncode == 0, p.stderr
    one, two = files(tmp_path / "1"), files(tmp_path / "2")
    assert one == two and len(one) == 4
    docs = []
    for jobs in ("1", "2"):
        p = cli("simulate", "--runs", "3", "--users", "4", "--duration", "15", "--seed", "8", "--json", "--jobs", jobs)
        assert p.returncode == 0, p.stderr
        docs.append(json.loads(p.stdout))
    assert docs[0] == docs[1] and docs[0]["users"] == 12
    # today's Lambda features reach the worker processes too (issue 19's options)
    features = ("--shards", "2", "--provisioned", "1", "--keep-alive", "5:20", "--deploy-at", "7", "--reserved", "3")
    docs = []
    for jobs in ("1", "2"):
        p = cli("simulate", "--runs", "3", "--users", "6", "--duration", "15", "--seed", "8", *features, "--json",
                "--jobs", jobs)  # fmt: skip
        assert p.returncode == 0, p.stderr
        docs.append(json.loads(p.stdout))
    assert docs[0] == docs[1] and docs[0]["deploys"] == 3 and len(docs[0]["functions"]) == 2
    no_children_left()


def test_replays_of_a_trace_and_calibrate_are_the_same_on_any_number_of_jobs(tmp_path):
    path = simulated_trace(tmp_path / "t.csv", ModelConfig(), users=6, span=15.0, gap=8.0, seed=5)
    outs = []
    for jobs in ("1", "2"):
        sim = cli("simulate", "--trace", path, "--runs", "2", "--seed", "4", "--json", "--jobs", jobs)
        cal = cli("calibrate", path, "--service", "0.05", "--replays", "3", "--json", "--jobs", jobs)
        assert sim.returncode == 0 and cal.returncode == 0, sim.stderr + cal.stderr
        outs.append((json.loads(sim.stdout), json.loads(cal.stdout)))
    assert outs[0] == outs[1] and outs[0][1]["parameters"]["keep_alive_s"]["prior"] == 600.0
    no_children_left()


BUSY = """
import time
from lambda_affinity.sim.executors import Processes

def spin(_shared, seconds):
    end = time.time() + seconds
    while time.time() < end:
        pass

if __name__ == "__main__":
    Processes(2).map(spin, [60, 60, 60], shared=[1])
"""


def test_workers_end_when_their_parent_is_killed(tmp_path):
    """A killed calibrate or sweep cannot shut its pool down: its workers must not replay on, orphaned."""
    script = tmp_path / "busy.py"
    script.write_text(BUSY)
    parent = subprocess.Popen([sys.executable, str(script)])
    try:
        proc = psutil.Process(parent.pid)
        for _ in range(100):  # until both workers run
            workers = [c for c in proc.children() if "spawn_main" in " ".join(c.cmdline())]
            if len(workers) == 2:
                break
            psutil.wait_procs([], timeout=0.1)
        assert len(workers) == 2
    finally:
        parent.kill()
        parent.wait()
    _, alive = psutil.wait_procs(workers, timeout=20)  # a worker may still be starting (imports) on a busy machine
    for p in alive:
        p.kill()
    assert not alive, f"workers outlived their killed parent: {[(p.pid, p.ppid(), p.status()) for p in alive]}"


def test_bad_jobs_and_executors_are_one_line(tmp_path):
    for args, message in (
        (("--jobs", "0"), "--jobs 0: must be >= 1"),
        (("--executor", "tcp://x"), "expected dask://HOST:PORT"),
        (("--executor", "dask://127.0.0.1:9"), "cannot reach the scheduler"),
    ):
        p = cli(*SWEEP, "--out", str(tmp_path / "x"), *args, timeout=60)
        assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr, p.stderr


# A Dask LocalCluster in its own process (the test process has gevent patched in by Locust's import,
# which distributed's event loop does not run under): two worker threads on 127.0.0.1; it prints
# the scheduler's address and stops when its stdin closes.
CLUSTER = """
import sys, distributed
with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://", host="127.0.0.1",
                              dashboard_address=None) as cluster:
    print(cluster.scheduler_address, flush=True)
    sys.stdin.read()
"""


def test_a_sweep_on_a_dask_cluster(tmp_path):
    pytest.importorskip("distributed")
    cluster = subprocess.Popen(
        [sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        address = cluster.stdout.readline().strip().removeprefix("tcp://")
        assert address.startswith("127.0.0.1:"), address
        p = cli(*SWEEP, "--out", str(tmp_path / "dask"), "--executor", f"dask://{address}")
        assert p.returncode == 0, p.stderr
    finally:
        cluster.stdin.close()
        cluster.wait(timeout=30)
    p = cli(*SWEEP, "--out", str(tmp_path / "here"), "--jobs", "1")
    assert p.returncode == 0, p.stderr
    assert files(tmp_path / "dask") == files(tmp_path / "here")
    no_children_left()
