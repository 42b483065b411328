"""Calibration: measure (a real Locust run on the emulator, traced), fit
(`lambda-affinity calibrate`), predict (`simulate --trace --model`)."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request

import psutil
import pytest
import yaml
from commands import cli
from fixture_paths import CONFIGS, LOCUSTFILES as TEST_LOCUSTFILES
from locust_runs import LOCUSTFILES, assert_nothing_left, run_locust

from lambda_affinity.emulator.config import load_config
from lambda_affinity.emulator.process import EmulatorProcess
from lambda_affinity.platform import ModelConfig
from lambda_affinity.sim import calibrate, calibrate_report
from lambda_affinity.sim.simulate import Scenario
from lambda_affinity.sim.trace import TraceRow, TraceWriter

ENV = "2026/12/01/[$LATEST]"
SEED_CONFIG = os.path.join(LOCUSTFILES, "seed_emulator.yaml")


def write_trace(path, rows):
    with TraceWriter(str(path)) as w:
        for r in rows:
            w.write_row(r)
    return str(path)


def serial_rows(users=3, calls=5, gap=0.2):
    """Each user calls its own environment serially: cold first (0.15 s), then warm hits (0.05 s)."""
    return sorted(
        (
            TraceRow(
                i * gap + u * 0.01,
                i * gap + u * 0.01 + (0.15 if i == 0 else 0.05),
                f"u{u}",
                f"u{u}-s",
                f"{ENV}{u:032x}",
                i == 0,
                i > 0,
                True,
            )
            for u in range(users)
            for i in range(calls)
        ),
        key=lambda r: r.send,
    )


def test_calibrate_needs_environments(tmp_path):
    path = write_trace(tmp_path / "t.csv", [TraceRow(1.0, 1.1, "u1", "s", None, None, None, False)])
    p = cli("calibrate", path)
    assert p.returncode == 2 and "no valid row names an environment: calibration needs env_ids" in p.stderr


def test_calibrate_says_when_the_trace_is_too_small(tmp_path):
    """3 serial users for 0.8 s: every model predicts the same, and the result says so."""
    path = write_trace(tmp_path / "t.csv", serial_rows())
    p = cli("calibrate", path, "--json", "--out", str(tmp_path / "m.yaml"), "--replays", "3")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert (doc["reproduce"]["command"], doc["reproduce"]["seed"]) == ("calibrate", 1)
    assert doc["reproduce"]["options"]["replays"] == 3
    notes = " | ".join(doc["notes"])
    assert "the trace cannot tell apart placement: " in notes and "partitioned x2, partitioned x3" in notes
    assert "only 3 users" in notes and "only 15 valid replies" in notes
    assert "too short to tell the keep-alive: it stays 600 s" in notes
    # init delay from the durations: cold calls take 0.1 s more than warm ones
    assert doc["model"]["init_delay_s"] == 0.1
    # the default model is among those the trace cannot rule out
    default = {**calibrate_report.model_mapping(ModelConfig()), "init_delay_s": 0.1}
    assert next(c["distance"] for c in doc["candidates"] if c["model"] == default) <= calibrate.CONSISTENT
    text = (tmp_path / "m.yaml").read_text()
    assert "# note: only 3 users" in text
    assert yaml.safe_load(text) == {"model": doc["model"]}
    assert calibrate_report.model_mapping(load_config(str(tmp_path / "m.yaml")).model) == doc["model"]


def test_calibrate_table(tmp_path):
    path = write_trace(tmp_path / "t.csv", serial_rows())
    p = cli("calibrate", path, "--replays", "2")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("Measured: 3 users, 15 valid replies, 0 invalid")
    assert "keep-alive 600 s, init delay 0.1 s" in p.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (("--replays", "1"), "replays: must be >= 2"),
        (("--service", "slow"), "service: 'slow' is not a distribution"),
    ],
)
def test_calibrate_bad_options(tmp_path, args, message):
    path = write_trace(tmp_path / "t.csv", serial_rows())
    p = cli("calibrate", path, *args)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr


# -- measure, fit, predict, with real processes -----------------------------------------------

LOCUSTFILE = TEST_LOCUSTFILES / "calibrate_burst.py"

# Not the default model: one MRU pool with a 0.5 s keep-alive. The few
# environments MRU keeps busy stay warm; the others idle past 0.5 s and expire,
# so bursts start ~10 environments beyond the 30 first ones, which no model
# with a long keep-alive predicts (it starts exactly 30): cold starts and
# environments (sd about 3) rule out the default and any long keep-alive by
# several z. An LRU pool with 1.5 s (its cycle time here, so hardly ever
# expiring) or MRU with 1.5 s left the keep-alive to max-share's noise alone.
EMULATOR = CONFIGS / "calibrate_mru_short_keep_alive.yaml"
PREDICTION_RUNS = 30
SIGMAS = 3.0


@pytest.mark.slow
def test_a_real_run_calibrated_then_predicted(tmp_path):
    """30 users on the emulator with a non-default model, traced by the
    plugin; `calibrate` fits a model; `simulate --trace --model` with it
    predicts the run's mean max-share, warm-cache rate and cold starts.

    Tolerance: 3 run-to-run standard deviations of the fitted model's own
    replays of these arrivals (calibrate --json reports them; about 0.03 for
    the rates and 2 cold starts here), since the measured run is one draw of
    the process the model describes. The default model (2 routers, 10 min
    keep-alive) must not fit: the trace has to tell the settings apart.
    """
    shutil.copyfile(LOCUSTFILE, (tmp_path / "lf.py"))
    shutil.copyfile(EMULATOR, (tmp_path / "emu.yaml"))
    run = run_locust(
        [
            "-f",
            "lf.py",
            "--headless",
            "--affinity-emulator-config",
            "emu.yaml",
            "--affinity-trace",
            "trace.csv.gz",
            "--affinity-json",
            "measured.json",
        ],
        cwd=tmp_path,
        timeout=60,
    )
    assert run.code == 0, run
    assert_nothing_left(run)
    measured = json.loads((tmp_path / "measured.json").read_text())
    assert measured["invalid"] == 0 and measured["users"] == 30
    # the premise: environments idled past the keep-alive and were started again
    assert measured["cold_starts"] > 30, measured["cold_starts"]

    p = cli("calibrate", "trace.csv.gz", "--latency", "0.06:0.1", "--out", "fit.yaml", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    fit = json.loads(p.stdout)
    closest = fit["candidates"][0]
    # the fitted model: the closest candidate, with the default where the trace cannot tell a
    # parameter's values apart; the keep-alive it tells
    keep_alive = fit["parameters"]["keep_alive_s"]
    assert keep_alive["told"] and keep_alive["fitted"] == closest["model"]["keep_alive_s"], fit["parameters"]
    for name, verdict in fit["parameters"].items():
        assert verdict["fitted"] == (verdict["closest"] if verdict["told"] else verdict["prior"]), name
    best = next(c for c in fit["candidates"] if c["model"] == fit["model"])
    assert best["distance"] <= calibrate.CONSISTENT, fit["notes"]
    default = next(
        c
        for c in fit["candidates"]
        if c["model"]["policy"] == "partitioned"
        and c["model"]["routers"] == 2
        and c["model"]["busy_overhead_s"] == 0
        and c["model"]["keep_alive_s"] == 600
    )
    assert default["distance"] > calibrate.CONSISTENT, (default, fit["model"])
    assert fit["model"]["keep_alive_s"] <= 5, fit["model"]

    p = cli(
        "simulate",
        "--trace",
        "trace.csv.gz",
        "--model",
        "fit.yaml",
        "--latency",
        "0.06:0.1",
        "--runs",
        str(PREDICTION_RUNS),
        "--seed",
        "5",
        "--json",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    predicted = json.loads(p.stdout)
    sd = best["sd"]
    checks = {
        "mean_max_share": (measured["hit_rate"]["mean"], predicted["hit_rate"]["mean"]),
        "warm_cache_rate": (measured["warm_cache_rate"]["mean"], predicted["warm_cache_rate"]["mean"]),
        "cold_starts": (measured["cold_starts"], predicted["cold_starts"] / PREDICTION_RUNS),
    }
    for name, (got, want) in checks.items():
        tolerance = SIGMAS * max(sd[name], calibrate.SD_FLOOR[name])
        assert abs(got - want) <= tolerance, (name, got, want, tolerance, fit["model"])

    # the fitted file is an emulator config as it stands (what --affinity-emulator-config starts)
    emu = EmulatorProcess(config_path=str(tmp_path / "fit.yaml"))
    emu.start()
    tree = [psutil.Process(emu.proc.pid)] + psutil.Process(emu.proc.pid).children(recursive=True)
    try:
        with urllib.request.urlopen(emu.function_urls["probe"], timeout=30) as r:
            assert r.status == 200 and json.loads(r.read())["cold"] is True
    finally:
        emu.stop()
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert not alive


@pytest.mark.slow
def test_replaying_a_seed_experiment_trace_reproduces_its_figures(tmp_path):
    """The seed experiment run by Locust on the emulator (its default model),
    traced; its arrivals replayed through the same model and conditions give
    the run's mean max-share, warm-cache rate and cold starts within 3
    standard deviations of the replays' run-to-run spread (sampling error)."""
    run = run_locust(
        ["-f", os.path.join(LOCUSTFILES, "seed_experiment.py"), "--headless", "--affinity-trace", "seed.csv"],
        cwd=tmp_path,
        timeout=60,
    )
    assert run.code == 0, run
    assert_nothing_left(run)
    cfg = load_config(SEED_CONFIG)
    measurement = calibrate.measure([str(tmp_path / "seed.csv")])
    assert measurement.users == 10
    scenario = Scenario(latency=cfg.network_latency, service=cfg.service_time, model=cfg.model)
    _distance, means, _sds, zs = calibrate.score(measurement.figures, calibrate.predict(measurement, scenario, 40, 3))
    for name in ("mean_max_share", "warm_cache_rate", "cold_starts"):
        assert abs(zs[name]) <= SIGMAS, (name, zs, means, measurement.figures)
