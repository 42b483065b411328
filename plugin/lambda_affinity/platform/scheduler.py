"""The platform model: Lambda's scheduler, pure and clock-injected.

Every method takes `now` (seconds, any origin) from its caller, so the
emulator drives it with the wall clock and the simulator with a virtual one.
No I/O, no threads: the emulator calls it from one gevent loop, so no call
is ever interleaved with another.

Life of an invocation:
    lease = platform.acquire("fn", now)    # warm (idle env) or cold (new env)
    platform.ready(lease.env, now)         # cold only: init finished
    platform.release(lease.env, now)       # replied: idle after the hand-off
                                           # (busy_overhead_s), or retired
The hand-off is settled lazily, whenever the model is next asked anything,
so neither driver needs a timer for it.
Retired environments are announced through `on_retire(env, reason)` so the
driver can stop the process that backs them; environments initialised ahead
of any call (`preinitialize`: provisioned concurrency, proactive replacement)
through `on_preinit(env)`, so it can start one.

Deadlines. Each environment draws a keep-alive for every idle spell and a
maximum lifetime when it is made (ModelConfig: constants or distributions).
Keep-alive deadlines sit in a heap holding about one entry per environment:
an environment reused before its entry comes due keeps it, and the entry,
once due, is pushed again at the environment's current deadline (so a busy
environment costs no heap work per call). Lifetime events (the start of a
replacement's init, the end of a lifetime) sit in a second heap and are
handled, in time order, before anything the model is asked at or after their
time: what happens never depends on how often the driver calls `expire`.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Iterable
from heapq import heappop, heappush

from ..errors import LambdaAffinityError
from .concurrency import ACCOUNT_LIMIT, SCALE_LIMIT, ConcurrencyCounter, ScaleRate, Throttled
from .config import FunctionSpec, ModelConfig
from .distributions import parse_distribution
from .environment import (  # the retirement reasons, imported from here too
    BUSY,
    DEAD,
    DEPLOY,
    EVICTED,
    HANDOFF,
    IDLE,
    INIT_FAILED,
    INITIALIZING,
    KEEP_ALIVE,
    LIFETIME,
    RECYCLED,
    SHUTDOWN,
    SNAP_START,
    Environment,
    Start,
    log_stream_name,
)
from .lifetimes import END, NOTICE, REPLACEMENT_LEAD_S, REPLACEMENT_LEAD_SHARE, Lifetimes, _twin_seeded
from .managed import ManagedFleet
from .placement import IdlePool, ProvisionedFirst, make_pool

__all__ = [
    "DEPLOY",
    "EVICTED",
    "INIT_FAILED",
    "KEEP_ALIVE",
    "LIFETIME",
    "RECYCLED",
    "SHUTDOWN",
    "Lease",
    "Platform",
    "UnknownFunction",
]


class UnknownFunction(LambdaAffinityError, KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Lease:
    """Where an invocation runs. `start` says how it met its environment: a COLD one must init first."""

    __slots__ = ("env", "start", "init_delay_s")

    def __init__(self, env: Environment, start: Start, init_delay_s: float) -> None:
        self.env = env
        self.start = start
        self.init_delay_s = init_delay_s

    @property
    def cold(self) -> bool:
        """The call waits for an init (a user-facing cold start)."""
        return self.start is Start.COLD


class Platform(Lifetimes):
    def __init__(
        self,
        config: ModelConfig | None = None,
        functions: Iterable[FunctionSpec] = (),
        rng: random.Random | None = None,
        on_retire: Callable[[Environment, str], None] | None = None,
        wall_offset: float = 0.0,
        on_preinit: Callable[[Environment], None] | None = None,
    ) -> None:
        self.config = config or ModelConfig()
        self.rng = rng or random.Random()
        self.on_retire = on_retire
        # Told of each environment `preinitialize` makes, to run its init and then call `initialized`
        # (the emulator starts a process); None: its init is done at once (the simulator).
        self.on_preinit = on_preinit
        restore = self.config.restore_delay
        self._restore_delay = None if restore is None else parse_distribution(restore, "restore_delay")
        # Added to `now` to date log stream names (the simulator's clock starts at 0).
        self.wall_offset = wall_offset
        self.functions: dict[str, FunctionSpec] = {}
        self._pools: dict[str, IdlePool[Environment]] = {}
        self.counter = ConcurrencyCounter(self.config.account_concurrency)
        self.scale_rate = ScaleRate(self.config.scale_limit, self.config.scale_window_s)
        # (free_at, env) of replied environments still in their hand-off; the
        # overhead is one constant, so release order is free_at order.
        self._handoff: deque = deque()
        self.live: dict[str, Environment] = {}
        # A constant is used as such: drawing costs a call, and the hot loop goes idle once per call.
        keep_alive, lifetime = self.config.keep_alive, self.config.max_lifetime
        self._keep_alive, self._keep_alive_fixed = keep_alive, keep_alive.fixed
        self._lifetime, self._lifetime_fixed = lifetime, lifetime.fixed
        self._no_keep_alive = keep_alive.fixed == 0  # released environments retire at once
        # Keep-alive and lifetime draws have a generator of their own, seeded without drawing from
        # `rng`: placement sees the same random numbers whatever they are (a sweep over them compares
        # like with like).
        self._draws = _twin_seeded(self.rng)
        self._replace = self.config.proactive_replacement
        # (deadline, seq, env): keep-alive deadlines, checked lazily (the module's docstring).
        self._idle_heap: list = []
        # (time, seq, env, NOTICE | END), and the earliest time in it (inf: none).
        self._events: list = []
        self._next_event = math.inf
        self._seq = itertools.count()  # ties in a heap never reach the environments
        # Calls by how they met their environment (Start): cold ones waited for an init;
        # new-environment ones were first on an environment initialised beforehand.
        self.cold_starts = 0
        self.new_environment_calls = 0
        self.warm_starts = 0
        # Calls of a function with provisioned concurrency that ran on an on-demand environment
        # (AWS's metric ProvisionedConcurrencySpilloverInvocations).
        self.spillover = 0
        self.retired: dict[str, int] = {}
        self.deploys = 0
        # Environments of a function deployed since they were made: their in-flight call ends, then they retire.
        self._draining: set[Environment] = set()
        # Managed Instances functions (per_environment_max_concurrency set): their own fleet and scaler.
        self.managed: dict[str, ManagedFleet] = {}
        for spec in functions:
            self.add_function(spec)

    # -- functions -----------------------------------------------------
    def add_function(self, spec: FunctionSpec) -> None:
        if spec.name in self.functions:
            raise ValueError(f"function {spec.name!r} already registered")
        self.functions[spec.name] = spec
        c = self.config
        pool = make_pool(c.policy, c.routers, c.router_policy)
        if spec.provisioned_concurrency:
            pool = ProvisionedFirst(make_pool(c.policy, c.routers, c.router_policy), pool)
        self._pools[spec.name] = pool
        if spec.per_environment_max_concurrency is not None:
            self.managed[spec.name] = ManagedFleet(self, spec)

    # -- the invocation path ---------------------------------------------
    def acquire(self, function: str, now: float) -> Lease:
        """Place one invocation. Raises UnknownFunction or Throttled."""
        spec = self.functions.get(function)
        if spec is None:
            raise UnknownFunction(function)
        if self._handoff or now >= self._next_event:
            self._advance(now)
        fleet = self.managed.get(function)
        if fleet is not None:  # Managed Instances: never a cold start
            return Lease(*fleet.acquire(now), 0.0)
        self.counter.admit(function, spec.reserved_concurrency)
        pool = self._pools[function]
        router = pool.route(self.rng)
        env = self._take_idle(pool, router, now)
        if env is not None:
            env.state = BUSY
            env.last_used = now
            if spec.provisioned_concurrency and not env.provisioned:
                self.spillover += 1
            env.invocations += 1
            if env.invocations == 1:  # initialised before any call came
                self.new_environment_calls += 1
                return Lease(env, Start.NEW_ENVIRONMENT, 0.0)
            self.warm_starts += 1
            return Lease(env, Start.WARM, 0.0)
        try:
            env = self._create(spec, router, now)
        except Throttled:
            self.counter.done(function)
            raise
        env.invocations = 1
        self.cold_starts += 1
        if spec.provisioned_concurrency:
            self.spillover += 1
        if spec.snapstart:
            env.init_type = SNAP_START
        return Lease(env, Start.COLD, self._init_delay(spec))

    def _init_delay(self, spec: FunctionSpec) -> float:
        """The modelled wait of a cold start: SnapStart's is a restore."""
        restore = self._restore_delay
        if not spec.snapstart or restore is None:
            return self.config.init_delay_s
        return restore(self.rng)

    def ready(self, env: Environment, now: float) -> None:
        """A cold environment finished its init and now runs its first invocation."""
        fleet = self.managed.get(env.function)
        if fleet is not None:
            fleet.ready(env, now)
        elif env.state == INITIALIZING and env.invocations:  # not one initialised ahead of any call
            env.state = BUSY
            env.ready_at = now

    def release(self, env: Environment, now: float, recycle: bool = False) -> None:
        """The invocation on `env` ended (its reply is on its way). `recycle`
        retires the environment (handler timeout, crash, init error), as
        Lambda does. Otherwise it stays reserved for `busy_overhead_s` (its
        concurrency still counted), then goes idle."""
        if env.state not in (BUSY, INITIALIZING, DEAD):
            raise RuntimeError(f"release of {env!r}, which runs no invocation")
        fleet = self.managed.get(env.function)
        if fleet is not None:
            fleet.release(env, now, recycle)
            self.counter.done(env.function)
            return
        if now >= self._next_event:
            self._advance(now)
        env.last_used = now
        if env.state == DEAD:
            self.counter.done(env.function)
            return
        if recycle:
            self._retire(env, RECYCLED)
        elif env in self._draining:
            self._retire(env, DEPLOY)
        elif now >= env.retire_at:
            self._retire(env, LIFETIME)
        elif self._no_keep_alive and not env.provisioned:
            self._retire(env, KEEP_ALIVE)
        elif self.config.busy_overhead_s > 0:
            env.state = HANDOFF
            self._handoff.append((now + self.config.busy_overhead_s, env))
            return  # counted until it settles
        else:
            self._go_idle(env, now)
        self.counter.done(env.function)

    def _go_idle(self, env: Environment, now: float) -> None:
        env.state = IDLE
        env.idle_since = now
        self._pools[env.function].add(env)
        if env.provisioned:  # kept however long it idles
            env.expires_at = math.inf
            return
        keep_alive = self._keep_alive_fixed
        if keep_alive is None:
            keep_alive = self._keep_alive(self._draws)  # each idle spell draws its own (docs/model.md)
        env.expires_at = deadline = now + keep_alive
        queued = env.queued_at
        if queued is None or deadline < queued:
            self._queue_idle(env)
        # else its entry comes due first and is pushed again then

    def _queue_idle(self, env: Environment) -> None:
        env.queued_at = deadline = env.expires_at
        heappush(self._idle_heap, (deadline, next(self._seq), env))

    def kill(self, env: Environment, reason: str = RECYCLED, now: float | None = None) -> None:
        """Retire an environment now, whatever its state (e.g. its process died
        while idle or in its hand-off). A busy one still needs its `release`.
        `now`: when, if known (a provisioned environment's replacement is made as of then)."""
        if env.state == IDLE:
            self._pools[env.function].remove(env)
        if env.state != DEAD:
            self._retire(env, reason, now)

    def deploy(self, function: str, now: float) -> int:
        """A new version of `function` takes every later call (as on AWS: a code or configuration update,
        or traffic moved to a published version): its idle environments retire now, busy ones drain
        (their call ends, then they retire). Returns how many environments it leaves draining."""
        if function not in self.functions:
            raise UnknownFunction(function)
        if self._handoff or now >= self._next_event:
            self._advance(now)
        self.deploys += 1
        fleet = self.managed.get(function)
        if fleet is not None:
            return fleet.deploy(now, DEPLOY)
        for env in self.environments(function):
            if env.state == IDLE:
                self._pools[function].remove(env)
                self._retire(env, DEPLOY, now)
            elif env.state == HANDOFF:
                self._retire(env, DEPLOY, now)  # its call has ended: _retire counts it done
            elif env.state == INITIALIZING and not env.invocations:
                self._retire(env, DEPLOY, now)  # made ahead of any call (a replacement): of the old version
            else:
                self._draining.add(env)
        return sum(1 for env in self._draining if env.function == function)

    # -- the passage of time ------------------------------------------------
    def expire(self, now: float) -> int:
        """Reclaim idle environments past keep-alive or max lifetime, and start
        the replacements due; returns how many were retired. Busy ones past
        their lifetime finish first and retire on release."""
        n = self._advance(now)
        n += sum(fleet.tick(now) for fleet in self.managed.values())
        q = self._idle_heap
        while q and q[0][0] <= now:
            deadline, _, env = heappop(q)
            if env.queued_at != deadline:
                continue  # superseded by an earlier entry of its own
            env.queued_at = None
            if env.state != IDLE:
                continue  # in use: queued again when next idle
            if env.expires_at <= now:
                self._pools[env.function].remove(env)
                self._retire(env, KEEP_ALIVE)
                n += 1
            else:
                self._queue_idle(env)  # reused since: its current deadline
        return n

    def next_deadline(self) -> float | None:
        """When `expire` next has work, or None: the emulator sleeps until then."""
        h = self._handoff
        while h and h[0][1].state != HANDOFF:
            h.popleft()
        fleets = (fleet.next_deadline() for fleet in self.managed.values())
        soonest = min(
            self._next_event, self._idle_front(), h[0][0] if h else math.inf, *(t for t in fleets if t is not None)
        )
        return None if soonest == math.inf else soonest

    def _idle_front(self) -> float:
        """The earliest keep-alive deadline (inf: none), its heap entry made exact: refreshed, or
        dropped, entries of environments reused since they were queued."""
        q = self._idle_heap
        while q:
            deadline, _, env = q[0]
            if env.queued_at == deadline and env.state == IDLE and env.expires_at == deadline:
                return deadline
            heappop(q)
            if env.queued_at == deadline:
                env.queued_at = None
                if env.state == IDLE:
                    self._queue_idle(env)
        return math.inf

    def shutdown(self) -> list[Environment]:
        """Retire every environment (the driver is stopping); returns them."""
        envs = list(self.live.values())
        for env in envs:
            if env.state == IDLE:
                self._pools[env.function].remove(env)
            self._retire(env, SHUTDOWN)
        return envs

    # -- views -----------------------------------------------------------------
    def environments(self, function: str | None = None) -> list[Environment]:
        return [e for e in self.live.values() if function is None or e.function == function]

    def idle_count(self, function: str) -> int:
        fleet = self.managed.get(function)
        if fleet is not None:  # Managed Instances: its environments with no call in flight
            return sum(1 for env in fleet.envs if env.state == IDLE)
        return len(self._pools[function])

    def in_flight(self, function: str) -> int:
        return self.counter.in_flight(function)

    # -- internals ---------------------------------------------------------
    def _take_idle(self, pool, router: int, now: float) -> Environment | None:
        take, rng = pool.take, self.rng
        while True:
            env = take(rng, router)
            if env is None:
                return None
            # Keep-alive is enforced here too, so placement never depends on how punctually the
            # driver calls `expire` (lifetimes: acquire handled their events first).
            if now >= env.expires_at:
                self._retire(env, KEEP_ALIVE)
            else:
                return env

    def _create(self, spec: FunctionSpec, router: int, now: float) -> Environment:
        if not self.scale_rate.take(spec.name, now):
            self.counter.refuse(SCALE_LIMIT, spec.name, self.config.scale_limit)
        cap = self.config.max_environments
        if cap is not None and len(self.live) >= cap and not self._evict_one():
            self.counter.refuse(ACCOUNT_LIMIT, spec.name, cap)
        return self._new_environment(spec, router, now)

    def _new_environment(
        self, spec: FunctionSpec, router: int | None, now: float, provisioned: bool = False
    ) -> Environment:
        """A new environment (its own lifetime, its lifetime events); `router` None: a random one."""
        env_id = log_stream_name(now + self.wall_offset, spec.version, self.rng.getrandbits(128))
        if router is None:
            router = self._pools[spec.name].route(self.rng)
        env = Environment(env_id, spec.name, spec.version, router, now)
        env.provisioned = provisioned
        lifetime = self._lifetime_fixed
        if lifetime is None:
            lifetime = self._lifetime(self._draws)  # drawn once, when it is made
        env.retire_at = now + lifetime
        self.live[env_id] = env
        if self._replace and not provisioned:
            lead = min(REPLACEMENT_LEAD_S, lifetime * REPLACEMENT_LEAD_SHARE)
            self._push_event(env.retire_at - lead, env, NOTICE)
        else:
            self._push_event(env.retire_at, env, END)
        return env

    def _evict_one(self) -> bool:
        """Reclaim the idle environment of any function nearest its keep-alive's end (with a
        constant keep-alive: the longest idle)."""
        if self._idle_front() == math.inf:
            return False
        env = self._idle_heap[0][2]
        self._pools[env.function].remove(env)
        self._retire(env, EVICTED)
        return True

    def _retire(self, env: Environment, reason: str, now: float | None = None) -> None:
        """`now`: when, if the caller knows (a provisioned environment's replacement is made as of then)."""
        self._draining.discard(env)
        if env.state == HANDOFF:
            self.counter.done(env.function)  # its invocation ended; no release follows
        env.state = DEAD
        env.dead_reason = reason
        self.live.pop(env.id, None)
        self.retired[reason] = self.retired.get(reason, 0) + 1
        if self.on_retire is not None:
            self.on_retire(env, reason)
        if env.provisioned and reason not in (SHUTDOWN, INIT_FAILED):
            # AWS keeps the allocated number: a provisioned environment that ends is replaced, as of
            # its last call or the end of its lifetime (the lifetime events' heap takes any order), or of
            # `now` (a deploy: the new version's, not as of the old one's last call)
            if now is None:
                now = max(env.last_used, env.retire_at) if reason == LIFETIME else env.last_used
            self.preinitialize(self.functions[env.function], now, provisioned=True)
