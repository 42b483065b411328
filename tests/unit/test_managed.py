"""Lambda Managed Instances in the platform model and the simulator (docs/model.md, "Managed Instances"):
M1 and M2 of issue 19, the scaler's documented rule, and the knobs' precise errors. The same constraints
with real processes are in tests/e2e/test_emulator_managed.py."""

from __future__ import annotations

import argparse
import itertools
import random

import pytest

from lambda_affinity.cli import build_parser
from lambda_affinity.cli.options import scenario_from_args
from lambda_affinity.core.summary import summarize
from lambda_affinity.platform import SCALE_LIMIT, ConfigError, FunctionSpec, ModelConfig, Platform, Throttled
from lambda_affinity.platform.environment import Start
from lambda_affinity.platform.managed import default_cache_scope, runtime_family, runtime_problem
from lambda_affinity.sim.simulate import Scenario, run, run_many
from lambda_affinity.sim.sweep import scenario_at
from lambda_affinity.sim.sweep_spec import Factor


def managed(k: int = 16, **kw) -> FunctionSpec:
    return FunctionSpec("f", per_environment_max_concurrency=k, **kw)


def platform(spec: FunctionSpec, **model) -> Platform:
    return Platform(ModelConfig(**model), [spec], rng=random.Random(7))


def hold(p: Platform, n: int, now: float) -> tuple[list, int]:
    """`n` calls at `now`, kept in flight: (their leases, how many were throttled)."""
    leases, throttled = [], 0
    for _ in range(n):
        try:
            leases.append(p.acquire("f", now))
        except Throttled as exc:
            assert exc.reason == SCALE_LIMIT
            throttled += 1
    return leases, throttled


def warm_rate(tracker) -> float:
    rows = tracker.rows()
    return sum(r["warm_hits"] for r in rows) / sum(r["cache_known"] for r in rows)


# -- the model -------------------------------------------------------------------------------


def test_three_environments_are_ready_before_the_first_call_and_no_call_is_cold():
    p = platform(managed(4))
    leases, throttled = hold(p, 12, 0.0)
    assert throttled == 0 and len(p.live) == 3 and p.cold_starts == 0
    assert sum(lease.start is Start.NEW_ENVIRONMENT for lease in leases) == 3  # one first call per environment
    assert p.new_environment_calls == 3 and p.warm_starts == 9
    assert {lease.init_delay_s for lease in leases} == {0.0}


def test_a_call_no_environment_can_take_is_throttled_not_a_new_environment():
    p = platform(managed(4))
    _, throttled = hold(p, 13, 0.0)
    assert throttled == 1 and len(p.live) == 3 and p.counter.throttles[SCALE_LIMIT] == 1
    assert p.counter.total == 12  # the refused call is not counted in flight


def test_the_scaler_acts_at_its_interval_and_new_environments_take_calls_after_their_init():
    p = platform(managed(4), managed_scale_interval_s=10.0, init_delay_s=2.0, managed_target_utilisation=1.0)
    _, throttled = hold(p, 20, 0.0)  # 12 taken, 8 refused: peak demand 20
    assert throttled == 8
    p.expire(9.9)
    assert len(p.live) == 3  # not before its interval: never per call
    p.expire(10.0)
    assert len(p.live) == 5  # ceil(20 / 4), initialising
    _, throttled = hold(p, 1, 11.0)
    assert throttled == 1  # still in their init
    more, throttled = hold(p, 8, 12.0)
    assert throttled == 0 and {lease.start for lease in more} == {Start.NEW_ENVIRONMENT, Start.WARM}


def test_target_utilisation_keeps_headroom():
    p = platform(managed(10), managed_scale_interval_s=10.0, managed_target_utilisation=0.5)
    hold(p, 30, 0.0)  # 30 slots, all used
    p.expire(10.0)
    assert len(p.live) == 6  # 30 / (10 x 0.5)


def test_traffic_more_than_doubling_within_5_minutes_is_throttled():
    """AWS: "If your traffic more than doubles within 5 minutes, you may see throttles": the scaler grows the
    fleet to at most twice the fewest environments it had in the last 5 minutes. Clients retry every 30 s
    and keep what they get in flight."""

    def throttled_at(demand: int, until: float) -> tuple[int, int]:
        p = platform(managed(10), managed_scale_interval_s=60.0, managed_target_utilisation=1.0)
        hold(p, 30, 0.0)  # steady: 3 environments, full
        wanting, throttled, t = demand - 30, 0, 0.0
        while t < until:
            t += 30.0
            p.expire(t)
            got, throttled = hold(p, wanting, t) if t > 300 else ([], 0)
            wanting -= len(got)
        return throttled, len(p.live)

    assert throttled_at(55, 420) == (0, 6)  # less than double: served once the scaler has acted
    assert throttled_at(70, 420) == (10, 6)  # more than double: at most 6 environments within 5 minutes
    assert throttled_at(70, 600) == (10, 6)
    assert throttled_at(70, 690) == (10, 6)  # it had 3 until its action at 360
    assert throttled_at(70, 750) == (0, 7)  # 5 minutes after it last had 3, it may double again


