"""The platform model under a fake clock: exact placements, expiries, throttling."""

import random

import pytest

from lambda_affinity.platform import (
    ACCOUNT_LIMIT,
    BUSY,
    DEAD,
    HANDOFF,
    IDLE,
    INITIALIZING,
    RESERVED_LIMIT,
    SCALE_LIMIT,
    ConfigError,
    FunctionSpec,
    ModelConfig,
    Platform,
    Throttled,
    UnknownFunction,
)
from lambda_affinity.platform.placement import PartitionedPool, RandomPool

ONE_FUNCTION = (FunctionSpec("f"),)


def make(policy="mru", functions=ONE_FUNCTION, seed=0, **kw):
    retired = []
    p = Platform(
        ModelConfig(policy=policy, **kw),
        functions,
        rng=random.Random(seed),
        on_retire=lambda env, why: retired.append((env.id, why)),
    )
    return p, retired


def run_one(p, t, fn="f"):
    """Acquire, init if cold, and release at the same instant; returns the env."""
    lease = p.acquire(fn, t)
    if lease.cold:
        p.ready(lease.env, t)
    p.release(lease.env, t)
    return lease.env


def hold(p, n, t, fn="f"):
    """n overlapping invocations: returns their leases, all still running."""
    leases = [p.acquire(fn, t) for _ in range(n)]
    for lease in leases:
        p.ready(lease.env, t)
    return leases


def test_cold_then_warm_on_the_same_environment():
    p, _ = make()
    first = p.acquire("f", 0.0)
    assert first.cold and first.env.state == INITIALIZING and first.init_delay_s == 0.25
    p.ready(first.env, 0.25)
    assert first.env.state == BUSY
    p.release(first.env, 0.3)
    assert first.env.state == IDLE
    second = p.acquire("f", 1.0)
    assert not second.cold and second.env is first.env and second.env.invocations == 2
    assert (p.cold_starts, p.warm_starts) == (1, 1)


def test_log_stream_name_has_aws_format():
    p, _ = make()
    env = p.acquire("f", 0.0).env
    day, rest = env.id[:10], env.id[10:]
    assert day == "1970/01/01"
    assert rest.startswith("/[$LATEST]") and len(rest) == len("/[$LATEST]") + 32
    int(rest[-32:], 16)


def test_concurrent_invocations_get_distinct_environments():
    p, _ = make()
    leases = hold(p, 5, 0.0)
    assert len({lease.env.id for lease in leases}) == 5
    assert all(lease.cold for lease in leases)
    assert p.in_flight("f") == 5


@pytest.mark.parametrize("policy,expected", [("mru", 2), ("lru", 0)])
def test_mru_and_lru_pick_exactly(policy, expected):
    p, _ = make(policy)
    envs = [lease.env for lease in hold(p, 3, 0.0)]
    for i, env in enumerate(envs):  # released in order 0, 1, 2
        p.release(env, 1.0 + i)
    assert p.acquire("f", 10.0).env is envs[expected]


def test_random_policy_is_uniform_over_idle():
    p, _ = make("random", seed=42)
    envs = [lease.env for lease in hold(p, 4, 0.0)]
    for env in envs:
        p.release(env, 1.0)
    picks = {}
    for i in range(4000):
        env = run_one(p, 2.0 + i * 1e-3)
        picks[env.id] = picks.get(env.id, 0) + 1
    assert set(picks) == {e.id for e in envs}
    assert all(800 < n < 1200 for n in picks.values())


def test_partitioned_asks_another_router_before_a_cold_start():
    """The patent's retry step: serial calls routed at random over 2 routers
    all reuse the one environment, whichever router holds it."""
    p, _ = make("partitioned", routers=2, seed=1)
    pool = p._pools["f"]
    assert isinstance(pool, PartitionedPool)
    envs = {run_one(p, i * 0.01).id for i in range(200)}
    # without the retry, the first call routed to the other router (p = 1 - 2**-199) cold-starts
    assert envs == set(p.live) and len(envs) == 1 and p.cold_starts == 1


