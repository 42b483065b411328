"""What the platform model must hold at once: each known fact about Lambda's
placement and lifecycle (docs/model.md, "Constraints") as a test of the
default model in the simulator. The same facts in the emulator, with real
processes, are in test_emulator_constraints.py.
"""

from __future__ import annotations

import random

import pytest

from lambda_affinity.core.summary import summarize
from lambda_affinity.platform import SCALE_LIMIT, FunctionSpec, ModelConfig, Platform, Throttled
from lambda_affinity.sim.simulate import Scenario, run, run_many

SEED_RATES = [0.63, 0.38, 0.41, 0.45, 0.47, 0.26, 0.46, 0.42, 0.43, 0.36]


def one_user(think: str, duration_s: float, **model) -> tuple[dict, int]:
    """A lone user, pooled over 20 runs: (summary, cold starts)."""
    sc = Scenario(users=1, think=think, duration_s=duration_s, model=ModelConfig(**model))
    tracker, totals = run_many(sc, runs=20, seed=5)
    return summarize(tracker.rows(), tracker.environments), totals["cold_starts"]


def test_c1_serial_calls_reuse_one_environment():
    """C1: one user, calls 1-2 s apart for 10 min: 1 cold start, 1
    environment, max-share 1.0 (in each of 20 runs)."""
    doc, cold = one_user("1:2", 600)
    assert cold == 20 and doc["environments"] == 20
    assert all(u["environments"] == 1 and u["max_share"] == 1.0 for u in doc["per_user"])
    assert doc["hit_rate"]["min"] == 1.0 and doc["warm_cache_rate"]["min"] > 0.99


def test_c1_back_to_back_calls_reuse_one_environment():
    """C1, tightest form: an in-region client calling again the moment its
    reply lands (1 ms round trip, no think time) still finds its environment."""
    sc = Scenario(users=1, think="0", duration_s=30, latency="0.001", service="0.001:0.003")
    res = run(sc, seed=3)
    assert res.invocations > 5000 and res.cold_starts == 1


def test_c2_a_call_every_5_minutes_stays_warm_every_11_minutes_is_cold():
    """C2: idle environments live about 10 minutes."""
    doc, cold = one_user("fixed:300", 3600)
    assert cold == 20 and doc["requests"] == 20 * 12
    doc, cold = one_user("fixed:660", 3600)
    assert cold == doc["requests"] == 20 * 6  # every call cold


@pytest.mark.parametrize("users,think", [(50, "exp:2"), (200, "exp:30"), (20, "0:0.3")])
def test_c3_environments_follow_peak_concurrency(users, think):
    """C3: a new environment only when every existing one is busy, so the
    environments made never exceed peak concurrency plus those retired (here
    a 1 s keep-alive makes them come and go)."""
    sc = Scenario(users=users, think=think, start="spread", duration_s=600, model=ModelConfig(keep_alive_s=1.0))
    res = run(sc, seed=11)
    assert res.retired > 0
    assert res.cold_starts <= res.peak_concurrency + res.retired


def test_c3_no_cold_start_while_an_idle_environment_lives():
    """C3, checked at every cold start of a random workload on the default
    placement: no idle environment of the function was left."""
    rng = random.Random(4)
    p = Platform(ModelConfig(keep_alive_s=5.0), [FunctionSpec("f")], rng=random.Random(1))
    running, now, colds = [], 0.0, 0
    for _ in range(20000):
        now += rng.expovariate(50.0)
        while running and (rng.random() < 0.5 or len(running) > 40):
            p.release(running.pop(rng.randrange(len(running))), now)
        lease = p.acquire("f", now)
        if lease.cold:
            colds += 1
            assert p.idle_count("f") == 0
            p.ready(lease.env, now)
        running.append(lease.env)
    assert colds > 50  # the keep-alive and the bursts made it cold-start often


@pytest.mark.parametrize("n", [1, 10, 100, 1000])
def test_c4_simultaneous_first_calls_make_one_environment_each(n):
    sc = Scenario(users=n, think="fixed:30", duration_s=1, start="together")
    res = run(sc, seed=2)
    assert res.invocations == res.cold_starts == n == res.peak_concurrency
    assert res.tracker.environments == n


def test_c5_the_seed_scenario():
    """C5: 10 users starting together, think U(0,1) s, 10 s, pooled over 50
    runs: mean max-share 0.43 +- 0.05, p10 and p90 inside the seed's spread."""
    sc = Scenario(users=10, think="0:1", duration_s=10)
    tracker, _ = run_many(sc, runs=50, seed=7)
    h = summarize(tracker.rows(), tracker.environments)["hit_rate"]
    assert abs(h["mean"] - 0.43) <= 0.05, h
    assert min(SEED_RATES) <= h["p10"] and h["p90"] <= max(SEED_RATES), h


def test_c6_scale_out_is_limited_to_1000_new_environments_per_10_s():
    """C6: 1,500 users calling at once (account concurrency raised above
    them): 1,000 environments, 500 throttled (AWS answers 429); the throttled
    users come back 5-6 s later, when the bucket has refilled by 500-600."""
    sc = Scenario(
        users=1500,
        think="fixed:5",
        duration_s=6,
        latency="0.001",
        service="fixed:60",
        model=ModelConfig(account_concurrency=5000, init_delay_s=0.0),
    )
    res = run(sc, seed=1)
    assert res.throttled == 500 and res.cold_starts == 1500 and res.peak_concurrency == 1500
    invalid = sum(u.invalid for u in res.tracker.users.values())
    assert invalid == 500  # each throttle is one invalid reply of the user it hit


def test_c6_the_bucket_refills_continuously():
    p = Platform(ModelConfig(account_concurrency=5000), [FunctionSpec("f")])
    for _ in range(1000):
        p.acquire("f", 0.0)
    with pytest.raises(Throttled) as exc:
        p.acquire("f", 0.0)
    assert exc.value.reason == SCALE_LIMIT
    for _ in range(900):  # 9 s later: 900 refilled, not 1,000 at once at 10 s
        p.acquire("f", 9.0)
    with pytest.raises(Throttled):
        p.acquire("f", 9.0)
    assert p.cold_starts == 1900


def test_c7_busy_environments_are_replaced_every_two_hours():
    """C7: a user calling every 1-2 s for 3 hours: the environment it keeps
    busy is replaced once, at its 2-hour lifetime."""
    doc, cold = one_user("1:2", 3 * 3600, proactive_replacement=False)
    assert cold == 40 and all(u["environments"] == 2 for u in doc["per_user"])
    # With proactive replacement (the default) the second environment was initialised ahead:
    # replaced just the same, but only each run's first call waited for an init.
    doc, cold = one_user("1:2", 3 * 3600)
    assert cold == 20 and all(u["environments"] == 2 for u in doc["per_user"])


def test_the_mru_fit_breaks_back_to_back_reuse():
    """Why the default is not a single MRU pool with a longer hand-off: that
    pool reproduces the seed only with ~25 ms of busy overhead (docs/model.md),
    and then a client calling back to back cold-starts a second environment."""
    seed_fit = dict(policy="mru", busy_overhead_s=0.025)
    sc = Scenario(users=10, think="0:1", duration_s=10, model=ModelConfig(**seed_fit))
    tracker, _ = run_many(sc, runs=50, seed=7)
    assert abs(summarize(tracker.rows(), tracker.environments)["hit_rate"]["mean"] - 0.43) <= 0.05
    sc = Scenario(
        users=1, think="0", duration_s=30, latency="0.001", service="0.001:0.003", model=ModelConfig(**seed_fit)
    )
    assert run(sc, seed=3).cold_starts >= 2
