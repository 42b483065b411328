"""D1 (docs/model.md, "Deploys") in the platform model and the simulator: a deploy moves every later call to a
new environment; the old ones retire, idle ones at once and busy ones once their call ends."""

from __future__ import annotations

import json
import random

import pytest

from lambda_affinity.core.tracker import Tracker
from lambda_affinity.platform import ModelConfig, Platform
from lambda_affinity.platform.config import FunctionSpec
from lambda_affinity.platform.environment import DEAD
from lambda_affinity.platform.scheduler import DEPLOY, UnknownFunction
from lambda_affinity.sim import simulate
from lambda_affinity.sim.deploys import DeployError, deploy_times, parse_deploy_at
from lambda_affinity.sim.replay import replay
from lambda_affinity.sim.simulate import Scenario, ScenarioError, run


def platform(**model) -> Platform:
    return Platform(ModelConfig(**model), [FunctionSpec("fn"), FunctionSpec("other")], rng=random.Random(1))


def test_d1_platform_idle_environments_retire_at_the_deploy_busy_ones_after_their_call():
    p = platform()
    leases = [p.acquire("fn", 0.0) for _ in range(3)]
    for lease in leases:
        p.ready(lease.env, 0.1)
    p.release(leases[0].env, 1.0)
    p.release(leases[1].env, 1.0)
    other = p.acquire("other", 1.0)
    assert p.deploy("fn", 2.0) == 1  # the busy one drains
    assert leases[0].env.state == DEAD and leases[1].env.state == DEAD
    assert leases[2].env.alive and p.retired == {DEPLOY: 2}
    after = p.acquire("fn", 3.0)
    assert after.cold and after.env not in [lease.env for lease in leases]
    p.release(leases[2].env, 4.0)  # its call ends: it retires, it does not go idle
    assert leases[2].env.state == DEAD and p.retired == {DEPLOY: 3}
    assert p.in_flight("fn") == 1 and p.deploys == 1
    assert other.env.alive  # another function is not deployed
    p.release(after.env, 5.0)
    assert p.acquire("fn", 6.0).env is after.env  # the new environment is warm for the next call


def test_d1_platform_an_environment_in_its_hand_off_retires_and_its_call_is_counted_done():
    p = platform(busy_overhead_s=1.0)
    lease = p.acquire("fn", 0.0)
    p.ready(lease.env, 0.0)
    p.release(lease.env, 0.5)
    assert p.in_flight("fn") == 1  # still in its hand-off
    p.deploy("fn", 1.0)
    assert lease.env.state == DEAD and p.in_flight("fn") == 0 and p.retired == {DEPLOY: 1}


def test_deploy_of_an_unknown_function_is_refused():
    with pytest.raises(UnknownFunction):
        platform().deploy("nope", 0.0)


def test_deploy_times_merge_fixed_times_and_drawn_intervals():
    times = list(deploy_times("10", "5,15,1m", 40.0, random.Random(1)))
    assert times == [5.0, 10.0, 15.0, 20.0, 30.0]
    assert parse_deploy_at("1m, 30") == (30.0, 60.0)
    drawn = list(deploy_times("exp:10", "", 1000.0, random.Random(2)))
    assert 60 < len(drawn) < 140 and drawn == sorted(drawn)


@pytest.mark.parametrize(
    ("every", "at", "message"),
    [
        ("", "5,,6", "deploy_at: time 2 of '5,,6' is empty"),
        ("", "soon", "deploy_at: 'soon' is not a duration"),
        ("0", "", "deploy_every: '0' is never more than 0 s"),
        ("x:1", "", "deploy_every: 'x:1' is not a distribution"),
    ],
)
def test_bad_deploy_schedules_are_refused_with_one_line(every, at, message):
    with pytest.raises(DeployError) as exc:
        Scenario(deploy_every=every, deploy_at=at).validate()
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)


class _Log(Tracker):
    """The real tracker, also noting each call (and, through _Watched, each deploy) in time order."""

    def __init__(self, events: list) -> None:
        super().__init__()
        self.events = events

    def record(self, user, env_id, cold=None, cache_hit=None, new_environment=None):
        self.events.append(("call", env_id, cold))
        return super().record(user, env_id, cold, cache_hit, new_environment)