def test_scale_down_is_gradual_and_stops_at_the_minimum():
    p = platform(managed(2, min_execution_environments=1), managed_scale_interval_s=1.0, init_delay_s=0.0)
    leases, _ = hold(p, 1, 0.0)
    p.release(leases[0].env, 0.5)
    p.expire(1.0)
    p.expire(1.5)
    assert len(p.live) == 1  # min 1 from the start
    p2 = platform(managed(2), managed_scale_interval_s=1.0, init_delay_s=0.0, managed_target_utilisation=1.0)
    leases, _ = hold(p2, 10, 0.0)  # peak 10: 5 wanted (growth allows 6)
    p2.expire(1.0)
    assert len(p2.live) == 5
    for lease in leases:
        p2.release(lease.env, 1.5)
    counts = []
    for t in range(2, 6):
        p2.expire(float(t))
        counts.append(len(p2.live))
    assert counts == [4, 3, 3, 3]  # one per action, down to the minimum (3)
    assert p2.retired == {"scaled-in": 2}


def test_max_execution_environments_bounds_the_fleet():
    p = platform(managed(1, max_execution_environments=2), managed_scale_interval_s=1.0, init_delay_s=0.0)
    _, throttled = hold(p, 5, 0.0)
    p.expire(1.0)
    assert len(p.live) == 2 and throttled == 3


def test_a_recycled_environment_loses_every_call_on_it_and_leaves():
    p = platform(managed(4, min_execution_environments=1))
    leases, _ = hold(p, 3, 0.0)
    env = leases[0].env
    p.release(env, 0.1, recycle=True)
    assert env.id not in p.live
    for lease in leases[1:]:
        p.release(lease.env, 0.2)  # the others end as the process did
    assert p.counter.total == 0


def test_calls_are_spread_over_environments_with_a_free_slot():
    """Placement (our assumption, AWS documents none): uniform among environments with a free slot."""
    p = platform(managed(1000))
    seen = {}
    for i in range(3000):
        lease = p.acquire("f", i * 0.001)
        seen[lease.env.id] = seen.get(lease.env.id, 0) + 1
        p.release(lease.env, i * 0.001)
    assert len(seen) == 3 and min(seen.values()) > 900


