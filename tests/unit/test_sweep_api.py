"""A sweep from Python, no argparse: typed inputs in (Scenario, Factor, MissCostPrice), points out; and the
model file format the simulator, calibrate and the emulator share."""

import pytest

from lambda_affinity.core.summary import MissCostError, MissCostPrice
from lambda_affinity.platform import ConfigError, ModelConfig, model_file
from lambda_affinity.sim.simulate import Scenario
from lambda_affinity.sim.sweep import Factor, SpecError, Sweep, SweepError, parse_vary
from lambda_affinity.sim.sweep_files import sweep_files

KEEP_ALIVE = Factor("keep-alive", "float", field="model.keep_alive_s")


def test_a_small_sweep_runs_from_python():
    vary = parse_vary("keep-alive=0,600", {"keep-alive": KEEP_ALIVE})
    base = Scenario(users=3, duration_s=20, think="1:2", model=ModelConfig(policy="mru"))
    plan = Sweep.over(vary, base, runs=2, base_seed=7, price=MissCostPrice(per_miss_ms=4.0))
    assert [s.model.keep_alive_s for s in plan.scenarios] == [0.0, 600.0]
    assert plan.scenarios[1].model.policy == "mru" and plan.cost()["points"] == 2
    heard = []
    points = plan.run(progress=heard.append)
    assert len(heard) == 4 and [p["label"] for p in points] == ["0", "600"]
    cold, warm = (p["stats"]["cold_per_request"]["mean"] for p in points)
    assert cold == 1.0 and warm < 1.0  # keep-alive 0: every call is cold
    assert points[0]["stats"]["saved_ms_per_million"]["mean"] == 0.0
    assert points == Sweep.over(vary, base, runs=2, base_seed=7, price=MissCostPrice(per_miss_ms=4.0)).run()
    files = sweep_files(vary, points, description="d", runs=2, base_seed=7, spread="sd", scenario={}, cost=plan.cost())
    assert sorted(files) == ["sweep.csv", "sweep.html", "sweep.json", "sweep.svg"]


def test_model_configs_as_the_factor_values():
    vary = parse_vary("model=a,b", {"model": Factor("model", "text", field="model")})
    plan = Sweep.over(
        vary, Scenario(users=1), runs=1, at=lambda name: Scenario(users=1, model=ModelConfig(policy="lru"))
    )
    assert {s.model.policy for s in plan.scenarios} == {"lru"}


def test_bad_points_and_runs_are_refused_before_running():
    vary = parse_vary("keep-alive=-1,5", {"keep-alive": KEEP_ALIVE})
    with pytest.raises(SweepError, match=r"--vary keep-alive=-1: keep_alive_s: must be >= 0"):
        Sweep.over(vary, Scenario())
    with pytest.raises(SweepError, match="runs: must be >= 1"):
        Sweep.over(parse_vary("keep-alive=1", {"keep-alive": KEEP_ALIVE}), Scenario(), runs=0)
    users = parse_vary("users=0,1", {"users": Factor("users", "int", field="users")})
    with pytest.raises(SweepError, match="--vary users=0: users: must be >= 1"):
        Sweep.over(users, Scenario())
    with pytest.raises(SpecError):
        parse_vary("keep-alive=1..5:geo:2", {"keep-alive": KEEP_ALIVE})


@pytest.mark.parametrize("ms, usd, message", [(-1, None, "miss-cost-ms"), (None, float("inf"), "miss-cost-usd")])
def test_a_miss_cost_checks_itself(ms, usd, message):
    with pytest.raises(MissCostError, match=f"{message}: must be a finite number >= 0"):
        MissCostPrice(ms, usd)
    assert not MissCostPrice().given and MissCostPrice(per_miss_usd=0).given


def test_the_model_file_round_trips():
    text = model_file.to_text({"policy": "lru", "keep_alive_s": 30.0}, ["a comment"])
    assert text.startswith("# a comment\nmodel:\n")
    parsed = model_file.from_text(text + "service_time: '0.01'\nfunctions: [{name: x}]\n")
    assert parsed.model == ModelConfig(policy="lru", keep_alive_s=30.0) and parsed.service_time == "0.01"
    assert parsed.network_latency is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("model: {routers: x}", "model.routers: expected a whole number"),
        ("modle: {}", "modle: unknown key (known: functions, model, region"),
        ("model: [1]", "model: expected a mapping, got a list"),
        ("network_latency: soon", "network_latency: 'soon' is not a distribution"),
        ("model: {a: [", "line 1, column 13: not valid YAML"),
        ("- 1", "(top level): expected a mapping"),
    ],
)
def test_bad_model_files_name_the_key(text, message):
    with pytest.raises(ConfigError) as exc:
        model_file.from_text(text)
    assert message in str(exc.value)


def test_an_emulator_config_as_model_file_is_checked_as_the_emulator_would(tmp_path):
    from lambda_affinity.cli.options import read_model_file

    bad = tmp_path / "emulator.yaml"
    bad.write_text("functions: 5\nmodel:\n  keep_alive_s: 100\n")
    with pytest.raises(ConfigError, match=r"--model .*emulator.yaml: functions: expected a non-empty list"):
        read_model_file(str(bad))
    plain = tmp_path / "model.yaml"
    plain.write_text('model:\n  keep_alive_s: 100\nservice_time: "0.003:0.009"\n')
    read = read_model_file(str(plain))
    assert read.model.keep_alive_s == 100 and read.service_time == "0.003:0.009"
