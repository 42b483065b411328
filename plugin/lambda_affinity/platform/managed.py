"""Lambda Managed Instances: environments that take many invocations at once, scaled on utilisation.

What AWS documents (docs/model.md, "Managed Instances", cites each):
- an environment takes up to `PerExecutionEnvironmentMaxConcurrency` (K, at most 1,600) invocations at once;
- publishing a version starts three environments before the version is ACTIVE; FunctionScalingConfig's
  MinExecutionEnvironments / MaxExecutionEnvironments (0-15,000) bound the fleet;
- it "does not scale when invocations arrive and does not support cold starts": a scaler acts asynchronously
  on "CPU resource utilization and multi-concurrency saturation"; a call no environment can take is
  throttled (HTTP 429), as are calls when "traffic more than doubles within 5 minutes";
- "if Router attempts to send an invocation to an execution environment with high resource consumption,
  the Lambda Agent on that instance notifies it to retry on another"; scale-down is gradual.

The rule this module runs (ours where AWS gives no number; each driver uses it as is):
- every `ModelConfig.managed_scale_interval_s` the scaler reads the peak demand since its last action
  (calls in flight, plus calls refused within the last second) and wants ceil(peak / (K x managed_target_utilisation))
  environments, within [min, max] and at most twice the fewest it had in the last 5 minutes;
- new environments initialise in the background (`init_delay_s`) and only then take calls: their first
  call is a new-environment call (Start.NEW_ENVIRONMENT), never a cold start;
- below the wanted count, one idle environment retires per action (gradual scale-down); one lost to a
  crash or a timeout is replaced at once while the fleet is below its minimum, else at the next action;
- placement: the router picks an environment uniformly at random among those with a free slot (a full
  one "retries on another"); keep-alive and max lifetime do not apply (AWS documents neither for it).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .concurrency import SCALE_LIMIT, ConcurrencyCounter
from .environment import BUSY, DEAD, IDLE, INITIALIZING, Environment, Start, log_stream_name
from .managed_runtimes import (
    CACHE_SCOPES,
    MAX_ENV_CONCURRENCY,
    MAX_EXECUTION_ENVIRONMENTS,
    cache_count,
    default_cache_scope,
    runtime_family,
    runtime_problem,
)

__all__ = [
    "CACHE_SCOPES",
    "MAX_ENV_CONCURRENCY",
    "MAX_EXECUTION_ENVIRONMENTS",
    "ManagedFleet",
    "cache_count",
    "default_cache_scope",
    "runtime_family",
    "runtime_problem",
]

if TYPE_CHECKING:
    from .config import FunctionSpec, ModelConfig


class Host(Protocol):
    """What a fleet uses of its Platform (scheduler.py), which imports this module."""

    config: ModelConfig
    counter: ConcurrencyCounter
    rng: random.Random
    live: dict[str, Environment]
    wall_offset: float
    new_environment_calls: int
    warm_starts: int

    def _retire(self, env: Environment, reason: str) -> None: ...


# AWS: "starts three execution environments before marking your function version ACTIVE".
DEFAULT_MIN_ENVIRONMENTS = 3
# AWS: throttles "if your traffic more than doubles within 5 minutes".
GROWTH_WINDOW_S = 300.0
GROWTH_FACTOR = 2
# Calls refused within this long of each other count as demand at once (ours: a client retrying a
# throttled call a second later is the same demand, not a new one).
REFUSED_WINDOW_S = 1.0
SCALED_IN = "scaled-in"  # a retirement reason: the scaler removed an idle environment


class ManagedFleet:
    """One Managed Instances function's environments and its scaler, driven by the Platform."""

    def __init__(self, platform: Host, spec: FunctionSpec) -> None:
        assert spec.per_environment_max_concurrency is not None
        self.platform = platform
        self.spec = spec
        self.k = spec.per_environment_max_concurrency
        self.high = spec.max_execution_environments
        low = DEFAULT_MIN_ENVIRONMENTS if spec.min_execution_environments is None else spec.min_execution_environments
        self.low = low if self.high is None else min(low, self.high)
        self.envs: list[Environment] = []
        self.in_flight: dict[Environment, int] = {}
        self.total = 0  # calls in flight on this fleet
        self.peak = 0  # the scaler's signal: most demand seen since its last action
        self._refused: deque = deque()  # when calls were refused in the last REFUSED_WINDOW_S: demand too
        self._lost = 0  # environments recycled under a call since the last tick
        self._draining: set[Environment] = set()  # of an earlier version: they retire once their calls end
        self._deploy_reason = "deploy"
        self.next_tick: float | None = None  # None until the version is published (the first `tick`)
        self._history: deque = deque()  # (time, environments) of the last GROWTH_WINDOW_S
        self._initializing: deque = deque()  # (ready_at, env): the model's own init (no driver hook)
        # The driver's hook for a new environment: it initialises it and calls Platform.ready.
        # None (the simulator): ready after the model's init_delay_s.
        self.on_create: Callable[[Environment], None] | None = None

    # -- calls -------------------------------------------------------------------
    def acquire(self, now: float) -> tuple[Environment, Start]:
        """Place one call on an environment with a free slot (Throttled when none has one)."""
        p = self.platform
        self.tick(now)
        name = self.spec.name
        p.counter.admit(name, self.spec.reserved_concurrency)
        k, load = self.k, self.in_flight
        free = [e for e in self.envs if e.state in (IDLE, BUSY) and load[e] < k]
        if not free:
            p.counter.done(name)
            refused = self._refused
            refused.append(now)
            while refused[0] < now - REFUSED_WINDOW_S:
                refused.popleft()
            self.peak = max(self.peak, self.total + len(refused))
            ready = sum(1 for e in self.envs if e.state in (IDLE, BUSY))
            p.counter.refuse(SCALE_LIMIT, name, ready * k)
        env = free[int(p.rng.random() * len(free))] if len(free) > 1 else free[0]
        load[env] += 1
        self.total += 1
        self.peak = max(self.peak, self.total)
        env.state = BUSY
        env.last_used = now
        env.invocations += 1
        if env.invocations == 1:
            p.new_environment_calls += 1
            return env, Start.NEW_ENVIRONMENT
        p.warm_starts += 1
        return env, Start.WARM

    def release(self, env: Environment, now: float, recycle: bool) -> None:
        self.total -= 1
        left = self.in_flight.get(env, 1) - 1
        env.last_used = now
        if env.state == DEAD:
            self.in_flight.pop(env, None)
            self._draining.discard(env)
            return
        self.in_flight[env] = left
        if recycle:  # its process ended or must: every call on it is lost, as on AWS
            self.platform._retire(env, "recycled")
            self._lost += 1 if env not in self._draining else 0
            self._draining.discard(env)
        elif left == 0 and env in self._draining:
            self._draining.discard(env)
            self.platform._retire(env, self._deploy_reason)
        elif left == 0:
            env.state = IDLE
            env.idle_since = now

    def ready(self, env: Environment, now: float) -> None:
        """Its init is done (the driver's, or the model's delay): it takes calls from now on."""
        if env.state == INITIALIZING:
            env.ready_at = env.idle_since = now
            env.state = BUSY if self.in_flight[env] else IDLE

    def deploy(self, now: float, reason: str) -> int:
        """A new version takes every later call: the fleet's idle environments retire (`reason`), busy ones
        drain (they take no new call and retire once their last ends), and the new version's first
        environments start, as publishing one does. Returns how many are left draining."""
        self.tick(now)
        self._deploy_reason = reason
        for env in self.envs:
            if env.state == DEAD:
                continue
            if self.in_flight.get(env):
                self._draining.add(env)
            else:
                self.platform._retire(env, reason)
        self.envs = []
        self._history.clear()
        for _ in range(self.low):
            self._create(now, initial=True)
        return len(self._draining)

    # -- the scaler --------------------------------------------------------------
    def tick(self, now: float) -> int:
        """Run the scaler's actions due by `now`; returns how many environments it retired."""
        if self.next_tick is None:  # publishing the version: its first environments, ready before ACTIVE
            self.next_tick = now + self.platform.config.managed_scale_interval_s
            for _ in range(self.low):
                self._create(now, initial=True)
        retired = 0
        interval = self.platform.config.managed_scale_interval_s
        if self._lost:  # lost to a crash or a timeout: replaced at once while the fleet is below its minimum
            for _ in range(min(self._lost, self.low - sum(1 for e in self.envs if e.state != DEAD))):
                self._create(now)
            self._lost = 0
        while self.next_tick <= now:
            self._settle(self.next_tick)
            retired += self._scale(self.next_tick)
            self.next_tick += interval
        self._settle(now)
        return retired

    def next_deadline(self) -> float | None:
        times = [self.next_tick] if self.next_tick is not None else []
        if self._initializing:
            times.append(self._initializing[0][0])
        return min(times) if times else None

    def wanted(self) -> int:
        """Environments the last interval's peak demand asks for, at the target utilisation."""
        target = self.platform.config.managed_target_utilisation
        return math.ceil(self.peak / (self.k * target) - 1e-9)

    def _scale(self, t: float) -> int:
        self.envs = live = [e for e in self.envs if e.state != DEAD]
        self.in_flight = {e: n for e, n in self.in_flight.items() if n or e.state != DEAD}
        count = len(live)
        history = self._history
        history.append((t, count))
        while history and history[0][0] < t - GROWTH_WINDOW_S:
            history.popleft()
        want = max(self.low, self.wanted())
        if self.high is not None:
            want = min(want, self.high)
        # At most double what it had in the last 5 minutes: beyond that, AWS documents throttles.
        want = min(want, max(GROWTH_FACTOR * min(n for _, n in history), self.low, 1))
        self.peak = self.total
        for _ in range(want - count):
            if not self._create(t):
                break
        if want < count:
            idle = [e for e in live if e.state == IDLE]
            if idle:
                oldest = min(idle, key=lambda e: e.idle_since or 0.0)
                self.platform._retire(oldest, SCALED_IN)
                return 1
        return 0

    def _create(self, now: float, initial: bool = False) -> bool:
        p = self.platform
        cap = p.config.max_environments
        if cap is not None and len(p.live) >= cap:
            return False  # the machine's cap: the scaler tries again at its next action
        env_id = log_stream_name(now + p.wall_offset, self.spec.version, p.rng.getrandbits(128))
        env = Environment(env_id, self.spec.name, self.spec.version, 0, now)
        env.invocations = 0
        p.live[env_id] = env
        self.envs.append(env)
        self.in_flight[env] = 0
        if self.on_create is not None:
            self.on_create(env)
        elif initial:
            self.ready(env, now)
        else:
            self._initializing.append((now + p.config.init_delay_s, env))
        return True

    def _settle(self, now: float) -> None:
        q = self._initializing
        while q and q[0][0] <= now:
            ready_at, env = q.popleft()
            self.ready(env, ready_at)
