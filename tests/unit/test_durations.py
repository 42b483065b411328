"""One grammar for durations and distributions (platform.distributions), read the same by every
option and key that takes one: `10m`, `1h30m`, `5m:15m`, `exp:10m`; plain numbers are seconds."""

from __future__ import annotations

import random

import pytest

from lambda_affinity.cli import build_parser
from lambda_affinity.platform import ConfigError, ModelConfig
from lambda_affinity.platform.distributions import (
    DistributionError,
    DurationError,
    parse_distribution,
    parse_duration,
)
from lambda_affinity.platform.model_file import from_text
from lambda_affinity.sim.sweep import Factor, parse_vary


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90", 90.0),
        ("0.25", 0.25),
        ("1e3", 1000.0),
        (42, 42.0),
        (0.5, 0.5),
        ("90s", 90.0),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("1h30m15s", 5415.0),
        ("250ms", 0.25),
        ("5s5ms", 5.005),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("1d", 86400.0),
        (" 10m ", 600.0),
    ],
)
def test_durations_read_as_locust_reads_its_run_time(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text, message",
    [
        ("10x", "--keep-alive: '10x' is not a duration: cannot read '10x'; use seconds (90, 0.25) or a number"),
        ("1m30", "--keep-alive: '1m30' is not a duration: cannot read '30' (each number needs its unit: 1m30s)"),
        ("30m1h", "'30m1h' is not a duration: units go largest first, each once ('h' after a larger or equal one)"),
        ("1h1h", "units go largest first, each once"),
        ("-1", "'-1' is not a duration: must be a finite number of seconds >= 0"),
        ("-5m", "'-5m' is not a duration: cannot read '-5m'"),
        ("nan", "'nan' is not a duration: must be a finite number of seconds >= 0"),
        ("inf", "'inf' is not a duration: must be a finite number"),
        ("1e400", "'1e400' is not a duration: must be a finite number"),
        ("", "'' is not a duration: empty"),
        ("10 m", "'10 m' is not a duration: cannot read '10 m'"),
        ("1" * 101, "is not a duration: longer than 100 characters"),
        (True, "True is not a duration: a boolean"),
        (10**400, "is not a duration: too large"),
        ([5], "[5] is not a duration: a list, not text or a number"),
    ],
)
def test_a_bad_duration_is_one_precise_line(text, message):
    with pytest.raises(DurationError) as info:
        parse_duration(text, "--keep-alive")
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text, fixed, lowest, mean",
    [
        ("5m:15m", None, 300.0, 600.0),
        ("0:1", None, 0.0, 0.5),
        ("0.06:0.1", None, 0.06, 0.08),
        ("exp:10m", None, 0.0, 600.0),
        ("exp:30", None, 0.0, 30.0),
        ("fixed:90s", 90.0, 90.0, 90.0),
        ("1m", 60.0, 60.0, 60.0),
        ("2", 2.0, 2.0, 2.0),
        (0.5, 0.5, 0.5, 0.5),
    ],
)
def test_distributions_take_durations_with_units(text, fixed, lowest, mean):
    d = parse_distribution(text, "think")
    assert d.fixed == fixed and d.lowest == pytest.approx(lowest) and d.mean == pytest.approx(mean)
    rng = random.Random(1)
    assert all(lowest <= d(rng) for _ in range(100))


def test_a_uniform_distribution_in_minutes_draws_in_seconds():
    d = parse_distribution("5m:15m")
    rng = random.Random(3)
    draws = [d(rng) for _ in range(1000)]
    assert min(draws) >= 300 and max(draws) <= 900 and 550 < sum(draws) / len(draws) < 650


@pytest.mark.parametrize(
    "text, message",
    [
        ("2:1", "think: '2:1' is not a distribution: A:B needs A <= B, got 2 s > 1 s"),
        ("15m:5m", "A:B needs A <= B, got 900 s > 300 s"),
        ("exp:0", "'exp:0' is not a distribution: exp:MEAN needs a mean > 0"),
        ("exp:soon", "'exp:soon' is not a distribution: cannot read 'soon'"),
        ("1:2:3", "'1:2:3' is not a distribution: A:B takes two durations"),
        ("5m:x", "cannot read 'x'"),
        ("soon", "think: 'soon' is not a distribution: cannot read 'soon'; use a duration (90, 10m), A:B uniform"),
    ],
)
def test_a_bad_distribution_is_one_precise_line(text, message):
    with pytest.raises(DistributionError) as info:
        parse_distribution(text, "think")
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "argv, dest, seconds",
    [
        (["simulate", "--keep-alive", "10m"], "keep_alive", 600.0),
        (["simulate", "--duration", "1h30m"], "duration", 5400.0),
        (["simulate", "--duration", "90"], "duration", 90.0),
        (["simulate", "--max-lifetime", "2h"], "max_lifetime", 7200.0),
        (["simulate", "--init-delay", "250ms"], "init_delay", 0.25),
        (["simulate", "--max-disorder", "1m"], "max_disorder", 60.0),
        (["sweep", "--vary", "users=1,2", "--out", "x", "--scale-window", "10s"], "scale_window", 10.0),
        (["calibrate", "t.csv", "--max-disorder", "90s"], "max_disorder", 90.0),
        (["deploy", "--wait", "5m"], "wait", 300.0),
    ],
)
def test_every_duration_option_takes_units(argv, dest, seconds):
    assert getattr(build_parser().parse_args(argv), dest) == seconds


def test_a_bad_duration_option_names_the_option(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["simulate", "--keep-alive", "10x"])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "lambda-affinity simulate: error: argument --keep-alive: '10x' is not a duration: cannot read '10x'; "
        "use seconds (90, 0.25) or a number with units d, h, m, s, ms (10m, 1h30m, 250ms)"
    )


def test_model_files_take_seconds_or_the_same_duration_text():
    model = from_text('model:\n  keep_alive_s: "10m"\n  max_lifetime_s: 2h\n  init_delay_s: 0.25\n').model
    assert (model.keep_alive_s, model.max_lifetime_s, model.init_delay_s) == (600.0, 7200.0, 0.25)
    assert ModelConfig.from_mapping({"scale_window_s": "10s"}).scale_window_s == 10.0
    with pytest.raises(ConfigError, match=r"^model\.keep_alive_s: '10 minutes' is not a duration: cannot read"):
        ModelConfig.from_mapping({"keep_alive_s": "10 minutes"})
    timings = from_text('network_latency: "60ms:100ms"\nservice_time: exp:5ms\n')
    assert parse_distribution(timings.network_latency).mean == pytest.approx(0.08)
    assert parse_distribution(timings.service_time).mean == pytest.approx(0.005)


def test_a_sweep_varies_durations_with_units():
    factor = Factor("keep-alive", "duration", field="model.keep_alive_s")
    assert parse_vary("keep-alive=1m,10m,1h", {"keep-alive": factor}).values == (60.0, 600.0, 3600.0)
    assert parse_vary("keep-alive=1m..5m:step:1m", {"keep-alive": factor}).values == (60.0, 120.0, 180.0, 240.0, 300.0)
    think = Factor("think", "distribution", field="think")
    assert parse_vary("think=5m:15m,exp:10m", {"think": think}).values == ("5m:15m", "exp:10m")
