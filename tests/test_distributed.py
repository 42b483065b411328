"""Distributed runs with real processes: a Locust master and `locust --worker`
subprocesses on 127.0.0.1, the master's embedded emulator as the target.

Each worker also dumps what it recorded itself when its test stops (a
listener in the test's locustfile), so the master's totals are compared with
every worker's own record, user by user, and with Locust's request counts.
Every process started (master, workers, the emulator below the master) is
collected while it runs, killed and reaped at the end, and must be gone.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

LOCUST = [sys.executable, "-m", "locust"]

LOCUSTFILE = '''
import json
import os

import gevent
from locust import between, events, task
from locust.runners import WorkerRunner

from lambda_affinity import locust_plugin
from lambda_affinity.users import FunctionUrlUser

LINGER_S = float(os.environ.get("AFFINITY_LINGER_S", "0"))


class Probe(FunctionUrlUser):
    wait_time = between(0, 0.3)

    @task
    def probe_twice(self):
        self.call_probe()
        # with --stop-timeout, a user inside a task finishes it after the stop:
        # these calls land after the master's test_stop, past Locust's 0.5 s wait
        gevent.sleep(LINGER_S)
        self.call_probe()


@events.test_stop.add_listener
def _dump_own_record(environment, **_kw):
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        t = locust_plugin.tracker()
        path = os.path.join(os.environ["AFFINITY_DUMP_DIR"], f"worker-{runner.worker_index}.json")
        with open(path, "w") as fh:
            json.dump({"rows": t.rows(), "envs": list(t.env_ids())}, fh)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A master and its workers as real processes, bounded in time (with no
    workers, one standalone Locust process)."""

    def __init__(self, tmp_path, master_args, workers=2, locustfile=LOCUSTFILE, env=None):
        self.dir = tmp_path
        (tmp_path / "locustfile.py").write_text(locustfile)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
        self.env.update({"AFFINITY_DUMP_DIR": str(tmp_path), **(env or {})})
        self.port = free_port()
        self.seen: dict[int, psutil.Process] = {}
        distributed = ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(self.port)]
        self.master = self._spawn("master", [*(distributed if workers else []), *master_args])
        self.workers = [self._spawn(f"worker{i}", ["--worker", "--master-host", "127.0.0.1",
                                                   "--master-port", str(self.port)]) for i in range(workers)]

    def _spawn(self, name, args):
        out = open(self.dir / f"{name}.out", "w")
        err = open(self.dir / f"{name}.err", "w")
        proc = subprocess.Popen(LOCUST + ["-f", "locustfile.py", *args], cwd=self.dir, env=self.env,
                                stdout=out, stderr=err)
        proc.name = name
        self.seen[proc.pid] = psutil.Process(proc.pid)
        return proc

    def collect(self):
        for proc in [self.master, *self.workers]:
            try:
                for child in psutil.Process(proc.pid).children(recursive=True):
                    self.seen.setdefault(child.pid, child)
            except psutil.NoSuchProcess:
                pass

    def wait_master(self, timeout):
        deadline = time.monotonic() + timeout
        while self.master.poll() is None:
            self.collect()
            if time.monotonic() > deadline:
                raise AssertionError(f"the master did not finish within {timeout} s\n{self.text('master.err')[-4000:]}")
            time.sleep(0.1)
        for w in self.workers:  # workers quit when their master does
            try:
                w.wait(timeout=15)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{w.name} still running 15 s after the master exited") from None
        return self.master.returncode

    def text(self, name):
        return (self.dir / name).read_text()

    def close(self):
        """Kill whatever still runs, reap it, and say if anything was left."""
        self.collect()
        procs = list(self.seen.values())
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        for proc in [self.master, *self.workers]:
            proc.wait(timeout=10)
        _, alive = psutil.wait_procs(procs, timeout=10)
        return alive


