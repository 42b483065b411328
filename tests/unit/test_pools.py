"""Provisioned concurrency and SnapStart in the platform model and the simulator (docs/model.md,
"Provisioned concurrency" and "SnapStart"): P1 and P2 as the simulator meets them. The same
constraints in the emulator, with real processes, are in tests/e2e/test_emulator_pools.py."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys

import pytest

from lambda_affinity.emulator.config import config_from_mapping
from lambda_affinity.platform import ConfigError, FunctionSpec, ModelConfig, Platform
from lambda_affinity.platform.config import snapstart_runtime_problem
from lambda_affinity.platform.environment import PROVISIONED, SNAP_START, Start
from lambda_affinity.sim.logs import rows_of
from lambda_affinity.sim.replay import replay
from lambda_affinity.sim.simulate import Scenario, run
from lambda_affinity.sim.sweep import Factor, scenario_at


def provisioned_platform(n: int, **model) -> Platform:
    p = Platform(ModelConfig(**model), [FunctionSpec("f", provisioned_concurrency=n)], rng=random.Random(1))
    p.provision(0.0)
    return p


def test_p1_serial_users_meet_no_cold_start():
    """P1: provisioned 5, 5 users calling serially: no user-facing cold start, at most 5 new-environment
    calls (each user's first call may meet a provisioned environment no call has used)."""
    p = provisioned_platform(5)
    now = 0.0
    for _round in range(20):
        for _user in range(5):
            lease = p.acquire("f", now)
            assert lease.start is not Start.COLD
            now += 0.01
            p.release(lease.env, now)
            now += 0.5
    assert p.cold_starts == 0
    assert 1 <= p.new_environment_calls <= 5
    assert p.spillover == 0
    assert p.warm_starts == 100 - p.new_environment_calls


def test_p1_in_the_simulator():
    """P1 through the simulator: 5 users, each a closed loop, for 5 minutes (pooled over seeds)."""
    fn = FunctionSpec("probe", provisioned_concurrency=5)
    for seed in range(5):
        res = run(Scenario(users=5, duration_s=300, think="1:2", function=fn), seed=seed)
        assert res.cold_starts == 0
        assert res.spillover == 0
        assert res.invocations > 5 * 100


def test_p2_ten_simultaneous_calls_spill_five_over():
    """P2: provisioned 5, 10 simultaneous calls: 5 on the provisioned environments (new-environment
    calls), 5 spill over to on-demand environments, each a cold start."""
    p = provisioned_platform(5)
    leases = [p.acquire("f", 1.0) for _ in range(10)]
    starts = [lease.start for lease in leases]
    assert starts.count(Start.NEW_ENVIRONMENT) == 5
    assert starts.count(Start.COLD) == 5
    assert all(lease.env.provisioned == (lease.start is Start.NEW_ENVIRONMENT) for lease in leases)
    assert (p.spillover, p.cold_starts, p.new_environment_calls) == (5, 5, 5)
    assert len(p.environments("f")) == 10


def test_p2_in_the_simulator():
    """P2 through the simulator: 10 users each sending one call at t=0 that runs 1 s."""
    fn = FunctionSpec("probe", provisioned_concurrency=5)
    res = run(Scenario(users=10, duration_s=0.5, think="10", latency="0", service="1", function=fn), seed=3)
    assert res.invocations == 10
    assert res.cold_starts == 5
    assert res.spillover == 5
    assert sum(row["cold_starts"] for row in res.tracker.rows()) == 5


def test_a_spilled_over_environment_stays_on_demand_and_keeps_counting():
    """A warm call on an on-demand environment is a spillover too, as AWS's metric counts it."""
    p = provisioned_platform(1)
    a, b = p.acquire("f", 0.0), p.acquire("f", 0.0)
    p.release(a.env, 1.0)
    p.release(b.env, 1.0)
    # both idle; the provisioned one is taken first, the on-demand one when it is busy
    first, second = p.acquire("f", 2.0), p.acquire("f", 2.0)
    assert first.env.provisioned and not second.env.provisioned
    assert second.start is Start.WARM
    assert p.spillover == 2


def test_provisioned_environments_are_not_reclaimed_when_idle():
    p = provisioned_platform(3, keep_alive_s=60)
    ids = {e.id for e in p.environments("f")}
    assert p.expire(3000.0) == 0
    assert {e.id for e in p.environments("f")} == ids
    assert all(e.init_type == PROVISIONED for e in p.environments("f"))
    lease = p.acquire("f", 3000.0)
    assert lease.start is Start.NEW_ENVIRONMENT


def test_keep_alive_zero_does_not_retire_a_provisioned_environment():
    p = provisioned_platform(1, keep_alive_s=0)
    lease = p.acquire("f", 1.0)
    p.release(lease.env, 1.1)
    assert lease.env.alive
    assert p.acquire("f", 5.0).env is lease.env


def test_provisioned_environments_past_their_lifetime_are_replaced():
    """AWS keeps the allocated number: one that retires (lifetime, a crash) gets a successor, whose
    first call is a new-environment call (an empty cache), not a cold start."""
    p = provisioned_platform(2, max_lifetime_s=100)
    old = {e.id for e in p.environments("f")}
    assert p.expire(150.0) == 2
    new = p.environments("f")
    assert len(new) == 2 and not old & {e.id for e in new}
    assert all(e.provisioned and e.created_at >= 100 for e in new)
    assert p.acquire("f", 150.0).start is Start.NEW_ENVIRONMENT
    p.kill(new[1])  # e.g. its process died
    assert len(p.environments("f")) == 2
    assert p.cold_starts == 0
    p.shutdown()
    assert p.environments("f") == []


def test_a_preinitialized_environment_waits_for_its_driver():
    """With `on_preinit` (the emulator) the environment is initialising until the driver says it is done."""
    told = []
    p = Platform(ModelConfig(), [FunctionSpec("f", provisioned_concurrency=1)], on_preinit=told.append)
    (env,) = p.provision(0.0)
    assert told == [env] and p.idle_count("f") == 0
    assert p.acquire("f", 0.1).start is Start.COLD  # not ready yet: the call spills over
    p.initialized(env, 0.2)
    assert p.acquire("f", 0.3).env is env


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"provisioned_concurrency": -1}, "provisioned_concurrency: must be >= 0, got -1"),
        ({"provisioned_concurrency": 2.5}, "provisioned_concurrency: expected a whole number, got 2.5"),
        ({"provisioned_concurrency": 6, "reserved_concurrency": 5}, "more than reserved_concurrency 5"),
        ({"snapstart": "yes"}, "snapstart: expected true or false, got 'yes'"),
        ({"snapstart": True, "provisioned_concurrency": 1}, "SnapStart with provisioned concurrency"),
    ],
)
def test_bad_function_settings_are_refused(fields, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        FunctionSpec("f", **fields)


@pytest.mark.parametrize(
    "runtime, problem",
    [
        ("python3.12", None),
        ("python3.13", None),
        ("java21", None),
        ("python3.11", "SnapStart is offered on Python 3.12 and later, not python3.11"),
        ("nodejs22.x", "SnapStart is offered on Java 11+, Python 3.12+ and .NET 8+, not nodejs22.x"),
    ],
)
def test_snapstart_runtimes_are_aws_s(runtime, problem):
    assert snapstart_runtime_problem(runtime) == problem


def test_snapstart_inits_are_restores():
    model = ModelConfig(init_delay_s=2.0, restore_delay="0.1:0.2")
    p = Platform(model, [FunctionSpec("s", snapstart=True), FunctionSpec("o")], rng=random.Random(2))
    restored, on_demand = p.acquire("s", 0.0), p.acquire("o", 0.0)
    assert restored.cold and 0.1 <= restored.init_delay_s <= 0.2
    assert restored.env.init_type == SNAP_START
    assert on_demand.init_delay_s == 2.0
    # no restore delay given: a restore costs what an init does (AWS publishes no restore time)
    p = Platform(ModelConfig(init_delay_s=0.5), [FunctionSpec("s", snapstart=True)])
    assert p.acquire("s", 0.0).init_delay_s == 0.5


def test_a_bad_restore_delay_names_itself():
    with pytest.raises(ConfigError, match="restore_delay: '1:x' is not a distribution"):
        ModelConfig(restore_delay="1:x")
    assert ModelConfig.from_mapping({"restore_delay": "exp:200ms"}).restore_delay == "exp:200ms"


def test_a_sweep_varies_provisioned_concurrency():
    base = Scenario(users=10)
    factor = Factor("provisioned", "int", field="function.provisioned_concurrency")
    at = scenario_at(base, factor, 5)
    assert at.function.provisioned_concurrency == 5 and at.function.name == base.function.name
    assert base.function.provisioned_concurrency == 0


def test_the_command_line_names_the_option():
    out = subprocess.run(
        [sys.executable, "-m", "lambda_affinity.cli", "simulate", "--provisioned", "-2"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr.strip().endswith("--provisioned: must be >= 0, got -2")


def test_a_replay_provisions_as_of_the_trace_s_first_time():
    """A trace on the epoch clock: the pool is initialised when the trace begins, not 55 years before
    (it would have retired at its lifetime and been replaced over and over)."""
    t0 = 1.7e9
    arrivals = [(t0 + i * 10.0, f"user{i % 3}") for i in range(30)]
    scenario = Scenario(latency="0", function=FunctionSpec("probe", provisioned_concurrency=3))
    res = replay(arrivals, scenario, seed=1)
    assert (res.invocations, res.cold_starts, res.spillover, res.retired) == (30, 0, 0, 0)
    assert replay([], scenario, seed=1).invocations == 0


@pytest.mark.parametrize(
    "fn, message",
    [
        ({"snapstart": True, "runtime": "python3.11"}, "functions[0].snapstart: SnapStart is offered on Python 3.12"),
        ({"snapstart": "on"}, "functions[0].snapstart: expected true or false, got 'on'"),
        ({"provisioned_concurrency": -1}, "functions[0].provisioned_concurrency: expected a whole number from 0"),
        (
            {"provisioned_concurrency": 3, "reserved_concurrency": 2},
            "functions[0].provisioned_concurrency: 3 is more than reserved_concurrency 2",
        ),
        (
            {"provisioned_concurrency": 1, "snapstart": True, "runtime": "python3.12"},
            "functions[0].snapstart: AWS does not offer SnapStart with provisioned concurrency",
        ),
    ],
)
def test_the_emulator_config_refuses_what_aws_does(tmp_path, fn, message):
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"functions": [{"name": "f", **fn}]}, str(tmp_path))
    assert str(info.value).startswith(message)


def test_the_emulator_config_carries_both_to_the_model(tmp_path):
    cfg = config_from_mapping(
        {
            "functions": [
                {"name": "f", "provisioned_concurrency": 4},
                {"name": "g", "snapstart": True, "runtime": "python3.13"},
            ]
        },
        str(tmp_path),
    )
    f, g = (fn.spec() for fn in cfg.functions)
    assert (f.provisioned_concurrency, f.snapstart, g.provisioned_concurrency, g.snapstart) == (4, False, 0, True)


def test_a_snapstart_restore_in_aws_logs_is_a_cold_start():
    """AWS's REPORT of a restored SnapStart environment has `Restore Duration`, not `Init Duration`
    (AWS docs, SnapStart monitoring); the JSON log format's platform.report has `restoreDurationMs`."""
    text = (
        "REPORT RequestId: r1\tDuration: 12.50 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 60 MB\tRestore Duration: 230.00 ms\tBilled Restore Duration: 120 ms\t\n"
    )
    report = {"type": "platform.report", "record": {"requestId": "r2", "metrics": {"durationMs": 10.0}}}
    report["record"]["metrics"]["restoreDurationMs"] = 230.0
    rows = rows_of(
        [
            ("x:1", {"@timestamp": "2026-12-03 09:00:01.000", "@message": text, "@logStream": "a"}),
            ("x:2", {"@timestamp": "2026-12-03 09:00:02.000", "@message": json.dumps(report), "@logStream": "b"}),
        ]
    )
    assert [(r.env_id, r.cold) for r in rows] == [("a", True), ("b", True)]
    assert rows[0].recv - rows[0].send == pytest.approx(0.2425)  # restore + duration before the REPORT


def test_a_pool_larger_than_the_account_or_the_cap_is_refused():
    """AWS counts provisioned concurrency against the account's; the emulator's machine cap bounds processes."""
    for model, message in (
        (
            ModelConfig(account_concurrency=10),
            "provisioned_concurrency: 12 environments in all, more than account_concurrency 10",
        ),
        (
            ModelConfig(max_environments=5),
            "provisioned_concurrency: 12 environments in all, more than max_environments 5",
        ),
    ):
        specs = [FunctionSpec("a", provisioned_concurrency=6), FunctionSpec("b", provisioned_concurrency=6)]
        with pytest.raises(ConfigError, match=message):
            Platform(model, specs).provision(0.0)


def _provisioned_scenario(n: int, **changes) -> Scenario:
    s = Scenario()
    return dataclasses.replace(s, function=dataclasses.replace(s.function, provisioned_concurrency=n), **changes)


def test_replay_with_a_function_column_provisions_each_function():
    """Replay's several-function path (--function-col) provisions each function as the one-function path
    does: a row naming no function, or the scenario's, gives the same run either way."""
    rows = [(float(i), f"u{i % 3}") for i in range(10)]
    s = _provisioned_scenario(2)
    plain = replay(rows, s, seed=1)
    columns = replay([(t, u, None, None) for t, u in rows], s, seed=1, columns=True)
    for r in (plain, columns):
        assert (r.cold_starts, r.new_environment_calls, r.spillover) == (0, 2, 0)
    named = replay([(t, u, None, f"fn{i % 2}") for i, (t, u) in enumerate(rows)], s, seed=1, columns=True)
    assert named.cold_starts == named.spillover == 0 and named.new_environment_calls == 4  # 2 functions x 2


def test_replay_and_run_with_shards_provision_every_shard():
    """Shards with provisioned concurrency: each shard is its own function with its own pool of N (as
    each real function would be configured), in replay as in the synthetic users' run."""
    s = _provisioned_scenario(2, shards=2, users=6, duration_s=60.0)
    rows = [(float(i), f"user-{i % 6}") for i in range(30)]
    replayed = replay(rows, s, seed=1)
    assert replayed.cold_starts == replayed.spillover == 0
    assert sum(len(t.rows()) for t in replayed.functions.values()) == 6
    ran = run(s, seed=1)
    assert ran.cold_starts == ran.spillover == 0 and ran.new_environment_calls <= 4


def test_a_provisioned_environment_killed_while_idle_is_replaced_as_of_its_death():
    """The emulator kills an idle provisioned environment whose process died: its replacement is made as
    of then (its lifetime runs from then), not as of the dead one's last call."""
    p = provisioned_platform(1, max_lifetime_s=1000)
    (env,) = p.environments("f")
    lease = p.acquire("f", 1.0)
    p.release(lease.env, 2.0)
    p.kill(env, now=700.0)
    (new,) = p.environments("f")
    assert new.provisioned and (new.created_at, new.retire_at) == (700.0, 1700.0)