# -- knobs and their errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"per_environment_max_concurrency": 1601}, "per_environment_max_concurrency: must be <= 1600, got 1601"),
        ({"per_environment_max_concurrency": 0}, "per_environment_max_concurrency: must be >= 1, got 0"),
        ({"min_execution_environments": 2}, "min_execution_environments: applies to Managed Instances only"),
        (
            {"per_environment_max_concurrency": 4, "max_execution_environments": 15001},
            "max_execution_environments: must be <= 15000",
        ),
        (
            {"per_environment_max_concurrency": 4, "min_execution_environments": 5, "max_execution_environments": 4},
            "min_execution_environments: 5 is above max_execution_environments 4",
        ),
        ({"per_environment_max_concurrency": 4, "cache_scope": "thread"}, "cache_scope: 'thread' is not one of"),
        (
            {"per_environment_max_concurrency": 4, "runtime": "nodejs20.x"},
            "runtime: nodejs20.x does not run on Lambda Managed Instances",
        ),
    ],
)
def test_function_spec_refuses_bad_managed_values(kw, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(")):
        FunctionSpec("f", **kw)


def test_model_refuses_bad_scaler_values():
    with pytest.raises(ConfigError, match="managed_target_utilisation: must be <= 1"):
        ModelConfig(managed_target_utilisation=1.5)
    with pytest.raises(ConfigError, match="managed_scale_interval_s: must be > 0"):
        ModelConfig(managed_scale_interval_s=0)


def test_runtimes_as_aws_allows_them_and_their_cache_scope():
    assert [runtime_family(r) for r in ("python3.13", "python3.14", "nodejs22.x", "nodejs24.x", "java21")] == [
        "python",
        "python",
        "nodejs",
        "nodejs",
        "java",
    ]
    for bad in ("python3.12", "nodejs20.x", "java17", "ruby3.3", "python3.13x"):
        assert runtime_problem(bad) is not None and bad in runtime_problem(bad)
    assert [default_cache_scope(r) for r in ("python3.13", "nodejs22.x", "java21", None)] == [
        "process",
        "worker",
        "environment",
        "process",
    ]


def test_command_line_names_the_option_in_its_errors():
    parser = build_parser()
    args = parser.parse_args(["simulate", "--cache-scope", "process"])
    with pytest.raises(ConfigError, match=r"^--cache-scope: applies to Managed Instances only: set --env-concurrency"):
        scenario_from_args(args)
    args = parser.parse_args(["simulate", "--env-concurrency", "16", "--runtime", "nodejs22.x", "--worker-count", "2"])
    spec = scenario_from_args(args).function
    assert (spec.per_environment_max_concurrency, spec.runtime, spec.worker_count) == (16, "nodejs22.x", 2)
    assert isinstance(args, argparse.Namespace)


def test_sweep_varies_env_concurrency_on_the_function():
    base = Scenario(function=managed(4))
    point = scenario_at(base, Factor("env-concurrency", "int", field="function.per_environment_max_concurrency"), 32)
    assert point.function.per_environment_max_concurrency == 32 and base.function.per_environment_max_concurrency == 4


# -- M1, M2 in the simulator -------------------------------------------------------------------


def test_m1_env_concurrency_16_node_50_simultaneous_users_at_most_4_environments():
    """M1: K = 16, the Node.js runtime, 50 users calling together (then on for 3 min, three scaler
    actions): at most 4 environments serve them all, none of them cold."""
    sc = Scenario(
        users=50,
        duration_s=180,
        function=FunctionSpec("probe", per_environment_max_concurrency=16, runtime="nodejs22.x"),
    )
    for seed in range(3):
        res = run(sc, seed=seed)
        assert res.tracker.environments <= 4 and res.cold_starts == 0
        assert res.throttled <= 2  # the first burst: 50 calls, 48 slots, before the scaler acts


def test_m2_python_process_scope_shares_env_id_and_warm_rate_falls_as_k_grows():
    """M2: Python's runtime runs each concurrent request in its own process, so an environment's id is shared
    by K processes, each with its own cache: a user's session must be cached in each of them, and the
    warm-cache rate falls as K grows; with one cache per environment it does not."""
    rates, env_rates = [], []
    for k in (4, 8, 16, 32, 64):  # 3 environments hold the 10 users at each K
        spec = FunctionSpec("probe", per_environment_max_concurrency=k, runtime="python3.13")
        tracker, _ = run_many(Scenario(users=10, duration_s=120, function=spec), runs=2, seed=3)
        doc = summarize(tracker.rows(), tracker.environments)
        assert doc["environments"] == 2 * 3  # 3 per run, each shared by the users: one env_id, K processes
        assert max(u["environments"] for u in doc["per_user"]) <= doc["environments"]
        rates.append(warm_rate(tracker))
        one = FunctionSpec("probe", per_environment_max_concurrency=k, runtime="python3.13", cache_scope="environment")
        env_rates.append(warm_rate(run_many(Scenario(users=10, duration_s=120, function=one), runs=2, seed=3)[0]))
    assert all(a > b + 0.02 for a, b in itertools.pairwise(rates)), rates
    assert all(e > r for e, r in zip(env_rates, rates, strict=True)), (env_rates, rates)
    assert max(env_rates) - min(env_rates) < 0.05, env_rates


def test_worker_scope_holds_one_cache_per_worker():
    def rate(workers: int) -> float:
        spec = FunctionSpec("probe", per_environment_max_concurrency=16, runtime="nodejs22.x", worker_count=workers)
        return warm_rate(run(Scenario(users=20, duration_s=120, function=spec), seed=4).tracker)

    one, four, sixteen = rate(1), rate(4), rate(16)
    assert one > four > sixteen


def test_replay_runs_a_managed_function():
    from lambda_affinity.sim.replay import replay

    arrivals = [(i * 0.001, f"u{i % 40}") for i in range(4000)]
    spec = FunctionSpec("probe", per_environment_max_concurrency=8, cache_scope="process")
    res = replay(iter(arrivals), Scenario(service="0.05", function=spec), seed=1)
    assert res.invocations + res.throttled == 4000 and res.cold_starts == 0
    assert res.peak_concurrency <= 24  # 3 environments x 8


def test_sweep_over_env_concurrency_runs_every_point_on_managed_instances(tmp_path, capsys):
    """The base point takes the first value (no --env-concurrency needed); the files say which function ran."""
    import json

    from lambda_affinity.cli.sweep import run as sweep

    args = build_parser().parse_args(
        ["sweep", "--users", "10", "--duration", "20", "--runtime", "python3.13", "--vary", "env-concurrency=4,64"]
        + ["--runs", "1", "--random-seed", "1", "--out", str(tmp_path)]
    )
    assert sweep(args) == 0
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert "per_environment_max_concurrency" not in doc["scenario"]["function"]  # each point has its own
    assert doc["scenario"]["function"]["runtime"] == "python3.13"
    said = capsys.readouterr().out
    assert "K 4" not in said and "a cache per process" in said and "runtime python3.13" in said
    rates = [p["stats"]["warm_cache_rate"]["mean"] for p in doc["points"]]
    assert rates[0] > rates[1] and {r["cold_starts"] for p in doc["points"] for r in p["runs"]} == {0}


def test_an_environment_lost_below_the_minimum_is_replaced_at_once():
    p = platform(managed(2), init_delay_s=1.0)
    leases, _ = hold(p, 1, 0.0)
    p.release(leases[0].env, 0.5, recycle=True)  # its process crashed or its call timed out
    p.expire(0.6)
    assert len(p.live) == 3 and p.retired == {"recycled": 1}
    _, throttled = hold(p, 6, 0.7)
    assert throttled == 2  # the replacement is still in its init
    _, throttled = hold(p, 2, 1.7)
    assert throttled == 0


def test_an_environment_that_never_served_is_not_replaced_before_the_scaler_acts():
    """An init that fails (the driver kills the environment) waits for the scaler: no respawn storm."""
    p = platform(managed(2), managed_scale_interval_s=10.0)
    p.expire(0.0)  # publishing: its three environments
    for env in list(p.live.values()):
        p.kill(env)
    p.expire(5.0)
    assert len(p.live) == 0
    p.expire(10.0)
    assert len(p.live) == 3


def test_sweep_knows_env_concurrency_by_its_field_name_too():
    from lambda_affinity.cli.sweep import _sweep_factors
    from lambda_affinity.sim.sweep_spec import parse_vary

    args = build_parser().parse_args(["sweep", "--vary", "users=1,2", "--out", "unused"])
    known = {name: factor for name, (factor, _) in _sweep_factors(args.factor_actions).items()}
    for spec in ("env-concurrency=4,16", "per_environment_max_concurrency=4,16", "env_concurrency=4,16"):
        vary = parse_vary(spec, known)
        assert vary.factor.field == "function.per_environment_max_concurrency" and vary.values == (4, 16)
    assert parse_vary("managed-target-utilisation=0.5,1", known).factor.field == "model.managed_target_utilisation"


def test_a_deploy_moves_every_later_call_to_the_new_version_s_environments():
    """D1 on Managed Instances: idle environments retire, busy ones drain, the new version's first ones
    take every later call."""
    p = platform(managed(4))
    busy, _ = hold(p, 1, 0.0)
    old = set(p.live)
    assert p.deploy("f", 1.0) == 1  # one left draining
    assert len(p.live) == 1 + 3 and p.retired == {"deploy": 2}
    later, _ = hold(p, 8, 1.5)
    assert not {lease.env.id for lease in later} & old
    p.release(busy[0].env, 2.0)
    assert p.retired == {"deploy": 3} and not set(p.live) & old
    assert p.counter.total == 8


def test_idle_count_counts_a_fleet_s_environments_with_no_call():
    p = platform(managed(4))
    leases, _ = hold(p, 1, 0.0)
    assert p.idle_count("f") == 2 and p.in_flight("f") == 1
    p.release(leases[0].env, 0.1)
    assert p.idle_count("f") == 3


def test_random_lifetimes_and_proactive_replacement_leave_a_managed_fleet_alone():
    """Managed Instances meets random lifetimes: a short, drawn max lifetime and keep-alive (with proactive
    replacement on) retire none of the fleet's environments and make none ahead; only the scaler acts."""
    p = platform(managed(min_execution_environments=3), max_lifetime_s="50:100", keep_alive_s="5:10")
    leases, _ = hold(p, 3, 0.0)
    envs = set(p.environments("f"))
    for lease in leases:
        p.release(lease.env, 1.0)
    for t in range(2, 400, 7):
        p.expire(float(t))
    assert set(p.environments("f")) == envs and sum(p.retired.values()) == 0
    assert not p.acquire("f", 400.0).cold
