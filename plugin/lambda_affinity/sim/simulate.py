"""Virtual-time driver of the platform model (discrete events).

Two sources of traffic: synthetic users (`run`, a closed loop: each waits
for its reply, then thinks) and a replayed trace (`replay`, an open loop:
requests arrive at the times the trace says, whatever the model does).

Users loop like the seed's script: send a request, wait for the reply,
think, repeat while the send time is before `duration`. A request reaches
the platform after half the network round trip, runs `service` seconds on
its environment (plus the model's init delay when cold), and the reply comes
back after the other half. The simulated probe keeps a per-environment
session cache (the probe's own SessionCache class), so warm-cache rates are
as the real probe would report them.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from probe_lambda.handler import SessionCache

from ..core.schema import user_label
from ..core.tracker import Tracker
from ..errors import LambdaAffinityError
from ..platform import FunctionSpec, ModelConfig, Platform, Throttled

# Re-exported: callers and tests import it from here.
from ..platform.distributions import parse_distribution
from ..platform.environment import KEEP_ALIVE, Start
from .deploys import check_schedule, deploy_times
from .executors import Executor, Serial
from .functions import FunctionTallies, check_shards, pool_functions, shard_of, shard_specs
from .managed_caches import slot_caches_factory

FUNCTION = "probe"
# The probe's own bounds on its cache (AFFINITY_CACHE_SIZE, AFFINITY_CACHE_TTL_S: wrapper/python's state.py).
MAX_CACHE_SIZE = 1_000_000
CACHE_TTL_RANGE_S = (0.001, 86400.0)


class ScenarioError(LambdaAffinityError, ValueError):
    """A scenario option (or the run count) is out of range."""


@dataclass
class Scenario:
    users: int = 10
    duration_s: float = 10.0
    think: str = "0:1"
    # Requests per session; sessions are separated by `gap`. 0 = one endless session.
    burst: int = 0
    gap: str = "exp:300"
    # `together`: every user sends at t=0 (the seed); `spread`: a first think first.
    start: str = "together"
    # Network round trip client <-> Lambda front end, and time on the environment.
    latency: str = "0.06:0.1"
    service: str = "0.003:0.009"
    cache_size: int = 10000
    cache_ttl_s: float = 900.0
    model: ModelConfig = field(default_factory=ModelConfig)
    # The one function users call: its own knobs (reserved concurrency, ...) as the emulator's config has them.
    function: FunctionSpec = field(default_factory=lambda: FunctionSpec(FUNCTION))
    # Deploys of the function (sim.deploys): a distribution of intervals, and/or fixed times "T,...".
    deploy_every: str = ""
    deploy_at: str = ""
    # Users hashed to this many copies of `function`, each with its own pool (sim.functions).
    shards: int = 1

    def validate(self) -> None:
        if self.users < 1:
            raise ScenarioError("users: must be >= 1")
        if not 0 < self.duration_s < math.inf:  # also refuses NaN
            raise ScenarioError("duration: must be a finite number > 0")
        if self.burst < 0:
            raise ScenarioError("burst: must be >= 0")
        if self.start not in ("together", "spread"):
            raise ScenarioError("start: must be 'together' or 'spread'")
        # here too, not only where a run draws: a sweep checks every point before it runs one
        for name in ("think", "gap", "latency", "service"):
            parse_distribution(getattr(self, name), name)
        check_schedule(self.deploy_every, self.deploy_at)
        check_cache(self.cache_size, self.cache_ttl_s)
        check_shards(self.shards)


def check_cache(size: object, ttl_s: object) -> None:
    """The probe's cache as the emulator's probe takes it (its AFFINITY_CACHE_SIZE, AFFINITY_CACHE_TTL_S)."""
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_CACHE_SIZE:
        raise ScenarioError(f"cache_size: must be a whole number from 1 to {MAX_CACHE_SIZE:,}, got {size!r}")
    lo, hi = CACHE_TTL_RANGE_S
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float)) or not lo <= ttl_s <= hi:
        raise ScenarioError(f"cache_ttl_s: must be from {lo:g} to {hi:g} seconds, got {ttl_s!r}")


@dataclass
class RunResult:
    tracker: Tracker
    invocations: int
    cold_starts: int
    throttled: int
    # Most invocations in flight at once (hand-offs included): environments
    # ~= peak concurrency is the fact the model is held to (docs/model.md C3).
    peak_concurrency: int = 0
    retired: int = 0
    deploys: int = 0
    # first calls on environments initialised ahead (Start.NEW_ENVIRONMENT): no wait, an empty cache
    new_environment_calls: int = 0
    # calls that ran on an on-demand environment of a function with provisioned concurrency
    spillover: int = 0
    # environments reclaimed by keep-alive: none, and a longer keep-alive would have run the very same
    keep_alive_retired: int = 0
    # Several functions (shards, a replay's function column): each one's users, and its throttled calls.
    functions: dict[str, Tracker] = field(default_factory=dict)
    function_throttled: dict[str, int] = field(default_factory=dict)


NEW_ENVIRONMENT = Start.NEW_ENVIRONMENT


def _serve(
    lease, key, now: float, busy: float, cache_size: int, cache_ttl: float, ready, managed=None
) -> tuple[float, bool, int]:
    """A call just placed: a new environment gets the probe's session cache
    and the init delay (a cold one) or none (one initialised ahead). Returns (how long the environment is busy,
    cache hit, the Managed Instances slot that took it: 0 on-demand)."""
    if managed is not None:
        return (busy, *_serve_managed(lease, key, now, managed))
    env = lease.env
    if lease.cold:
        env.handle = SessionCache(cache_size, cache_ttl)
        busy += lease.init_delay_s
        ready(env, now + lease.init_delay_s)
    elif env.handle is None:  # initialised ahead by the model: its cache is as empty as a cold one's
        env.handle = SessionCache(cache_size, cache_ttl)
    return busy, env.handle.lookup(key, now)[0], 0


def _serve_managed(lease, key, now: float, new_caches) -> tuple[bool, int]:
    """A call on a Managed Instances environment: the slot (process, worker loop) that takes it, and
    whether that slot's cache held the key (sim/managed_caches.py). Returns (cache hit, slot)."""
    env = lease.env
    if env.handle is None:
        env.handle = new_caches()
    slot = env.handle.take()
    return env.handle.cache(slot).lookup(key, now)[0], slot


