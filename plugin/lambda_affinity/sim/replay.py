"""Open-loop replay of a trace through the platform model, in virtual time (sim.simulate's other driver).

Requests arrive at the times the trace says, whatever the model does; the calls themselves are served as
`sim.simulate.run`'s are (the probe's session cache, the init delay when cold, Managed Instances' slots).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from ..core.tracker import Tracker
from ..platform import Platform, Throttled
from ..platform.distributions import parse_distribution
from .functions import Routes
from .managed_caches import SlotCaches
from .simulate import NEW_ENVIRONMENT, RunResult, Scenario, ScenarioError, _managed_caches, _result, _serve
from .trace import Arrival, ReadStats, read_arrivals
from .trace_columns import read_columns


class ReplayFileTask(NamedTuple):
    """One of pooled replays of a trace file, read by the task itself (streamed)."""

    path: str
    time_col: str | None
    user_col: str | None
    max_disorder_s: float
    scenario: Scenario
    seed: int
    user_prefix: str
    duration_col: str | None = None
    function_col: str | None = None


def replay_file_task(_shared: None, task: ReplayFileTask) -> tuple[RunResult, ReadStats]:
    stats = ReadStats()
    if task.duration_col is None and task.function_col is None:  # the fast path (bench/simulator.py --replay)
        arrivals = read_arrivals(task.path, task.time_col, task.user_col, task.max_disorder_s, stats)
        return replay(arrivals, task.scenario, seed=task.seed, user_prefix=task.user_prefix), stats
    rows = read_columns(
        task.path, task.time_col, task.user_col, task.duration_col, task.function_col, task.max_disorder_s, stats
    )
    return replay(rows, task.scenario, seed=task.seed, user_prefix=task.user_prefix, columns=True), stats


def replay(
    arrivals: Iterable[Arrival],
    scenario: Scenario,
    seed: int | None = None,
    tracker: Tracker | None = None,
    user_prefix: str = "",
    columns: bool = False,
) -> RunResult:
    """Open-loop replay: each (time, user) of `arrivals`, in time order,
    reaches the platform half a round trip (`scenario.latency`) after its
    time and runs `scenario.service` seconds (plus the init delay when
    cold). Uses the scenario's latency, service, cache and model; its users,
    think time and duration do not apply. Streams: memory holds the calls in
    flight and the per-user tallies, not the trace.

    `columns`: arrivals are (time, user, duration, function) (sim.trace_columns): a row's duration,
    when not None, is its time on the environment instead of a draw of `scenario.service`; its
    function, when not None, the function it calls (each one met is added to the one platform, a
    copy of `scenario.function`'s knobs, under the one account concurrency); else, with
    `scenario.shards` > 1, the user's shard (sim.functions.shard_of).

    Speed (bench/simulator.py --replay): arrivals come sorted, so they skip
    the event heap when the round trip is fixed (its default, 0, takes a
    trace's times as arrivals at Lambda's front end); only completions go
    through it. A random round trip reorders arrivals a little, and they
    pass through the heap too.
    """
    _no_deploys(scenario)
    rng = random.Random(seed)
    if scenario.shards > 1 and not columns:  # each row's function is its user's shard
        arrivals, columns = ((t, user, None, None) for t, user in arrivals), True
    platform = Platform(scenario.model, [] if columns else [scenario.function], rng=random.Random(rng.random()))
    tracker = tracker if tracker is not None else Tracker()
    routes = Routes(platform, scenario, parse_distribution(scenario.service, "service"), rng) if columns else None
    invocations, throttled, peak = _replay_loop(arrivals, scenario, platform, tracker, rng, user_prefix, routes)
    res = _result(platform, tracker, invocations, throttled, peak)
    if routes is not None:
        routes.report(res)
    return res


def _replay_loop(
    arrivals: Iterable[Arrival],
    scenario: Scenario,
    platform: Platform,
    tracker: Tracker,
    rng: random.Random,
    user_prefix: str,
    routes: Routes | None,
) -> tuple[int, int, int]:
    """replay's events; returns (invocations, throttled, peak concurrency)."""
    service = parse_distribution(scenario.service, "service")
    latency = parse_distribution(scenario.latency, "latency")
    fixed = latency.fixed
    record, record_invalid = tracker.record, tracker.record_invalid
    acquire, release, ready = platform.acquire, platform.release, platform.ready
    function = scenario.function.name
    cache_size, cache_ttl = scenario.cache_size, scenario.cache_ttl_s
    counter = platform.counter  # its total is the account's in-flight count, over every function
    managed = _managed_caches(scenario)
    heap: list = []
    push, pop = heapq.heappush, heapq.heappop
    invocations = throttled = peak = 0
    expire_every = max(1.0, min(scenario.model.keep_alive.lowest, 60.0))
    next_expire = -math.inf
    last = -math.inf
    # Completions: (time, 0, env id, slot, env); arrivals (random round trip only, _Jittered):
    # (time, 1, sequence, arrival). A completion at the same time goes first.
    half = fixed / 2 if fixed is not None else 0.0
    columns = routes is not None
    source = _provisioned_at_start(platform, iter(arrivals), routes)
    jittered = _Jittered(source, heap, latency, rng, release) if fixed is None else None
    while True:
        if jittered is None:
            item = next(source, None)
            if item is None:
                break
            t, user = (item[0], item[1]) if columns else item
            if t < last:
                raise ValueError(f"arrivals out of time order: {t!r} after {last!r} (user {user!r})")
            last = t
            now = t + half
            while heap and heap[0][0] <= now:
                _complete(pop(heap), release)
        else:
            event = jittered.next()
            if event is None:
                break
            now, item = event
            user = item[1]
        if now >= next_expire:
            platform.expire(now)
            next_expire = now + expire_every
        label = user_prefix + user if user_prefix else user
        if routes:
            function = routes.function(item)
        try:
            lease = acquire(function, now)
        except Throttled:
            throttled += 1
            record_invalid(label)
            if routes:
                routes.refused(function, label)
            continue
        invocations += 1
        n = counter.total
        if n > peak:
            peak = n
        env = lease.env
        busy, hit, slot = _serve(
            lease, user, now, routes.busy(item) if routes else service(rng), cache_size, cache_ttl, ready, managed
        )
        record(label, env.id, lease.cold, hit, lease.start is NEW_ENVIRONMENT)
        if routes:
            routes.record(function, label, env.id, lease.cold, hit, lease.start is NEW_ENVIRONMENT)
        push(heap, (now + busy, 0, env.id, slot, env))
    _drain(heap, release)
    return invocations, throttled, peak


class _Jittered:
    """replay's arrivals with a random round trip: each reaches the platform at its own time, so
    they pass through the event heap too, taken from the sorted source only while one could still
    reach the platform before the heap's head (the earliest a round trip allows)."""

    def __init__(self, source, heap: list, latency, rng: random.Random, release) -> None:
        self.source, self.heap, self.latency, self.rng, self.release = source, heap, latency, rng, release
        self.lowest_half = latency.lowest / 2
        self.pending = next(source, None)  # the next arrival not yet taken
        self.last = -math.inf
        self.seq = 0

    def next(self) -> tuple | None:
        """(time it reaches the platform, arrival) of the next arrival; completions before it are released."""
        heap = self.heap
        while True:
            pending = self.pending
            while pending is not None and (not heap or pending[0] + self.lowest_half <= heap[0][0]):
                t = pending[0]
                if t < self.last:
                    raise ValueError(f"arrivals out of time order: {t!r} after {self.last!r} (user {pending[1]!r})")
                self.last = t
                self.seq += 1
                heapq.heappush(heap, (t + self.latency(self.rng) / 2, 1, self.seq, pending))
                pending = self.pending = next(self.source, None)
            if not heap:
                return None
            event = heapq.heappop(heap)
            if event[1] == 0:
                _complete(event, self.release)
                continue
            return event[0], event[3]


def _provisioned_at_start(platform: Platform, source: Iterator[Arrival], routes: Routes | None) -> Iterator[Arrival]:
    """Provisioned concurrency initialised as of the trace's first time, whatever its clock (`routes`: of each
    function as it is first met, as of that time too); `source` unchanged."""
    first = next(source, None)
    if first is None:
        return source
    if routes is not None:
        routes.provisioned_at = first[0]
    platform.provision(first[0])
    return itertools.chain((first,), source)


def _no_deploys(scenario: Scenario) -> None:
    if scenario.deploy_every or scenario.deploy_at:
        raise ScenarioError("deploy_every, deploy_at: deploys apply to synthetic users, not to a replayed trace")


def _drain(heap: list, release) -> None:
    """Ends replay: the calls still in flight complete, in time order
    (only completions are left once every arrival has been taken)."""
    while heap:
        _complete(heapq.heappop(heap), release)


def _complete(done: tuple, release) -> None:
    """A completion event (time, 0, env id, slot, env): a Managed Instances slot waits on /next again."""
    env = done[4]
    if isinstance(env.handle, SlotCaches):
        env.handle.give(done[3])
    release(env, done[0])
