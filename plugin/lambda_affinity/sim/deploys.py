"""When a simulated run deploys its function: `--deploy-at T,...` (fixed times) and `--deploy-every DIST`
(intervals drawn from a distribution, the first from t=0), merged in time order. Pure.

A deploy moves every later call to new environments (Platform.deploy); this module only says when.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator

from ..errors import LambdaAffinityError
from ..platform.distributions import DistributionError, DurationError, parse_distribution, parse_duration

# A run deploying more often than this is a mistake (a zero or tiny interval would loop for ever).
MAX_DEPLOYS = 100_000


class DeployError(LambdaAffinityError, ValueError):
    """A deploy schedule that does not parse or cannot end."""


def parse_deploy_at(text: str, what: str = "deploy_at") -> tuple[float, ...]:
    """`T,...` (durations: 30, 5m, 1h30m) -> seconds in time order; "" -> ()."""
    if not text.strip():
        return ()
    times = []
    for i, item in enumerate(text.split(","), 1):
        if not item.strip():
            raise DeployError(f"{what}: time {i} of {text!r} is empty; give T,... (e.g. 30,5m)")
        try:
            times.append(parse_duration(item, what))
        except DurationError as exc:
            raise DeployError(str(exc)) from None
    return tuple(sorted(times))


def check_schedule(every: str, at: str) -> None:
    """Refuse a schedule that does not parse, or whose interval is always zero."""
    parse_deploy_at(at)
    if every:
        try:
            dist = parse_distribution(every, "deploy_every")
        except DistributionError as exc:
            raise DeployError(str(exc)) from None
        if dist.mean <= 0:
            raise DeployError(f"deploy_every: {every!r} is never more than 0 s; give a mean interval > 0")


def deploy_times(every: str, at: str, duration_s: float, rng: random.Random) -> Iterator[float]:
    """The run's deploy times before `duration_s`, in order (lazily: `every` draws as it goes)."""
    check_schedule(every, at)
    fixed = iter(t for t in parse_deploy_at(at) if t < duration_s)
    drawn = _every(parse_distribution(every, "deploy_every"), duration_s, rng) if every else iter(())
    for n, t in enumerate(heapq.merge(fixed, drawn)):
        if n >= MAX_DEPLOYS:
            raise DeployError(f"more than {MAX_DEPLOYS} deploys in one run: give deploy_every a larger interval")
        yield t


def _every(dist, duration_s: float, rng: random.Random) -> Iterator[float]:
    t = dist(rng)
    while t < duration_s and math.isfinite(t):
        yield t
        t += dist(rng)
