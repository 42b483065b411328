"""What tallying a wrapped function's x-affinity-* headers costs per request, next to what Locust
itself spends on the same request's statistics, in one process and one run.

Each figure is the median of --rounds timings of --calls calls, CPU time (time.process_time):

- locust_stats: Locust's own per-request bookkeeping (`RequestStats.log_request`, what its request
  listener does for every request of every user);
- tally_hit: the plugin's request listener on a reply with the wrapper's five headers
  (requests' CaseInsensitiveDict, as an HttpUser's response has): parse, per-user and per-endpoint tally;
- tally_plain: the listener on a reply without `x-affinity-env` (a static asset): looked at, not counted;
- tally_other_user: the listener on a request of a user the plugin did not start (no label in its context).

Usage: python bench/header_tally.py [--rounds 7] [--calls 50000]
Last line: header_tally_ratio: R  (tally_hit / locust_stats: the plugin's cost per request in Locust's own units)
"""

from __future__ import annotations

import argparse
import statistics
import time

from locust import HttpUser
from locust.env import Environment
from requests.structures import CaseInsensitiveDict

from lambda_affinity.locust_plugin import plugin_for
from lambda_affinity.locust_plugin.header_users import CONTEXT_KEY


class App(HttpUser):
    host = "http://127.0.0.1:9"


class Reply:
    def __init__(self, headers: dict) -> None:
        self.headers = CaseInsensitiveDict(headers)


def timed(fn, calls: int) -> float:
    started = time.process_time()
    for i in range(calls):
        fn(i)
    return (time.process_time() - started) / calls * 1e6  # µs per call


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=50_000)
    args = ap.parse_args()
    env = Environment(user_classes=[App])
    plugin = plugin_for(env)
    users = [f"u{i}" for i in range(100)]
    for label in users:
        plugin.tracker.register(label)
    wrapped = [
        Reply(
            {
                "Content-Type": "application/json",
                "x-affinity-env": f"2026/12/03/[$LATEST]{e:032x}",
                "x-affinity-cold": "0",
                "x-affinity-env-invocations": "41",
                "x-affinity-session-hit": "1",
                "x-affinity-init-age-ms": "52310",
            }
        )
        for e in range(8)
    ]
    plain = Reply({"Content-Type": "text/css", "Content-Length": "1200"})
    contexts = [{CONTEXT_KEY: u} for u in users]
    names = ["/items/[id]", "/cart", "login", "/search"]
    stats = env.stats
    on_request = plugin.headers.on_request

    cases = {
        "locust_stats": lambda i: stats.log_request("GET", names[i & 3], 12, 420),
        "tally_hit": lambda i: on_request(
            name=names[i & 3],
            response=wrapped[(i >> 4) & 7],
            context=contexts[i % 100],
            start_time=1.0,
            response_time=12,
        ),
        "tally_plain": lambda i: on_request(
            name="/static.css", response=plain, context=contexts[i % 100], start_time=1.0, response_time=3
        ),
        "tally_other_user": lambda i: on_request(name="/x", response=wrapped[0], context={}, start_time=1.0),
    }
    results: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():  # interleaved: machine noise falls on each alike
            results[name].append(timed(fn, args.calls))
    med = {k: statistics.median(v) for k, v in results.items()}
    for k, v in med.items():
        print(f"{k:18} {v:7.2f} µs per request (min {min(results[k]):.2f}, max {max(results[k]):.2f})")
    print(f"header_tally_ratio: {med['tally_hit'] / med['locust_stats']:.2f}")


if __name__ == "__main__":
    main()