class _Item:
    def __init__(self, name, router):
        self.name, self.router = name, router

    def __repr__(self):
        return self.name


def test_partitioned_pool_takes_its_own_router_first_then_the_next():
    pool = PartitionedPool(3, "mru")
    a0, b0, c2 = _Item("a0", 0), _Item("b0", 0), _Item("c2", 2)
    for item in (a0, b0, c2):
        pool.add(item)
    rng = random.Random(0)
    assert len(pool) == 3
    assert pool.take(rng, 2) is c2  # its own
    assert pool.take(rng, 1) is b0  # router 1 is empty: router 2, then 0 (MRU there)
    pool.remove(a0)
    pool.remove(a0)  # twice: counted once
    assert len(pool) == 0 and pool.take(rng, 0) is None


def test_handoff_keeps_an_environment_reserved_after_its_reply():
    """busy_overhead_s: the environment replied but is not free yet; a call in
    that window cold-starts (it is busy), one after it reuses it. Its
    concurrency stays counted until it settles; keep-alive runs from then."""
    p, _ = make(busy_overhead_s=0.02, keep_alive_s=10.0)
    env = run_one(p, 0.0)
    assert env.state == HANDOFF and p.in_flight("f") == 1 and p.idle_count("f") == 0
    assert p.next_deadline() == 0.02
    other = p.acquire("f", 0.01)
    assert other.cold and other.env is not env
    p.ready(other.env, 0.01)
    p.release(other.env, 0.015)
    assert p.acquire("f", 0.03).env is env  # env settled at 0.02; other not until 0.035
    p.release(env, 0.03)  # in hand-off until 0.05
    assert p.expire(10.04) == 1  # other: idle since 0.035, so gone at 10.035
    assert other.env.state == DEAD and env.state == IDLE and env.idle_since == 0.05
    assert p.in_flight("f") == 0 and p.next_deadline() == 10.05


def test_handoff_counts_against_reserved_concurrency():
    """With reserved concurrency 1, a call in the hand-off window is throttled
    (the environment is still reserved), one after it is not."""
    p, _ = make(functions=(FunctionSpec("f", reserved_concurrency=1),), busy_overhead_s=0.02)
    env = run_one(p, 0.0)
    with pytest.raises(Throttled):
        p.acquire("f", 0.01)
    assert p.acquire("f", 0.02).env is env


def test_environment_killed_in_its_handoff_leaves_the_model():
    p, retired = make(busy_overhead_s=0.02)
    env = run_one(p, 0.0)
    p.kill(env)
    assert env.state == DEAD and p.in_flight("f") == 0 and retired == [(env.id, "recycled")]
    assert p.acquire("f", 0.05).cold


def test_scale_rate_token_bucket():
    """1,000 new environments per 10 s per function, refilled continuously:
    the 1,001st simultaneous first call is throttled; 5 s later 500 more fit."""
    p, _ = make(account_concurrency=10_000)
    hold(p, 1000, 0.0)
    with pytest.raises(Throttled) as exc:
        p.acquire("f", 0.0)
    assert exc.value.reason == SCALE_LIMIT == "FunctionInvocationRateLimitExceeded"
    assert p.in_flight("f") == 1000
    hold(p, 500, 5.0)
    with pytest.raises(Throttled):
        p.acquire("f", 5.0)
    assert p.cold_starts == 1500 and p.counter.throttles[SCALE_LIMIT] == 2


def test_keep_alive_expiry_exact():
    p, retired = make(keep_alive_s=10.0)
    env = run_one(p, 0.0)
    assert p.next_deadline() == 10.0
    assert p.expire(9.999) == 0 and env.state == IDLE
    assert p.expire(10.0) == 1 and env.state == DEAD
    assert retired == [(env.id, "keep-alive")]
    assert p.acquire("f", 10.5).cold