def run(
    scenario: Scenario, seed: int | None = None, tracker: Tracker | None = None, user_prefix: str = ""
) -> RunResult:
    """One independent run. Users are named `{user_prefix}u1`, `u2`, ... in start order, as the plugin
    names Locust's users (core.schema.user_label)."""
    scenario.validate()
    rng = random.Random(seed)
    think = parse_distribution(scenario.think, "think")
    gap = parse_distribution(scenario.gap, "gap")
    latency = parse_distribution(scenario.latency, "latency")
    service = parse_distribution(scenario.service, "service")
    specs = shard_specs(scenario.function, scenario.shards)
    platform = Platform(scenario.model, specs, rng=random.Random(rng.random()))
    platform.provision(0.0)  # provisioned concurrency: initialised before the first call
    tracker = tracker if tracker is not None else Tracker()
    record = tracker.record
    acquire, release, ready = platform.acquire, platform.release, platform.ready
    duration = scenario.duration_s
    burst = scenario.burst
    cache_size, cache_ttl = scenario.cache_size, scenario.cache_ttl_s
    names = [user_prefix + user_label(i + 1) for i in range(scenario.users)]
    # each user's function: its shard's, by a stable hash of its name (shard_of)
    calls = [specs[shard_of(name, len(specs)) if len(specs) > 1 else 0].name for name in names]
    shards = FunctionTallies(s.name for s in specs) if len(specs) > 1 else None
    left_in_burst = [burst] * scenario.users
    managed = _managed_caches(scenario)
    slot_of = [0] * scenario.users  # a Managed Instances call's slot, until it ends
    invocations = throttled = peak = deployed = 0
    counter = platform.counter  # its total is the account's in-flight count, over every function

    # Events: (time, user, env). env None = the request arrives at the
    # platform; otherwise the invocation on env finishes. A user has one
    # event in flight at a time, so (time, user) never ties further.
    heap = _first_sends(scenario, think, latency, rng)
    push, pop = heapq.heappush, heapq.heappop

    def next_send(u: int, reply_at: float) -> None:
        pause = think(rng)
        if burst:
            left_in_burst[u] -= 1
            if left_in_burst[u] <= 0:
                left_in_burst[u] = burst
                pause = gap(rng)
        send = reply_at + pause
        if send < duration:
            push(heap, (send + latency(rng) / 2, u, None))

    # Deploys are events too, user -1: before any call at the same instant. Their own generator,
    # drawn only when deploys are asked for: runs without them draw as they always did.
    deploys: Iterator[float] = iter(())
    if scenario.deploy_every or scenario.deploy_at:
        deploys = deploy_times(scenario.deploy_every, scenario.deploy_at, duration, random.Random(rng.random()))
        _next_deploy(heap, deploys)
    expire_every = max(1.0, min(scenario.model.keep_alive.lowest, 60.0))
    next_expire = expire_every
    while heap:
        now, u, env = pop(heap)
        if now >= next_expire:
            platform.expire(now)
            next_expire = now + expire_every
        if u < 0:
            _deploy(platform, specs, now)
            deployed += 1
            _next_deploy(heap, deploys)
            continue
        if env is not None:
            if managed is not None:
                env.handle.give(slot_of[u])
            release(env, now)
            # the reply travels back, then the user thinks
            next_send(u, now + latency(rng) / 2)
            continue
        try:
            lease = acquire(calls[u], now)
        except Throttled:
            throttled += 1
            tracker.record_invalid(names[u])
            if shards is not None:
                shards.refused(calls[u], names[u])
            next_send(u, now + latency(rng) / 2)
            continue
        invocations += 1
        n = counter.total
        if n > peak:
            peak = n
        env = lease.env
        busy, hit, slot_of[u] = _serve(lease, u, now, service(rng), cache_size, cache_ttl, ready, managed)
        # Recorded now, the reply lands later: order per user is unchanged.
        record(names[u], env.id, lease.cold, hit, lease.start is NEW_ENVIRONMENT)
        if shards is not None:
            shards.record(calls[u], names[u], env.id, lease.cold, hit, lease.start is NEW_ENVIRONMENT)
        push(heap, (now + busy, u, env))
    res = _result(platform, tracker, invocations, throttled, peak)
    res.deploys = deployed  # deploy events: a sharded function's deploys every shard at once
    if shards is not None:
        shards.report(res)
    return res


