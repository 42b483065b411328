"""What one idle execution environment costs this machine, per runtime client:
the figures behind the emulator's default cap on environments
(lambda_affinity/emulator/machine.py, docs/emulator.md "Machine cap").

    python bench/environment_cost.py [--environments 20]

For each runtime (built-in Python client, awslambdaric, Node.js) it starts the
emulator in a child process with the bundled probe, makes N environments at
once (N concurrent cold invokes), lets them go idle, and measures with psutil:
each environment process's PSS, USS and RSS (memory_full_info), its threads
(the pid limit counts threads), and what the emulator holds per environment
(its file descriptors and its own PSS, before and after). All traffic goes to
127.0.0.1. The last lines compare the measured PSS with machine.py's figures
and print the cap this machine gets.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import threading

import psutil
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugin"))

from lambda_affinity.emulator import machine
from lambda_affinity.emulator.process import EmulatorProcess

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
RUNTIMES = {
    "builtin": {"name": "probe"},
    "awslambdaric": {"name": "probe", "runtime_client": "awslambdaric"},
    "node": {
        "name": "probe",
        "runtime": "nodejs20.x",
        "handler": "probe.handler",
        "code": os.path.join(ROOT, "probe_lambda", "node"),
    },
}


def invoke(url: str) -> None:
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as r:
        r.read()


def measure(kind: str, spec: dict, n: int, tmp: str) -> dict:
    path = os.path.join(tmp, f"{kind}.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(
            {"model": {"init_delay_s": 1.0, "policy": "mru", "max_environments": n + 10}, "functions": [spec]}, fh
        )
    with EmulatorProcess(config_path=path) as emu:
        me = psutil.Process(emu.proc.pid)
        invoke(emu.function_urls["probe"])  # one environment, so the emulator's lazy imports are done
        fds0, pss0 = me.num_fds(), me.memory_full_info().pss
        threads = [threading.Thread(target=invoke, args=(emu.function_urls["probe"],)) for _ in range(n - 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        [zygote] = me.children()
        envs = zygote.children()
        made = len(envs) - 1  # besides the first (a late call may have found one idle)
        infos = [p.memory_full_info() for p in envs]
        return {
            "pss_mb": statistics.median(i.pss for i in infos) / 2**20,
            "uss_mb": statistics.median(i.uss for i in infos) / 2**20,
            "rss_mb": statistics.median(i.rss for i in infos) / 2**20,
            "threads": max(p.num_threads() for p in envs),
            "emulator_fds_per_env": (me.num_fds() - fds0) / made,
            "emulator_pss_mb_per_env": (me.memory_full_info().pss - pss0) / 2**20 / made,
            "environments": len(envs),
            "zygote_pss_mb": zygote.memory_full_info().pss / 2**20,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--environments", type=int, default=20)
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, spec in RUNTIMES.items():
            rows[kind] = measure(kind, spec, args.environments, tmp)
    cols = list(next(iter(rows.values())))
    print(f"{'runtime':14}" + "".join(f"{c:>24}" for c in cols))
    for kind, row in rows.items():
        print(f"{kind:14}" + "".join(f"{row[c]:>24.2f}" for c in cols))
    limits = machine.read_limits()
    print("machine:", json.dumps(dataclasses.asdict(limits)))
    for kind, row in rows.items():
        cost = machine.COSTS[kind]
        measured_cost = machine.EnvironmentCost(
            row["pss_mb"] + row["emulator_pss_mb_per_env"], row["threads"], round(row["emulator_fds_per_env"] + 0.49)
        )
        used, measured = machine.derive_cap(limits, cost), machine.derive_cap(limits, measured_cost)
        print(
            f"{kind}: pss_used_by_the_cap_mb: {cost.memory_mb:.1f} measured: {measured_cost.memory_mb:.1f} | "
            f"cap: {used.cap} decided by {used.decided_by} (with the measured cost: {measured.cap})"
        )


if __name__ == "__main__":
    main()
