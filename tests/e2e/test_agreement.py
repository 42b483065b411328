"""The two drivers of the one platform model held against each other: the
emulator (real processes, wall clock) run by real headless Locust, and the
simulator (virtual time), on the seed's scenario with the same modelled
network round trip and time on the environment.

Also: the emulator's modelled network and service time themselves, on both
front ends, without blocking its loop.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import urllib.request

import psutil
import pytest
from locust_runs import LOCUSTFILES, assert_nothing_left, run_locust

from lambda_affinity.core.summary import summarize
from lambda_affinity.emulator.config import load_config
from lambda_affinity.emulator.process import EmulatorProcess
from lambda_affinity.sim.simulate import Scenario, run_many

pytestmark = pytest.mark.slow

SEED_LOCUSTFILE = os.path.join(LOCUSTFILES, "seed_experiment.py")
SEED_EMULATOR_CONFIG = os.path.join(LOCUSTFILES, "seed_emulator.yaml")
SIM_RUNS = 1000
EMULATOR_RUNS = 3  # concurrent Locust runs: ~13 s of wall clock, light on CPU
SIGMAS = 3.0


def simulated_run_means(runs: int = SIM_RUNS, seed: int = 20240601) -> tuple[list, list]:
    """Per 10-user run: (mean max-share, mean warm-cache rate), the simulator
    on the seed's scenario with the seed emulator config's latency, service
    time and model: the same conditions, read from the same file."""
    cfg = load_config(SEED_EMULATOR_CONFIG)
    scenario = Scenario(
        users=10,
        think="0:1",
        duration_s=10,
        start="together",
        latency=cfg.network_latency,
        service=cfg.service_time,
        model=cfg.model,
    )
    hits, warms = [], []
    for r in range(runs):
        tracker, _ = run_many(scenario, runs=1, seed=seed + r)
        doc = summarize(tracker.rows(), tracker.environments)
        hits.append(doc["hit_rate"]["mean"])
        warms.append(doc["warm_cache_rate"]["mean"])
    return hits, warms


def band(values: list, n: int) -> tuple[float, float]:
    """mean +- SIGMAS standard deviations of the mean of `n` runs."""
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = SIGMAS * sd / n**0.5
    return mean - half, mean + half


def test_emulator_agrees_with_the_simulator_on_the_seed_experiment(tmp_path):
    """The project's main job (`locust -f locustfiles/seed_experiment.py
    --headless`, which starts the embedded emulator with seed_emulator.yaml:
    round trip 60-100 ms, 3-9 ms on the environment) against the simulator
    with the same latency, service time and model.

    The simulator over 1000 independent 10-user runs (seed 20240601): mean
    max-share 0.426 (one run's mean has sd 0.055), warm-cache rate 0.742
    (sd 0.023). Three Locust runs go at once and their means are averaged,
    so the tolerance is 3 sd / sqrt(3): max-share 0.33-0.52, warm-cache
    0.70-0.78. One run's 3-sd band (max-share 0.26-0.59, warm 0.67-0.81)
    could not tell the calibrated conditions from none: with loopback timing
    only, the emulator gives max-share ~0.53 and warm ~0.83, outside both
    three-run bands. Measured here: about 0.43 and 0.74.
    """
    hits, warms = simulated_run_means()
    hit_band, warm_band = band(hits, EMULATOR_RUNS), band(warms, EMULATOR_RUNS)

    runs, docs = {}, {}

    def one(i: int) -> None:
        cwd = tmp_path / f"run{i}"
        cwd.mkdir()
        runs[i] = run_locust(
            ["-f", SEED_LOCUSTFILE, "--headless", "--affinity-json", "affinity.json"], cwd=cwd, timeout=60
        )
        if runs[i].code == 0:
            docs[i] = json.loads((cwd / "affinity.json").read_text())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(EMULATOR_RUNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(EMULATOR_RUNS):
        assert runs[i].code == 0, runs[i]
        assert_nothing_left(runs[i])
        assert docs[i]["users"] == 10 and docs[i]["invalid"] == 0, docs[i]
    hit = statistics.fmean(d["hit_rate"]["mean"] for d in docs.values())
    warm = statistics.fmean(d["warm_cache_rate"]["mean"] for d in docs.values())
    per_run = [(round(d["hit_rate"]["mean"], 3), round(d["warm_cache_rate"]["mean"], 3)) for d in docs.values()]
    assert hit_band[0] <= hit <= hit_band[1], (hit, hit_band, per_run)
    assert warm_band[0] <= warm <= warm_band[1], (warm, warm_band, per_run)


# -- the modelled network and service time on their own ------------------------------

ROUND_TRIP_S = 0.2
SERVICE_S = 0.1


def timed(url: str, data: bytes | None = None) -> tuple[float, int, bytes]:
    started = time.monotonic()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as r:
        body = r.read()
        return time.monotonic() - started, r.status, body


def test_round_trip_and_service_time_on_both_front_ends_without_blocking(tmp_path):
    """Fixed 0.2 s round trip and 0.1 s on the environment: a warm call through
    the Function URL or the Invoke API takes 0.3 s and a bit; introspection
    is not Lambda traffic and pays neither; five calls at once still take
    about one call's time (the waits are gevent sleeps, not blocking)."""
    path = tmp_path / "emu.yaml"
    path.write_text(
        f"network_latency: fixed:{ROUND_TRIP_S}\nservice_time: {SERVICE_S}\n"
        "model: {policy: mru, init_delay_s: 0}\nfunctions: [{name: probe}]\n"
    )
    emu = EmulatorProcess(config_path=str(path))
    emu.start()
    tree: list = []
    try:
        tree = psutil.Process(emu.proc.pid).children(recursive=True) + [psutil.Process(emu.proc.pid)]
        url, invoke = emu.function_urls["probe"], emu.endpoint + "/2015-03-31/functions/probe/invocations"
        floor = ROUND_TRIP_S + SERVICE_S
        timed(url)  # the cold start, out of the way
        for target, data in ((url, None), (invoke, b"{}"), (url, None), (invoke, b"{}")):
            took, status, body = timed(target, data)
            assert status == 200 and json.loads(body)["cold"] is False
            assert floor <= took < floor + 0.1, (target, took)
        took, status, _ = timed(emu.introspection_url)
        assert status == 200 and took < 0.1, took

        times: list = []
        threads = [threading.Thread(target=lambda: times.append(timed(url)[0])) for _ in range(5)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # each waits 0.3 s (cold ones on a fresh process too), all at once
        assert len(times) == 5 and time.monotonic() - started < 2 * floor, times
    finally:
        emu.stop()
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert not alive, [(p.pid, p.cmdline()) for p in alive]