def _first_sends(scenario: Scenario, think, latency, rng: random.Random) -> list:
    """The event heap with each user's first request (drawn in user order, as the runs always drew them)."""
    heap = []
    for u in range(scenario.users):
        t0 = think(rng) if scenario.start == "spread" else 0.0
        if t0 < scenario.duration_s:
            heap.append((t0 + latency(rng) / 2, u, None))
    heapq.heapify(heap)  # (time, user, None): users are distinct, so the order is the pushes' order
    return heap


def _deploy(platform: Platform, specs: list, now: float) -> None:
    """A sharded function is deployed whole: every shard at once."""
    for spec in specs:
        platform.deploy(spec.name, now)


def _result(platform: Platform, tracker: Tracker, invocations: int, throttled: int, peak: int) -> RunResult:
    retired = sum(platform.retired.values())
    return RunResult(
        tracker,
        invocations,
        platform.cold_starts,
        throttled,
        peak,
        retired,
        platform.deploys,
        platform.new_environment_calls,
        platform.spillover,
        platform.retired.get(KEEP_ALIVE, 0),
    )


def _next_deploy(heap: list, deploys: Iterator[float]) -> None:
    t = next(deploys, None)
    if t is not None:
        heapq.heappush(heap, (t, -1, None))


def check_runs(runs: int) -> None:
    """Pooled runs (of a scenario or a trace's replay) need one at least."""
    if runs < 1:
        raise ScenarioError("runs: must be >= 1")


class RunTask(NamedTuple):
    """One of pooled runs: an executor's task (`run_task`)."""

    scenario: Scenario
    seed: int
    user_prefix: str


def run_task(_shared: None, task: RunTask) -> RunResult:
    return run(task.scenario, seed=task.seed, user_prefix=task.user_prefix)


def pool_runs(results: Iterable[RunResult]) -> tuple[Tracker, dict]:
    """Runs' trackers folded into one (in run order), and their totals."""
    tracker = Tracker()
    totals: dict = {
        "invocations": 0,
        "cold_starts": 0,
        "new_environment_calls": 0,
        "throttled": 0,
        "deploys": 0,
        "spillover": 0,
    }
    per_function = []
    for res in results:
        tracker.absorb(res.tracker)
        for key in totals:
            totals[key] += getattr(res, key)
        per_function.append((res.functions, res.function_throttled))
    functions, throttled = pool_functions(per_function)
    if functions:  # several functions: their own tallies, pooled across runs (sim.functions.function_rows)
        totals["functions"], totals["function_throttled"] = functions, throttled
    return tracker, totals


def run_many(
    scenario: Scenario,
    runs: int = 1,
    seed: int | None = None,
    executor: Executor | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Tracker, dict]:
    """`runs` independent runs (on `executor`, default here; the same results on any), per-user rows
    pooled in one tracker; `progress` hears (runs done, runs)."""
    check_runs(runs)
    base = random.Random(seed)
    tasks = [RunTask(scenario, base.getrandbits(64), f"r{r}-" if runs > 1 else "") for r in range(runs)]
    done = 0

    def heard(_task: int) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, runs)

    return pool_runs((executor or Serial()).map(run_task, tasks, done=heard))


def _managed_caches(scenario: Scenario):
    """For a Managed Instances function, the maker of each environment's caches; else None."""
    spec = scenario.function
    if spec.per_environment_max_concurrency is None:
        return None
    size, ttl = scenario.cache_size, scenario.cache_ttl_s
    return slot_caches_factory(spec, lambda: SessionCache(size, ttl))