@pytest.fixture
def cluster_factory(tmp_path):
    made = []

    def make(*args, **kwargs):
        c = Cluster(tmp_path, *args, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        assert c.close() == []


def own_records(tmp_path) -> dict[int, dict]:
    return {int(re.search(r"worker-(\d+)", p.name).group(1)): json.loads(p.read_text())
            for p in tmp_path.glob("worker-*.json")}


def csv_rows(text: str) -> dict[str, dict]:
    """The per-user CSV as {user: row} with the tracker's types."""
    out = {}
    for r in csv.DictReader(io.StringIO(text)):
        out[r["user"]] = {k: (r[k] if k == "user" else None if r[k] == "" else float(r[k]) if k == "max_share"
                              else int(r[k])) for k in r}
    return out


def probe_requests(stdout: str) -> int:
    """Locust's own count for the probe rows (valid and invalid replies)."""
    stats = json.loads(stdout[stdout.index("["):])
    return sum(s["num_requests"] for s in stats if s["name"].startswith("probe"))


MASTER = ["--expect-workers", "2", "--headless", "-u", "10", "-r", "10", "--json", "--affinity-json", "out/a.json",
          "--csv", "out/run", "--html", "out/report.html"]


def assert_master_holds(doc, rows_csv, records: dict[int, dict]):
    """The master's rows are exactly the workers' own, user by user."""
    for index, record in records.items():
        for row in record["rows"]:
            assert row["user"].startswith(f"w{index}-u")
            assert rows_csv[row["user"]] == {**row, "max_share": float(row["max_share"]) if row["max_share"] is not None
                                             else None}, row["user"]
    assert doc["per_user"] == [{k: r[k] for k in ("user", "requests", "max_share", "warm_hits", "environments",
                                                  "cold_starts", "switches")} for r in rows_csv.values()]


@pytest.mark.slow
def test_master_and_two_workers_exact_totals(cluster_factory, tmp_path):
    c = cluster_factory(MASTER + ["-t", "5s", "--affinity-min-hit-rate", "0.01", "--stop-timeout", "5"],
                        env={"AFFINITY_LINGER_S": "3"})
    code = c.wait_master(60)
    err = c.text("master.err")
    assert code == 0, err[-4000:]
    # the workers finish their tasks (up to 3 s) after the stop: their last calls still count
    waited = float(re.search(r"waited ([\d.]+) s for the workers' final snapshots", err).group(1))
    assert waited < 5, waited  # logged only when there was a wait (> 0.1 s)
    records = own_records(tmp_path)
    assert sorted(records) == [0, 1]
    doc = json.loads((tmp_path / "out" / "a.json").read_text())
    rows = csv_rows((tmp_path / "out" / "run_affinity.csv").read_text())
    mine = [r for rec in records.values() for r in rec["rows"]]
    # user keys are unique across workers, and every user of every worker is there
    assert len(rows) == len(mine) == doc["users"] == 10
    assert_master_holds(doc, rows, records)
    assert doc["requests"] == sum(r["requests"] for r in mine) > 20
    assert doc["invalid"] == sum(r["invalid"] for r in mine) == 0
    assert doc["cold_starts"] == sum(r["cold_starts"] for r in mine)
    # workers share the master's emulator: its environments are counted once
    assert doc["environments"] == len(set(records[0]["envs"]) | set(records[1]["envs"]))
    assert probe_requests(c.text("master.out")) == doc["requests"] + doc["invalid"]
    assert doc["workers"] == {"count": 2, "lost": []}
    assert "Embedded Lambda emulator started" in err
    assert f"Lambda affinity: 10 users, {doc['requests']} valid replies" in err
    assert "CHECK passed: --affinity-min-hit-rate 0.01" in err
    assert "sent no final report" not in err
    for name in ("a.json", "run_affinity.csv", "run_affinity_summary.csv", "report.html"):
        assert f"affinity: wrote out/{name}" in err
    assert '<section id="lambda-affinity"' in (tmp_path / "out" / "report.html").read_text()
    # the workers used the master's emulator and started none of their own
    for w in c.workers:
        assert "Embedded Lambda emulator" not in c.text(f"{w.name}.err")
    assert [p for p in c.seen.values() if p.pid not in {c.master.pid, *(w.pid for w in c.workers)}], \
        "the emulator runs below the master"


@pytest.mark.slow
def test_worker_killed_mid_run_is_reported_and_nothing_else_is_lost(cluster_factory, tmp_path):
    c = cluster_factory(MASTER + ["-t", "9s"])
    victim = c.workers[1]
    deadline = time.monotonic() + 30
    # Locust ends the spawn phase with one of two lines: the second when the workers' user counts came later
    # than its 1 s wait (seen on a loaded 2-core machine); either way every user is running.
    while not re.search(r"All users spawned|Spawning is complete", c.text("master.err")):
        assert time.monotonic() < deadline and c.master.poll() is None, c.text("master.err")[-3000:]
        time.sleep(0.1)
    time.sleep(3.5)  # at least one periodic report (every 3 s) from each worker
    c.collect()
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    started = time.monotonic()
    code = c.wait_master(60)
    err = c.text("master.err")
    assert code == 0, err[-4000:]
    # the master waited for nothing it could not get: the run ended on time
    assert time.monotonic() - started < 5.5 + 8, err[-3000:]
    records = own_records(tmp_path)
    assert len(records) == 1, "only the surviving worker dumped its record"
    (alive_index, alive), = records.items()
    lost_index = 1 - alive_index
    doc = json.loads((tmp_path / "out" / "a.json").read_text())
    rows = csv_rows((tmp_path / "out" / "run_affinity.csv").read_text())
    assert doc["workers"]["count"] == 2 and [w["index"] for w in doc["workers"]["lost"]] == [lost_index]
    lost_lines = [line for line in err.splitlines() if "sent no final report" in line]
    assert len(lost_lines) == 1 and f"worker {lost_index} (" in lost_lines[0], lost_lines
    # nothing of the surviving worker is lost, user by user
    assert_master_holds(doc, rows, {alive_index: alive})
    # what the killed worker sent before it died is kept
    kept = {u: r for u, r in rows.items() if u.startswith(f"w{lost_index}-")}
    assert len(kept) == 5 and all(r["requests"] > 0 for r in kept.values()), kept
    assert re.search(rf"kept what it sent until then: 5 users, {sum(r['requests'] for r in kept.values())} valid",
                     lost_lines[0]), lost_lines
    # Locust's counts and ours come from the same reports: they agree exactly
    assert probe_requests(c.text("master.out")) == doc["requests"] + doc["invalid"]
    assert doc["users"] == 10 and f"affinity: wrote out/a.json" in err
