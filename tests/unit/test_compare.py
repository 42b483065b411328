"""`lambda-affinity compare`: strategies side by side, as a sweep over them (sim.compare)."""

from __future__ import annotations

import json

import pytest

from lambda_affinity import cli
from lambda_affinity.sim import compare
from lambda_affinity.sim.compare import STRATEGIES, Strategy, compare_plan, pick, with_function
from lambda_affinity.sim.simulate import Scenario
from lambda_affinity.sim.sweep import SweepError


def test_each_strategy_is_one_change_to_the_scenario():
    plan = compare_plan(Scenario(users=1000), runs=2)
    assert plan.vary.values == (
        "on-demand",
        "provisioned",
        "managed-instances",
        "managed-instances-node",
        "reserved",
        "shards",
    )
    on_demand, provisioned, managed, node, reserved, shards = plan.scenarios
    assert on_demand == Scenario(users=1000)
    assert provisioned.function.provisioned_concurrency == 250  # N = users/4
    assert managed.function.per_environment_max_concurrency == 16 and managed.function.provisioned_concurrency == 0
    assert node.function.per_environment_max_concurrency == 16 and node.function.runtime == "nodejs22.x"
    assert reserved.function.reserved_concurrency == 250 and reserved.shards == 1  # N = users/4
    assert shards.shards == 4 and shards.function.reserved_concurrency is None
    assert compare_plan(Scenario(users=2)).scenarios[4].function.reserved_concurrency == 1  # at least 1


def test_a_new_strategy_is_one_entry(monkeypatch):
    # a strategy is a name and the change it makes
    pinned = Strategy("one-env", lambda s: with_function(s, reserved_concurrency=1), "one environment")
    monkeypatch.setattr(compare, "STRATEGIES", (*STRATEGIES, pinned))
    points = compare_plan(Scenario(duration_s=5), pick(["on-demand", "one-env"]), runs=1).run()
    assert [p["label"] for p in points] == ["on-demand", "one-env"]
    assert [p["runs"][0]["environments"] for p in points] == [10, 1]


def test_strategies_share_their_seeds_and_the_on_demand_one_is_simulate_itself():
    points = compare_plan(Scenario(duration_s=5), runs=2, base_seed=7).run()
    assert len({tuple(r["seed"] for r in p["runs"]) for p in points}) == 1
    plain = compare_plan(Scenario(duration_s=5), pick(["on-demand"]), runs=2, base_seed=7).run()
    assert plain[0]["runs"] == points[0]["runs"]


@pytest.mark.parametrize(
    "names, message",
    [
        (
            ["spot"],
            "'spot' is not one of on-demand, provisioned, managed-instances, managed-instances-node, reserved, shards",
        ),
        (["shards", "shards"], "listed twice"),
        ([], ""),
    ],
)
def test_unknown_or_repeated_strategies_are_refused(names, message):
    with pytest.raises(SweepError, match=message or "name one at least"):
        pick(names)


def test_the_command_writes_the_four_files_with_the_savings(tmp_path, capsys):
    argv = ["compare", "--duration", "5", "--runs", "2", "--miss-cost-ms", "20", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare.csv", "compare.html", "compare.json", "compare.svg"]
    doc = json.loads((tmp_path / "compare.json").read_text())
    assert doc["factor"] == "strategy" and doc["labels"] == [s.name for s in STRATEGIES]
    assert doc["reproduce"]["command"] == "compare"
    assert all(p["stats"]["saved_ms_per_million"]["mean"] > 0 for p in doc["points"])
    assert "lambda-affinity compare: strategy" in (tmp_path / "compare.svg").read_text()
    out = capsys.readouterr().out
    assert "seconds saved per million requests" in out and "reserved" in out
    assert (
        cli.main(["compare", "--duration", "5", "--runs", "1", "--strategies", "shards", "--out", str(tmp_path)]) == 0
    )
    assert json.loads((tmp_path / "compare.json").read_text())["labels"] == ["shards"]


def test_the_command_refuses_a_bad_strategy_before_running(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["compare", "--strategies", "on-demand,spot", "--out", str(tmp_path)])
    assert "--strategies: 'spot' is not one of" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_the_table_shows_throttled_calls_only_when_a_run_had_some():
    from lambda_affinity.sim.sweep_files import render_points

    points = compare_plan(Scenario(duration_s=5), runs=1).run()
    table = render_points(compare_plan(Scenario()).vary, points)
    assert "throttled calls" in table
    row = next(line for line in table.splitlines() if line.strip().startswith("reserved"))
    reserved = points[[s.name for s in STRATEGIES].index("reserved")]
    assert int(reserved["runs"][0]["invalid"]) > 0 and str(reserved["runs"][0]["invalid"]) in row
    plain = compare_plan(Scenario(duration_s=5), pick(["on-demand", "shards"]), runs=1)
    assert "throttled" not in render_points(plain.vary, plain.run())
