"""Calibrate on a production day: a trace of 1 M requests with outcomes (5,000
users over 4 h by default), made by replaying generated arrivals through the
simulator with a known, non-default model, then `lambda-affinity calibrate` on
it timed at --jobs 1 and at --jobs all cores, and both fits compared.

Usage: python bench/calibrate.py [--requests N] [--users U] [--hours H] [--jobs N]
Last line: calibrate_seconds_1M: N   (the all-cores time, for 1 M requests; scaled
linearly from --requests when that is not 1 M, which the line then says)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from simulator import arrivals as generate_arrivals

from lambda_affinity.core.tracker import OutcomeRecorder
from lambda_affinity.platform import ModelConfig
from lambda_affinity.sim.calibrate_report import model_mapping
from lambda_affinity.sim.replay import replay
from lambda_affinity.sim.simulate import Scenario
from lambda_affinity.sim.trace import TraceRow, TraceWriter

# The known model: off the defaults in every searched key, on the search's grids.
TRUE_MODEL = ModelConfig(policy="partitioned", routers=3, busy_overhead_s=0.01, keep_alive_s=300.0, init_delay_s=0.2)
SERVICE_S = 0.006


def make_trace(path: str, requests: int, users: int, hours: float, seed: int) -> None:
    rows = list(generate_arrivals(requests, users, hours, seed))
    recorder = OutcomeRecorder()
    replay(rows, Scenario(latency="0", service=str(SERVICE_S), model=TRUE_MODEL), seed=seed, tracker=recorder)
    with TraceWriter(path) as w:
        for (send, user), outcome in zip(rows, recorder.outcomes, strict=True):
            if outcome is None:
                w.write_row(TraceRow(send, send, user, user, None, None, None, False))
                continue
            env, cold, hit = outcome
            recv = send + SERVICE_S + (TRUE_MODEL.init_delay_s if cold else 0.0)
            w.write_row(TraceRow(send, recv, user, user, env, cold, hit, True))


def calibrate(trace: str, jobs: int, seed: int) -> tuple[float, dict]:
    started = time.perf_counter()
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "lambda_affinity.cli",
            "calibrate",
            trace,
            "--json",
            "--jobs",
            str(jobs),
            "--service",
            str(SERVICE_S),
            "--random-seed",
            str(seed),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - started
    if p.returncode != 0:
        sys.exit(f"calibrate --jobs {jobs} failed: {p.stderr.strip()}")
    return took, json.loads(p.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=5_000)
    ap.add_argument("--hours", type=float, default=4.0)
    ap.add_argument("--random-seed", "--seed", dest="seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="the parallel run's --jobs (all cores)")
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="calibrate-bench-")
    path = os.path.join(folder, "trace.csv.gz")
    try:
        started = time.perf_counter()
        make_trace(path, args.requests, args.users, args.hours, args.seed)
        print(
            f"generated {args.requests} requests, {args.users} users, {args.hours:g} h, with outcomes of "
            f"{json.dumps(model_mapping(TRUE_MODEL))}"
            f" in {time.perf_counter() - started:.1f} s"
        )
        many_s, many = calibrate(path, args.jobs, args.seed)
        print(f"--jobs {args.jobs}: {many_s:.1f} s, fitted {json.dumps(many['model'])}")
        serial_s, serial = calibrate(path, 1, args.seed)
        print(f"--jobs 1: {serial_s:.1f} s, fitted {json.dumps(serial['model'])}")
        print(f"same fitted model: {serial['model'] == many['model']}")
        print(f"jobs_speedup: {serial_s / many_s:.2f}")
        scale = 1_000_000 / args.requests
        note = "" if args.requests == 1_000_000 else f"   (scaled from {args.requests} requests)"
        print(f"calibrate_seconds_1M: {many_s * scale:.0f}{note}")
    finally:
        if os.path.exists(path):
            os.remove(path)
        os.rmdir(folder)


if __name__ == "__main__":
    main()