def test_reuse_refreshes_keep_alive_and_stale_entries_are_skipped():
    p, _ = make(keep_alive_s=10.0)
    env = run_one(p, 0.0)
    assert run_one(p, 8.0) is env  # idle again from t=8
    assert p.expire(10.0) == 0 and env.state == IDLE
    assert p.next_deadline() == 18.0
    assert p.expire(18.0) == 1


def test_expired_environment_is_never_placed_even_without_expire_call():
    p, retired = make(keep_alive_s=10.0)
    env = run_one(p, 0.0)
    lease = p.acquire("f", 11.0)
    assert lease.cold and lease.env is not env
    assert retired == [(env.id, "keep-alive")]


def test_keep_alive_zero_means_cold_every_time():
    p, _ = make(keep_alive_s=0)
    envs = {run_one(p, float(i)).id for i in range(5)}
    assert len(envs) == 5 and p.cold_starts == 5 and not p.live


def test_max_lifetime_busy_finishes_first_then_retires():
    p, retired = make(max_lifetime_s=100.0, keep_alive_s=1000.0)
    lease = p.acquire("f", 0.0)
    p.ready(lease.env, 0.0)
    assert p.expire(150.0) == 0 and lease.env.state == BUSY  # busy: not cut short
    p.release(lease.env, 160.0)
    assert lease.env.state == DEAD and retired == [(lease.env.id, "max-lifetime")]


def test_max_lifetime_idle_reclaimed_by_expire():
    p, retired = make(max_lifetime_s=100.0, keep_alive_s=1000.0, proactive_replacement=False)
    env = run_one(p, 0.0)
    run_one(p, 50.0)
    assert p.next_deadline() == 100.0
    assert p.expire(100.0) == 1 and retired == [(env.id, "max-lifetime")]


def test_reserved_concurrency_throttles_with_function_reason():
    p, _ = make(functions=(FunctionSpec("f", reserved_concurrency=2),))
    leases = hold(p, 2, 0.0)
    with pytest.raises(Throttled) as exc:
        p.acquire("f", 0.0)
    assert exc.value.reason == RESERVED_LIMIT == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert p.in_flight("f") == 2 and p.counter.throttles[RESERVED_LIMIT] == 1
    p.release(leases[0].env, 1.0)
    assert not p.acquire("f", 1.0).cold


def test_reserved_concurrency_zero_throttles_everything():
    p, _ = make(functions=(FunctionSpec("f", reserved_concurrency=0),))
    with pytest.raises(Throttled):
        p.acquire("f", 0.0)
    assert p.in_flight("f") == 0 and not p.live


def test_account_concurrency_throttles_with_account_reason():
    p, _ = make(functions=(FunctionSpec("f"), FunctionSpec("g")), account_concurrency=3)
    hold(p, 2, 0.0, "f")
    hold(p, 1, 0.0, "g")
    with pytest.raises(Throttled) as exc:
        p.acquire("g", 0.0)
    assert exc.value.reason == ACCOUNT_LIMIT == "ConcurrentInvocationLimitExceeded"


def test_environment_cap_evicts_idle_of_other_function_then_throttles():
    p, retired = make(functions=(FunctionSpec("f"), FunctionSpec("g")), max_environments=2)
    idle_g = run_one(p, 0.0, "g")
    hold(p, 1, 1.0, "f")
    lease = p.acquire("f", 2.0)  # at the cap: g's idle environment makes room
    assert lease.cold and retired == [(idle_g.id, "evicted")]
    with pytest.raises(Throttled) as exc:
        p.acquire("f", 3.0)
    assert exc.value.reason == ACCOUNT_LIMIT
    assert p.in_flight("f") == 2 and len(p.live) == 2


def test_recycle_retires_and_next_call_is_cold():
    p, retired = make()
    lease = p.acquire("f", 0.0)
    p.ready(lease.env, 0.0)
    p.release(lease.env, 1.0, recycle=True)
    assert retired == [(lease.env.id, "recycled")]
    assert p.acquire("f", 2.0).cold


