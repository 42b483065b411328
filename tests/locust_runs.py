"""Running Locust as real processes for the end-to-end tests: one run to its end, or a master and its workers."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import fixture_paths
import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


LOCUSTFILES = os.path.join(ROOT, "locustfiles")


FIXTURES = str(fixture_paths.FIXTURES)
TEST_LOCUSTFILES = str(fixture_paths.LOCUSTFILES)
DISTRIBUTED_LOCUSTFILE = os.path.join(TEST_LOCUSTFILES, "distributed.py")


LOCUST = [sys.executable, "-m", "locust"]


class Run:
    def __init__(self, proc, stdout, stderr, descendants):
        self.code = proc.returncode
        self.pid = proc.pid
        self.stdout, self.stderr = stdout, stderr
        self.descendants = descendants

    def __repr__(self):
        return f"exit {self.code}\n--- stderr ---\n{self.stderr[-5000:]}"


def run_locust(args, cwd, env=None, timeout=90, preexec_fn=None, command=LOCUST) -> Run:
    """Run Locust (or `command`, e.g. `lambda-affinity locust`) to the end, collecting its process tree as it goes
    (`preexec_fn`: set limits in the child)."""
    full_env = {**os.environ, **(env or {})}
    # no user config may leak into a test run
    full_env = {k: v for k, v in full_env.items() if not k.startswith("LOCUST_") or k in (env or {})}
    out_path, err_path = os.path.join(cwd, "locust.out"), os.path.join(cwd, "locust.err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen([*command, *args], cwd=cwd, env=full_env, stdout=out, stderr=err, preexec_fn=preexec_fn)
        seen = {}
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None:
                try:
                    for child in psutil.Process(proc.pid).children(recursive=True):
                        seen.setdefault(child.pid, child)
                except psutil.NoSuchProcess:
                    pass
                if time.monotonic() > deadline:
                    proc.kill()
                    raise AssertionError(f"locust did not finish within {timeout} s")
                time.sleep(0.1)
        finally:
            proc.wait()
    with open(out_path) as out, open(err_path) as err:
        return Run(proc, out.read(), err.read(), list(seen.values()))


def assert_nothing_left(run: Run) -> None:
    # give a process that is exiting a moment, then nothing the run started may remain
    _, alive = psutil.wait_procs(run.descendants, timeout=5)
    assert not alive, f"left behind: {[(p.pid, p.cmdline()) for p in alive]}"


def error_report(stderr: str) -> dict:
    """Locust's final error report: {(method, name, error): occurrences}."""
    found = {}
    for line in stderr.splitlines():
        m = re.match(r"^(\d+)\s+(GET|invoke) (.+?): (ProbeReplyError: .+?)\s*$", line)
        if m:
            found[(m.group(2), m.group(3), m.group(4))] = int(m.group(1))
    return found


def stats_json(stdout: str) -> list:
    return json.loads(stdout[stdout.index("[") :])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A master and its workers as real processes, bounded in time (with no
    workers, one standalone Locust process)."""

    def __init__(self, tmp_path, master_args, workers=2, locustfile=DISTRIBUTED_LOCUSTFILE, env=None):
        self.dir = tmp_path
        shutil.copyfile(locustfile, tmp_path / "locustfile.py")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
        self.env.update({"AFFINITY_DUMP_DIR": str(tmp_path), **(env or {})})
        self.port = free_port()
        self.seen: dict[int, psutil.Process] = {}
        distributed = ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(self.port)]
        self.master = self._spawn("master", [*(distributed if workers else []), *master_args])
        self.workers = [
            self._spawn(f"worker{i}", ["--worker", "--master-host", "127.0.0.1", "--master-port", str(self.port)])
            for i in range(workers)
        ]

    def _spawn(self, name, args):
        # the child has its own copies of the descriptors: ours can close once it is started
        with open(self.dir / f"{name}.out", "w") as out, open(self.dir / f"{name}.err", "w") as err:
            proc = subprocess.Popen(
                LOCUST + ["-f", "locustfile.py", *args], cwd=self.dir, env=self.env, stdout=out, stderr=err
            )
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


def probe_requests(stdout: str) -> int:
    """Locust's own count for the probe rows (valid and invalid replies)."""
    stats = json.loads(stdout[stdout.index("[") :])
    return sum(s["num_requests"] for s in stats if s["name"].startswith("probe"))
