"""Simulator throughput: 10 000 users, exponential think time (mean 30 s), one
simulated hour, about 1.2 million invocations, in one process.

Usage: python bench/simulator.py [--users N] [--duration S] [--random-seed K] [--keep-alive DIST]
Last line: simulated_invocations_per_s: N
(--keep-alive 300:900: the cost of a keep-alive each idle spell draws, against the constant default.)

Replay (--replay): a generated trace of 10 M requests over about a day (the
pauses are sized for 24 h; the line printed says the span it came to) from 50 000
users (sessions of a few calls seconds apart, then a pause; a day-night swing
in the rate), written as the plugin's gzip CSV, then replayed from the file
(streamed). Before the full replay, the cost of each part is measured on the
first --slice rows side by side: reading only, replay from memory (the model,
the probe's cache, the tracker), the same rows through the several-function path
(--function-col, --duration-col) and both together. The resident set size is
sampled as the replay goes, to show it does not grow with the trace.

Usage: python bench/simulator.py --replay [--requests N] [--users U] [--hours H] [--slice N]
Last line: replayed_invocations_per_s: N

Sweep (--sweep): `lambda-affinity sweep` of 7 points x 10 runs (users 1..1000:log:7, the seed's
scenario, about 250 000 invocations) at --jobs 1 and at --jobs every core, side by side; the two
outputs must be byte-identical.
Usage: python bench/simulator.py --sweep [--jobs N]
Last line: sweep_jobs_speedup: N
"""

import argparse
import filecmp
import heapq
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

from lambda_affinity.core.summary import summarize
from lambda_affinity.platform import FunctionSpec, ModelConfig, Platform
from lambda_affinity.sim.replay import replay
from lambda_affinity.sim.simulate import Scenario, run
from lambda_affinity.sim.trace import ReadStats, TraceWriter, read_arrivals

T0 = 1764547200.0  # 2025-12-01T00:00:00Z


def arrivals(requests: int, users: int, hours: float, seed: int):
    """`requests` (send time, user) in send order, streamed: each user's next call
    in a heap of `users` entries; `hours` is the target the pauses are sized for."""
    rng = random.Random(seed)
    span = hours * 3600.0
    # sessions of 1-20 calls (10.5 on average) 2-30 s apart (16 s): the pause
    # between sessions that makes the day hold `requests` calls
    sessions = requests / users / 10.5
    pause = max(1.0, span / sessions - 9.5 * 16)
    t0 = T0
    # each user's first session starts within its first pause: the day runs at its rate from the start
    heap = [(t0 + rng.random() * min(span, pause), u) for u in range(users)]
    heapq.heapify(heap)
    names = [f"user{u}" for u in range(users)]
    left = [0] * users
    for _ in range(requests):
        t, u = heapq.heappop(heap)
        yield t, names[u]
        if left[u] <= 0:  # a new session: 1-20 calls
            left[u] = rng.randint(1, 20)
        left[u] -= 1
        # in a session: think 2-30 s; between sessions: a long pause, shorter by day
        day = 1.0 + 0.6 * math.sin(2 * math.pi * ((t - t0) % 86400) / 86400)
        gap = rng.uniform(2, 30) if left[u] else rng.expovariate(day / pause)
        heapq.heappush(heap, (t + gap, u))


def generate(path: str, requests: int, users: int, hours: float, seed: int) -> tuple[float, float]:
    """Write arrivals() as the plugin's trace. Returns (the seconds it took, the hours the rows span)."""
    started = time.perf_counter()
    t = T0
    with TraceWriter(path) as w:
        for t, user in arrivals(requests, users, hours, seed):
            w.write(t, None, user, user, None, None, None, True)
    return time.perf_counter() - started, (t - T0) / 3600.0