def test_d1_simulator_every_call_after_a_deploy_lands_on_a_new_environment(monkeypatch):
    events: list = []
    made: list = []

    class _Watched(Platform):  # the real model; it only notes when it deploys
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

        def deploy(self, function: str, now: float) -> int:
            events.append(("deploy", set(self.live), now))
            return super().deploy(function, now)

    monkeypatch.setattr(simulate, "Platform", _Watched)
    res = run(Scenario(users=10, duration_s=20, deploy_at="5,12"), seed=4, tracker=_Log(events))
    assert res.deploys == 2 and [e[2] for e in events if e[0] == "deploy"] == [5.0, 12.0]
    old: set = set()
    for event in events:
        if event[0] == "deploy":
            old |= event[1]
            continue
        env_id = event[1]
        assert env_id not in old, "a call after a deploy landed on an environment of before it"
    # the old environments are gone (their calls ended), and each was retired by a deploy
    p = made[0]
    assert not old & set(p.live)
    assert p.retired == {DEPLOY: len(old)} and len(old) >= 10
    assert res.cold_starts == len({e[1] for e in events if e[0] == "call"})


def test_a_run_without_deploys_is_unchanged_by_the_feature():
    """No deploy option: the same draws as before (the seed figure stands)."""
    a, b = run(Scenario(users=5, duration_s=20), seed=9), run(Scenario(users=5, duration_s=20, deploy_at=""), seed=9)
    assert a.tracker.rows() == b.tracker.rows() and a.deploys == b.deploys == 0


def test_replay_refuses_deploy_options():
    with pytest.raises(ScenarioError, match="not to a replayed trace"):
        replay([(0.0, "u")], Scenario(deploy_every="10"))


def test_simulate_says_how_many_deploys_happened(capsys, tmp_path):
    from lambda_affinity.cli import main

    args = ["simulate", "--users", "3", "--duration", "30", "--random-seed", "2", "--runs", "2", "--jobs", "1"]
    assert main([*args, "--deploy-every", "10", "--deploy-at", "25", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["deploys"] == 2 * 3 and doc["reproduce"]["scenario"]["deploy_at"] == "25"
    assert main([*args, "--deploy-at", "5"]) == 0
    assert ", 2 deploys, simulated in" in capsys.readouterr().out
    assert main(args[:-2] + ["--json"]) == 0
    assert "deploys" not in json.loads(capsys.readouterr().out)
    trace = tmp_path / "t.csv"
    trace.write_text("time,user\n1,a\n")
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--trace", str(trace), "--deploy-at", "5"])
    assert exc.value.code == 2 and "not to a replayed trace" in capsys.readouterr().err


def test_sweep_varies_deploy_every_as_a_distribution_and_deploy_at_as_text():
    from lambda_affinity.sim.sweep import Factor, Sweep, parse_vary

    factors = {
        "deploy-every": Factor("deploy-every", "distribution", field="deploy_every"),
        "deploy-at": Factor("deploy-at", "text", field="deploy_at"),
    }
    vary = parse_vary("deploy-every=10..30:step:10", factors)
    assert vary.values == ("10", "20", "30") and vary.numeric
    base = Scenario(users=3, duration_s=60)
    points = Sweep.over(vary, base, runs=1).run()
    cold = [p["runs"][0]["cold_starts"] for p in points]
    assert cold[0] > cold[-1]  # more deploys, more cold starts
    assert [s.deploy_at for s in Sweep.over(parse_vary("deploy-at=5,1m", factors), base, runs=1).scenarios] == [
        "5",
        "1m",
    ]


def test_a_deploy_of_a_provisioned_function_replaces_its_pool_as_of_the_deploy():
    """Deploys meet provisioned concurrency: the pool keeps its size on the new version, each environment
    made at the deploy (an idle one's) or when its draining call ends (a busy one's), never as of the old
    environment's last call; the next calls are new-environment calls, not cold starts or spillover."""
    p = Platform(
        ModelConfig(max_lifetime_s=1000, proactive_replacement=False),
        [FunctionSpec("f", provisioned_concurrency=2)],
        rng=random.Random(1),
    )
    old = p.provision(0.0)
    idle = p.acquire("f", 1.0).env
    p.release(idle, 2.0)
    busy = p.acquire("f", 400.0).env
    assert p.deploy("f", 500.0) == 1  # the busy one drains
    p.release(busy, 510.0)
    assert all(e.state == DEAD and e.dead_reason == DEPLOY for e in old)
    new = p.environments("f")
    assert len(new) == 2 and all(e.provisioned for e in new)
    assert sorted(e.created_at for e in new) == [500.0, 510.0]
    assert sorted(e.retire_at for e in new) == [1500.0, 1510.0]
    leases = [p.acquire("f", 600.0), p.acquire("f", 600.0)]
    assert all(lease.env in new and not lease.cold for lease in leases)
    assert (p.cold_starts, p.spillover) == (0, 0)
