"""The simulator: calibration against the seed, activity models, CLI."""

import random
import statistics

import pytest

from lambda_affinity.core.summary import summarize
from lambda_affinity.platform import ModelConfig
from lambda_affinity.sim.simulate import Scenario, parse_distribution, run, run_many

SEED_RATES = [0.63, 0.38, 0.41, 0.45, 0.47, 0.26, 0.46, 0.42, 0.43, 0.36]
SEED_MEAN = sum(SEED_RATES) / len(SEED_RATES)  # 0.427


def seed_scenario(**model):
    return Scenario(users=10, think="0:1", duration_s=10, model=ModelConfig(**model))


def pooled(scenario, runs=50, seed=7):
    tracker, totals = run_many(scenario, runs=runs, seed=seed)
    return summarize(tracker.rows(), tracker.environments), totals


@pytest.mark.parametrize("policy,low,high", [("mru", 0.50, 0.60), ("random", 0.18, 0.28)])
def test_single_pool_policies_do_not_reproduce_the_seed(policy, low, high):
    """mru alone gives about 0.54 (one or two hot environments take nearly
    every call); random alone about 0.23 (the idle pool left by the initial
    burst is shared out evenly). Neither is within 0.05 of 0.43."""
    h = pooled(seed_scenario(policy=policy))[0]["hit_rate"]
    assert low <= h["mean"] <= high, h
    assert abs(h["mean"] - 0.43) > 0.05


def test_runs_are_reproducible_with_a_seed():
    a = pooled(seed_scenario(), runs=3, seed=11)[0]
    b = pooled(seed_scenario(), runs=3, seed=11)[0]
    assert a == b


def test_counts_are_consistent():
    doc, totals = pooled(seed_scenario(), runs=5)
    assert doc["requests"] == totals["invocations"]
    assert doc["cold_starts"] == totals["cold_starts"]
    assert sum(doc["histogram"]) == doc["users"]
    # every user's first call lands on a new environment: all 10 start together
    assert doc["cold_starts"] >= 50


def test_keep_alive_zero_means_no_warm_hits():
    doc, totals = pooled(seed_scenario(keep_alive_s=0), runs=2)
    assert doc["cold_starts"] == totals["invocations"]
    assert doc["warm_cache_rate"]["max"] == 0.0


def test_reserved_concurrency_throttles_in_simulation():
    sc = seed_scenario()
    res = run(sc, seed=1)
    assert res.throttled == 0
    sc.model = ModelConfig(account_concurrency=1)
    res = run(sc, seed=1)
    assert res.throttled > 0
    assert sum(t.invalid for t in res.tracker.users.values()) == res.throttled


def test_gaps_longer_than_keep_alive_lose_the_environments():
    """Bursts of 20 quick calls. With an hour between bursts the 10-minute
    keep-alive lapses, so every burst starts cold on new environments; with a
    minute between them the bursts come back to the same warm ones."""

    def burst_run(gap):
        sc = Scenario(users=5, think="0.2:0.4", burst=20, gap=gap, duration_s=8000)
        return pooled(sc, runs=3)[0]

    long_gap, short_gap = burst_run("fixed:3600"), burst_run("fixed:60")
    assert long_gap["cold_starts"] >= 3 * 3  # runs x bursts: nothing survives a gap
    assert all(u["environments"] >= 3 for u in long_gap["per_user"])
    # The payoff shows in the warm-cache rate (about 0.98 against 0.83): the
    # max-share rate stays low for both, as routers spread a user over
    # several environments that all hold its session.
    assert short_gap["warm_cache_rate"]["mean"] > long_gap["warm_cache_rate"]["mean"] + 0.1
    assert short_gap["warm_cache_rate"]["mean"] > 2 * short_gap["hit_rate"]["mean"]


def test_spread_start_with_exponential_think():
    sc = Scenario(users=50, think="exp:5", start="spread", duration_s=120)
    doc = pooled(sc, runs=1)[0]
    assert 50 * 120 / 5 * 0.7 < doc["requests"] < 50 * 120 / 5 * 1.3


@pytest.mark.parametrize(
    "spec,check",
    [
        ("0:1", lambda xs: min(xs) >= 0 and max(xs) <= 1),
        ("exp:2", lambda xs: 1.8 < sum(xs) / len(xs) < 2.2),
        ("fixed:0.5", lambda xs: set(xs) == {0.5}),
        ("3", lambda xs: set(xs) == {3.0}),
    ],
)
def test_parse_distribution(spec, check):
    rng = random.Random(0)
    draw = parse_distribution(spec)
    assert check([draw(rng) for _ in range(4000)])


@pytest.mark.parametrize("spec", ["exp:0", "1:0", "abc", "-1", "exp:x", "1:2:3"])
def test_bad_distribution_is_a_clear_error(spec):
    with pytest.raises(ValueError, match="is not a distribution"):
        parse_distribution(spec)


@pytest.mark.parametrize(
    "spec, fixed, lowest",
    [
        ("0.08", 0.08, 0.08),
        ("fixed:0.2", 0.2, 0.2),
        (" 0 ", 0.0, 0.0),
        ("0.06:0.1", None, 0.06),
        ("fixed:0.01:0.02", None, 0.01),
        ("exp:300", None, 0.0),
    ],
)
def test_a_parsed_distribution_says_whether_it_is_fixed_and_its_lowest_value(spec, fixed, lowest):
    """What replay plans with (the fast path for a fixed round trip, how early an
    arrival can reach the platform) comes from the one parser, not a second one."""
    draw = parse_distribution(spec, "latency")
    assert draw.fixed == fixed and draw.lowest == lowest
    rng = random.Random(3)
    values = [draw(rng) for _ in range(200)]
    assert min(values) >= lowest and (fixed is None or set(values) == {fixed})
    # the mean a sweep's cost estimate uses: within 4 standard errors of 20,000 draws
    many = [draw(rng) for _ in range(20_000)]
    sd = statistics.pstdev(many)
    assert abs(statistics.fmean(many) - draw.mean) <= 4 * sd / len(many) ** 0.5 + 1e-12


def test_simulated_users_are_labelled_as_the_plugin_labels_locust_users():
    # u1, u2, ... in start order: a simulated run and a Locust run of the same scenario name
    # the same users, so their per-user files line up (the plugin counts from 1 too).
    tracker, _ = run_many(Scenario(users=3, think="0:1", duration_s=2), runs=1, seed=1)
    assert sorted(r["user"] for r in tracker.rows()) == ["u1", "u2", "u3"]
    pooled_tracker, _ = run_many(Scenario(users=2, think="0:1", duration_s=2), runs=2, seed=1)
    assert sorted(r["user"] for r in pooled_tracker.rows()) == ["r0-u1", "r0-u2", "r1-u1", "r1-u2"]
