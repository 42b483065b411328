"""simulate/sweep as the emulator's function config has it (issue 19 item 6): reserved concurrency,
the probe's cache size and TTL, replay's duration and function columns, users sharded over K
functions under one account concurrency."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lambda_affinity import cli
from lambda_affinity.core.summary import summarize
from lambda_affinity.platform import ConfigError, FunctionSpec, ModelConfig
from lambda_affinity.sim import functions
from lambda_affinity.sim.functions import FunctionsError, function_rows, shard_of, shard_specs
from lambda_affinity.sim.replay import replay
from lambda_affinity.sim.simulate import Scenario, ScenarioError, run, run_many
from lambda_affinity.sim.trace import TraceError
from lambda_affinity.sim.trace_columns import read_columns


def seed(**changes) -> Scenario:
    return dataclasses.replace(Scenario(), **changes)


def doc_of(res):
    return summarize(res.tracker.rows(), res.tracker.environments)


# -- reserved concurrency, cache size and TTL -------------------------------------------------


def test_reserved_caps_the_environments_and_throttles_the_rest():
    free = run(seed(), seed=3)
    capped = run(seed(function=FunctionSpec("probe", reserved_concurrency=3)), seed=3)
    assert free.throttled == 0 and free.tracker.environments == 10  # 10 users together: 10 environments
    assert capped.tracker.environments == 3
    assert capped.throttled > 0
    assert sum(t.invalid for t in capped.tracker.users.values()) == capped.throttled
    # fewer environments, each user's calls more concentrated: the "higher max-share" docs/model.md gives
    assert doc_of(capped)["hit_rate"]["mean"] > doc_of(free)["hit_rate"]["mean"]


def test_a_smaller_cache_or_a_shorter_ttl_loses_warm_hits():
    base = doc_of(run(seed(duration_s=30), seed=1))["warm_cache_rate"]["mean"]
    one = doc_of(run(seed(duration_s=30, cache_size=1), seed=1))["warm_cache_rate"]["mean"]
    short = doc_of(run(seed(duration_s=30, cache_ttl_s=0.5), seed=1))["warm_cache_rate"]["mean"]
    assert one < base / 5  # an environment remembers only the last user it served
    assert short < base / 2  # a session gone before the user's next call (think 0..1 s)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"cache_size": 0}, "cache_size: must be a whole number from 1 to 1,000,000, got 0"),
        ({"cache_size": 1.5}, "cache_size: must be a whole number"),
        ({"cache_ttl_s": 0}, "cache_ttl_s: must be from 0.001 to 86400 seconds, got 0"),
        ({"cache_ttl_s": float("nan")}, "cache_ttl_s: must be from"),
        ({"shards": 0}, "shards: must be a whole number from 1 to 1000, got 0"),
    ],
)
def test_bad_cache_and_shard_values_are_one_precise_error(changes, message):
    with pytest.raises((ScenarioError, FunctionsError), match=message.replace("(", r"\(")):
        run(seed(**changes), seed=1)


# -- shards ---------------------------------------------------------------------------------------


def test_one_shard_is_the_one_function_run_unchanged():
    a, b = run(seed(), seed=5), run(seed(shards=1), seed=5)
    assert a.tracker.rows() == b.tracker.rows() and a.functions == b.functions == {}
    assert shard_specs(FunctionSpec("probe"), 1) == [FunctionSpec("probe")]


def test_shard_of_is_a_stable_hash_of_the_user():
    # CRC-32, not Python's salted hash(): the same shard in every process and run
    assert shard_of("u1", 4) == 0x424F9F76 % 4  # zlib.crc32(b"u1")
    assert shard_of("u1", 7) == 0x424F9F76 % 7
    assert {shard_of(f"u{i}", 4) for i in range(1, 101)} == {0, 1, 2, 3}


def test_shards_keep_each_user_on_its_own_function_and_count_per_shard():
    res = run(seed(users=40, shards=4), seed=2)
    assert set(res.functions) == {"probe-0", "probe-1", "probe-2", "probe-3"}
    envs_of = {}
    for name, tracker in res.functions.items():
        for user in tracker.users:
            assert shard_of(user, 4) == int(name[-1])
        envs_of[name] = set(tracker._env_ids)
    # pools apart: no environment serves two shards
    all_envs = [e for envs in envs_of.values() for e in envs]
    assert len(all_envs) == len(set(all_envs)) == res.tracker.environments
    rows = function_rows(res.functions, res.function_throttled)
    assert sum(r["requests"] for r in rows) == res.invocations
    assert sum(r["users"] for r in rows) == 40


def test_shards_each_have_their_own_reserved_concurrency_under_one_account_limit():
    res = run(seed(users=40, shards=4, function=FunctionSpec("probe", reserved_concurrency=2)), seed=2)
    assert all(len(set(t._env_ids)) <= 2 for t in res.functions.values())
    assert res.tracker.environments <= 8 and res.throttled > 0
    assert sum(res.function_throttled.values()) == res.throttled
    shared = run(seed(users=40, shards=4, model=ModelConfig(account_concurrency=3)), seed=2)
    assert shared.peak_concurrency <= 3 and shared.throttled > 0  # one account concurrency for all shards


def test_a_deploy_of_a_sharded_function_deploys_every_shard_once():
    res = run(seed(users=20, shards=4, duration_s=10, deploy_at="5"), seed=2)
    assert res.deploys == 1  # one deploy, of the whole (sharded) application
    # every shard's users met new environments after it: each shard has more than without the deploy
    first = run(seed(users=20, shards=4, duration_s=10), seed=2)
    for name, tracker in res.functions.items():
        assert len(tracker._env_ids) > len(first.functions[name]._env_ids)


def test_pooled_runs_pool_the_shards_too():
    tracker, totals = run_many(seed(users=20, shards=2), runs=3, seed=1)
    assert set(totals["functions"]) == {"probe-0", "probe-1"}
    rows = function_rows(totals["functions"], totals["function_throttled"])
    assert sum(r["users"] for r in rows) == 60 == len(tracker.users)


# -- replay: duration and function columns ------------------------------------------------------


def test_a_rows_duration_replaces_the_service_time():
    # five users one second apart: with the default ~6 ms each call is over before the next, so one
    # environment serves them all; with 10 s each they overlap and need five
    arrivals = [(float(i), f"u{i}", None, None) for i in range(5)]
    short = replay(arrivals, seed(latency="0"), seed=1, columns=True)
    long = replay([(t, u, 10.0, f) for t, u, _, f in arrivals], seed(latency="0"), seed=1, columns=True)
    assert short.tracker.environments == 1
    assert long.tracker.environments == 5


def test_functions_of_a_replay_have_their_own_pools_under_one_account_limit():
    arrivals = [(i * 0.5, f"u{i % 3}", 0.2, f"f{i % 2}") for i in range(40)]
    res = replay(arrivals, seed(latency="0"), seed=1, columns=True)
    assert set(res.functions) == {"f0", "f1"}
    envs = [set(t._env_ids) for t in res.functions.values()]
    assert not envs[0] & envs[1]
    rows = function_rows(res.functions, res.function_throttled)
    assert [r["requests"] for r in rows] == [20, 20]
    # 3 calls at once on 3 functions, account concurrency 2: the third is throttled
    at_once = [(0.0, "a", 1.0, "f0"), (0.0, "b", 1.0, "f1"), (0.0, "c", 1.0, "f2")]
    res = replay(at_once, seed(latency="0", model=ModelConfig(account_concurrency=2)), seed=1, columns=True)
    assert res.throttled == 1 and res.function_throttled == {"f0": 0, "f1": 0, "f2": 1}


def test_a_replay_with_shards_sends_each_user_to_its_shard():
    arrivals = [(i * 0.5, f"u{i % 12}") for i in range(60)]
    res = replay(arrivals, seed(latency="0", shards=3), seed=1)
    assert set(res.functions) <= {"probe-0", "probe-1", "probe-2"} and len(res.functions) > 1
    for name, tracker in res.functions.items():
        assert all(shard_of(user, 3) == int(name[-1]) for user in tracker.users)
    assert sum(len(t.users) for t in res.functions.values()) == 12


def test_replaying_more_functions_than_the_bound_is_a_precise_error(monkeypatch):
    monkeypatch.setattr(functions, "MAX_FUNCTIONS", 3)
    arrivals = [(float(i), "u", None, f"f{i}") for i in range(4)]
    with pytest.raises(FunctionsError, match="more than 3 distinct functions in one replay"):
        replay(arrivals, seed(latency="0"), seed=1, columns=True)


def test_the_column_reader_gives_time_user_duration_function(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("t,who,took,fn\n2,b,0.25,g\n1,a,1.5,f\n")
    assert list(read_columns(str(path), "t", "who", "took", "fn")) == [(1.0, "a", 1.5, "f"), (2.0, "b", 0.25, "g")]
    by_function = list(read_columns(str(path), "t", "who", function_col="fn"))
    assert by_function == [(1.0, "a", None, "f"), (2.0, "b", None, "g")]
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"t": 1, "who": "a", "took": 0.5, "fn": 7}\n')
    assert list(read_columns(str(jsonl), "t", "who", "took", "fn")) == [(1.0, "a", 0.5, "7")]


@pytest.mark.parametrize(
    "line, message",
    [
        ("1,a,-1,f", r"t.csv:2: column 'took': '-1': a duration must be from 0 to 86400 seconds"),
        ("1,a,soon,f", r"t.csv:2: column 'took': 'soon' is not a duration in seconds"),
        ("1,a,nan,f", r"t.csv:2: column 'took': 'nan': a duration must be"),
        ("1,a,1, ", r"t.csv:2: column 'fn': no function: every row needs one"),
    ],
)
def test_a_bad_duration_or_function_names_the_line_and_column(tmp_path, line, message):
    path = tmp_path / "t.csv"
    path.write_text(f"t,who,took,fn\n{line}\n")
    with pytest.raises(TraceError, match=message):
        list(read_columns(str(path), "t", "who", "took", "fn"))


def test_a_missing_column_is_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("t,who\n1,a\n")
    with pytest.raises(TraceError, match=r"no duration column 'took' \(columns: t, who\)"):
        list(read_columns(str(path), "t", "who", "took"))


# -- the command line -------------------------------------------------------------------------------


def test_simulate_json_says_per_function_what_happened(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text("time,user,took,fn\n" + "".join(f"{i * 0.5},u{i % 3},0.2,f{i % 2}\n" for i in range(40)))
    assert cli.main(["simulate", "--trace", str(path), "--duration-col", "took", "--function-col", "fn", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(f["function"], f["requests"]) for f in doc["functions"]] == [("f0", 20), ("f1", 20)]
    assert doc["reproduce"]["options"]["function_col"] == "fn"
    assert cli.main(["simulate", "--users", "12", "--shards", "3", "--reserved", "2", "--random-seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "probe-0" in out and "probe-2" in out and "throttled" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--duration-col", "d"], "--duration-col names a column of a trace: give --trace FILE too"),
        (["--trace", "t.csv", "--function-col", "f", "--shards", "2"], "--function-col and --shards both say"),
        (["--cache-ttl", "0"], "cache_ttl_s: must be from 0.001"),
        (["--reserved", "-1"], "--reserved: must be >= 0, got -1"),
    ],
)
def test_simulate_refuses_contradictory_or_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["simulate", *argv])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("spec", ["reserved=2,4", "reserved-concurrency=2,4", "shards=1,2", "cache-ttl=1..10:lin:2"])
def test_sweep_varies_the_function_options(tmp_path, capsys, spec):
    argv = ["sweep", "--vary", spec, "--runs", "1", "--duration", "5", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert len(doc["points"]) == 2
    if spec.startswith("reserved"):
        assert [p["runs"][0]["environments"] for p in doc["points"]] == [2, 4]
        assert "reserved_concurrency" not in doc["scenario"]["function"]  # each point has its own


def test_a_sharded_sweep_point_says_per_shard_what_each_run_did(tmp_path, capsys):
    argv = ["sweep", "--vary", "shards=1,2", "--runs", "2", "--users", "8", "--duration", "5", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    one, two = json.loads((tmp_path / "sweep.json").read_text())["points"]
    assert all("functions" not in run for run in one["runs"])
    for run_ in two["runs"]:
        assert [f["function"] for f in run_["functions"]] == ["probe-0", "probe-1"]
        assert sum(f["requests"] for f in run_["functions"]) == run_["requests"]
    assert "functions" not in (tmp_path / "sweep.csv").read_text().splitlines()[0]


def test_sweep_names_the_bad_point(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--vary", "reserved=2,-1", "--out", str(tmp_path)])
    assert "--vary reserved=-1: reserved_concurrency: must be >= 0" in capsys.readouterr().err


def test_function_spec_still_refuses_a_bad_reserved_value():
    with pytest.raises(ConfigError):
        FunctionSpec("probe", reserved_concurrency=-1)
