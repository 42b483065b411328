"""Simulator throughput: 10 000 users, exponential think time (mean 30 s), one
simulated hour, about 1.2 million invocations, in one process.

Usage: python bench/simulator.py [--users N] [--duration S] [--seed K]
Last line: simulated_invocations_per_s: N
"""
import argparse
import time

from lambda_affinity.simulate import Scenario, run
from lambda_affinity.summary import summarize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--duration", type=float, default=3600.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    scenario = Scenario(users=args.users, think="exp:30", duration_s=args.duration, start="spread")
    started = time.perf_counter()
    result = run(scenario, seed=args.seed)
    simulated = time.perf_counter() - started
    doc = summarize(result.tracker.rows(), result.tracker.environments)
    total = time.perf_counter() - started
    print(f"users: {args.users}  simulated_seconds: {args.duration:g}")
    print(f"invocations: {result.invocations}  cold_starts: {result.cold_starts}  environments: {doc['environments']}")
    print(f"mean_max_share: {doc['hit_rate']['mean']:.3f}  mean_warm_cache_rate: {doc['warm_cache_rate']['mean']:.3f}")
    print(f"wall_seconds_simulation: {simulated:.2f}  wall_seconds_with_summary: {total:.2f}")
    print(f"simulated_invocations_per_s: {result.invocations / simulated:.0f}")


if __name__ == "__main__":
    main()