def test_kill_idle_environment_removes_it_from_placement():
    p, _ = make()
    env = run_one(p, 0.0)
    p.kill(env)
    assert p.idle_count("f") == 0 and p.acquire("f", 1.0).cold


def test_release_without_invocation_is_an_error():
    p, _ = make()
    env = run_one(p, 0.0)
    with pytest.raises(RuntimeError, match="runs no invocation"):
        p.release(env, 1.0)


def test_unknown_function():
    p, _ = make()
    with pytest.raises(UnknownFunction):
        p.acquire("nope", 0.0)


def test_shutdown_retires_everything():
    p, retired = make()
    run_one(p, 0.0)
    hold(p, 3, 1.0)  # one warm (the idle one) plus two cold
    assert p.cold_starts == 3
    assert len(p.shutdown()) == 3 and not p.live
    assert [why for _, why in retired] == ["shutdown"] * 3


def test_random_pool_swap_remove_keeps_positions():
    pool = RandomPool()
    for i in range(5):
        pool.add(i)
    pool.remove(1)
    pool.remove(4)
    rng = random.Random(0)
    assert sorted(pool.take(rng) for _ in range(3)) == [0, 2, 3]
    assert pool.take(rng) is None


@pytest.mark.parametrize(
    "data,message",
    [
        ({"policy": "sticky"}, "model.policy: 'sticky' is not one of"),
        ({"keep_alive_s": -1}, "model.keep_alive_s: must be >= 0"),
        ({"routers": 0}, "model.routers: must be >= 1"),
        ({"max_lifetime_s": "2 hours"}, "model.max_lifetime_s: '2 hours' is not a duration: cannot read"),
        ({"max_lifetime_s": "0:0"}, "model.max_lifetime_s: must be > 0, got '0:0'"),
        ({"keep_alive_s": "1:2:3"}, "model.keep_alive_s: '1:2:3' is not a distribution: A:B takes two durations"),
        ({"proactive_replacement": "yes"}, "model.proactive_replacement: expected true or false, got 'yes'"),
        ({"max_lifetime_s": [2]}, "model.max_lifetime_s: expected a finite number"),
        ({"keep_alive_s": float("nan")}, "model.keep_alive_s: expected a finite number, got nan"),
        ({"init_delay_s": float("inf")}, "model.init_delay_s: expected a finite number, got inf"),
        ({"routers": 3_000_000}, "model.routers: must be <= 10000"),
        ({"busy_overhead_s": -0.001}, "model.busy_overhead_s: must be >= 0"),
        ({"scale_limit": 0}, "model.scale_limit: must be >= 1"),
        ({"scale_window_s": 0}, "model.scale_window_s: must be > 0"),
        ({"keepalive": 3}, "model.keepalive: unknown option"),
    ],
)
def test_bad_model_config_names_the_key(data, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        ModelConfig.from_mapping(data)


def test_an_environment_reaching_its_lifetime_in_its_handoff_retires_once():
    """Its hand-off ends past its maximum lifetime: it retires, and its
    invocation leaves the concurrency count once (not twice)."""
    p, retired = make(busy_overhead_s=0.05, max_lifetime_s=1.0)
    other, lease = hold(p, 2, 0.0)  # `other` stays in flight: the count stays above zero
    env = lease.env
    p.release(env, 0.98)  # replies at 0.98, free at 1.03: past its 1 s lifetime
    assert env.state == HANDOFF and p.in_flight("f") == 2
    p.expire(1.1)
    assert env.state == DEAD and retired == [(env.id, "max-lifetime")]
    assert p.in_flight("f") == 1 and other.env.state != DEAD


@pytest.mark.parametrize("extra", [{"provisioned_concurrency": 2}, {"snapstart": True}])
def test_managed_instances_take_neither_provisioned_concurrency_nor_snapstart(extra):
    # AWS: a Managed Instances function is started ahead and scaled on utilisation; it offers neither
    with pytest.raises(ConfigError, match="not offered on Managed Instances"):
        FunctionSpec("f", per_environment_max_concurrency=4, **extra)