def model_alone(arrivals: list, seed: int) -> float:
    """Seconds the platform model takes for these arrivals on its own: each
    call placed, then released 6 ms later (no cache, no tally, no heap)."""
    platform = Platform(ModelConfig(), [FunctionSpec("probe")], rng=random.Random(seed))
    acquire, release = platform.acquire, platform.release
    started = time.perf_counter()
    for t, _user in arrivals:
        release(acquire("probe", t).env, t + 0.006)
    return time.perf_counter() - started


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def replay_bench(args) -> None:
    folder = tempfile.mkdtemp(prefix="replay-bench-")
    path = os.path.join(folder, "trace.csv.gz")
    try:
        took, hours = generate(path, args.requests, args.users, args.hours, args.seed)
        print(
            f"generated {args.requests} requests, {args.users} users, over {hours:.1f} h "
            f"(target {args.hours:g} h): {os.path.getsize(path) / 1e6:.0f} MB gzip in {took:.1f} s"
        )
        scenario = Scenario(latency="0")
        # per part, on the first --slice rows, side by side in this run
        head = []
        started = time.perf_counter()
        for item in read_arrivals(path):
            head.append(item)
            if len(head) >= args.slice:
                break
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        replay(head, scenario, seed=args.seed)
        replay_s = time.perf_counter() - started
        platform_s = model_alone(head, args.seed)
        # the same rows through the several-function path (--function-col, --duration-col), one function named
        rows = [(t, user, None, "probe") for t, user in head]
        started = time.perf_counter()
        replay(rows, scenario, seed=args.seed, columns=True)
        columns_s = time.perf_counter() - started
        n = len(head)
        del head, rows
        print(
            f"per request on the first {n} rows: read {read_s / n * 1e6:.2f} us, replay from memory "
            f"{replay_s / n * 1e6:.2f} us, of which the platform model alone {platform_s / n * 1e6:.2f} us "
            f"(read / replay = {read_s / replay_s:.2f}, model / replay = {platform_s / replay_s:.2f}); "
            f"through the function-column path {columns_s / n * 1e6:.2f} us (x{columns_s / replay_s:.2f})"
        )
        # the whole file, streamed; the peak RSS sampled every 10 % of it
        samples = []
        step = max(1, args.requests // 10)

        def sampled(items):
            for i, item in enumerate(items, 1):
                if i % step == 0:
                    samples.append(f"{rss_mb():.0f}")
                yield item

        stats = ReadStats()
        started = time.perf_counter()
        result = replay(sampled(read_arrivals(path, stats=stats)), scenario, seed=args.seed)
        elapsed = time.perf_counter() - started
        doc = summarize(result.tracker.rows(), result.tracker.environments, per_user_limit=0)
        print(
            f"replayed {stats.rows} rows over {stats.span_s / 3600:.1f} h: {result.invocations} invocations, "
            f"{result.cold_starts} cold starts, {result.throttled} throttled, peak concurrency "
            f"{result.peak_concurrency}"
        )
        print(
            f"mean_max_share: {doc['hit_rate']['mean']:.3f}  mean_warm_cache_rate: {doc['warm_cache_rate']['mean']:.3f}"
        )
        print(f"peak_rss_mb every 10 % of the replay: {' '.join(samples)}")
        print(f"wall_seconds_replay: {elapsed:.1f}")
        print(f"replayed_invocations_per_s: {stats.rows / elapsed:.0f}")
    finally:
        if os.path.exists(path):
            os.remove(path)
        os.rmdir(folder)


def sweep_bench(jobs: int, seed: int) -> None:
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as folder:  # the outputs go with it
        _sweep_bench(folder, jobs, seed)


def _sweep_bench(folder: str, jobs: int, seed: int) -> None:
    took = {}
    for n in (1, jobs):
        out = os.path.join(folder, str(n))
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "lambda_affinity.cli",
                "sweep",
                "--vary",
                "users=1..1000:log:7",
                "--runs",
                "10",
                "--duration",
                "60",
                "--random-seed",
                str(seed),
                "--jobs",
                str(n),
                "--out",
                out,
            ],
            check=True,
            capture_output=True,
        )
        took[n] = time.perf_counter() - started
        print(f"sweep --jobs {n}: {took[n]:.1f} s")
    names = sorted(os.listdir(os.path.join(folder, "1")))
    same = all(filecmp.cmp(os.path.join(folder, "1", f), os.path.join(folder, str(jobs), f), False) for f in names)
    print(f"byte-identical outputs: {same}")
    print(f"sweep_jobs_speedup: {took[1] / took[jobs]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--duration", type=float, default=3600.0)
    ap.add_argument("--random-seed", "--seed", dest="seed", type=int, default=1)
    ap.add_argument("--keep-alive", default=None, metavar="DIST", help="the model's keep-alive (default its own)")
    ap.add_argument("--replay", action="store_true", help="the replay bench (see the module doc)")
    ap.add_argument("--requests", type=int, default=10_000_000)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--slice", type=int, default=500_000)
    ap.add_argument("--sweep", action="store_true", help="the sweep's --jobs speed-up (see the module doc)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    if args.sweep:
        sweep_bench(args.jobs, args.seed)
        return
    if args.replay:
        if args.users == 10_000:  # the synthetic bench's default; the replay bench's is 50 000
            args.users = 50_000
        replay_bench(args)
        return
    model = ModelConfig() if args.keep_alive is None else ModelConfig(keep_alive_s=args.keep_alive)
    scenario = Scenario(users=args.users, think="exp:30", duration_s=args.duration, start="spread", model=model)
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
