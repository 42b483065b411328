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
driver can stop the process that backs them.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable

from ..errors import LambdaAffinityError
from .concurrency import ACCOUNT_LIMIT, SCALE_LIMIT, ConcurrencyCounter, ScaleRate, Throttled
from .config import ConfigError, FunctionSpec, ModelConfig
from .distributions import parse_distribution
from .environment import (
    BUSY,
    DEAD,
    HANDOFF,
    IDLE,
    INITIALIZING,
    PROVISIONED,
    SNAP_START,
    Environment,
    Start,
    log_stream_name,
)
from .managed import ManagedFleet
from .placement import IdlePool, ProvisionedFirst, make_pool

# Reasons an environment is retired, as counted in `Platform.retired`.
KEEP_ALIVE = "keep-alive"
LIFETIME = "max-lifetime"
RECYCLED = "recycled"  # error, timeout, crash: the driver asked
EVICTED = "evicted"  # reclaimed to stay under max_environments
SHUTDOWN = "shutdown"
# A deploy (new code or configuration, a published version traffic moves to): the function's
# environments of before retire, idle ones at once, busy ones when their call ends.
DEPLOY = "deploy"
INIT_FAILED = "init-failed"  # a pre-initialised environment's init failed: not replaced


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


class Platform:
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
        # keep-alive deadlines in release order; entries go stale lazily.
        self._idle_queue: deque = deque()
        # creation order = lifetime-expiry order, since max_lifetime is constant.
        self._age_queue: deque = deque()
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
        if self._handoff:
            self._settle(now)
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
        elif env.state == INITIALIZING:
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
        env.last_used = now
        if env.state == DEAD:
            self.counter.done(env.function)
            return
        if recycle:
            self._retire(env, RECYCLED)
        elif env in self._draining:
            self._retire(env, DEPLOY)
        elif now - env.created_at >= self.config.max_lifetime_s:
            self._retire(env, LIFETIME)
        elif self.config.keep_alive_s <= 0 and not env.provisioned:
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
        env.idle_token += 1
        self._pools[env.function].add(env)
        if not env.provisioned:  # provisioned ones are kept however long they idle
            self._idle_queue.append((now + self.config.keep_alive_s, env, env.idle_token))

    def _settle(self, now: float) -> None:
        """Environments whose hand-off ended by `now` go idle (as of then)."""
        q = self._handoff
        while q and q[0][0] <= now:
            free_at, env = q.popleft()
            if env.state != HANDOFF:
                continue  # killed meanwhile
            if free_at - env.created_at >= self.config.max_lifetime_s:
                self._retire(env, LIFETIME)  # _retire counts a hand-off's invocation done
            else:
                self.counter.done(env.function)
                self._go_idle(env, free_at)

    def kill(self, env: Environment, reason: str = RECYCLED) -> None:
        """Retire an environment now, whatever its state (e.g. its process died
        while idle or in its hand-off). A busy one still needs its `release`."""
        if env.state == IDLE:
            self._pools[env.function].remove(env)
        if env.state != DEAD:
            self._retire(env, reason)

    def deploy(self, function: str, now: float) -> int:
        """A new version of `function` takes every later call (as on AWS: a code or configuration update,
        or traffic moved to a published version): its idle environments retire now, busy ones drain
        (their call ends, then they retire). Returns how many environments it leaves draining."""
        if function not in self.functions:
            raise UnknownFunction(function)
        if self._handoff:
            self._settle(now)
        self.deploys += 1
        fleet = self.managed.get(function)
        if fleet is not None:
            return fleet.deploy(now, DEPLOY)
        for env in self.environments(function):
            if env.state == IDLE:
                self._pools[function].remove(env)
                self._retire(env, DEPLOY)
            elif env.state == HANDOFF:
                self._retire(env, DEPLOY)  # its call has ended: _retire counts it done
            else:
                self._draining.add(env)
        return sum(1 for env in self._draining if env.function == function)

    # -- the passage of time ------------------------------------------------
    def expire(self, now: float) -> int:
        """Reclaim idle environments past keep-alive or max lifetime; returns
        how many were retired. Busy ones past their lifetime finish first and
        retire on release."""
        if self._handoff:
            self._settle(now)
        n = sum(fleet.tick(now) for fleet in self.managed.values())
        q = self._idle_queue
        while q and q[0][0] <= now:
            _, env, token = q.popleft()
            if env.state == IDLE and env.idle_token == token:
                self._pools[env.function].remove(env)
                self._retire(env, KEEP_ALIVE)
                n += 1
        lifetime = self.config.max_lifetime_s
        a = self._age_queue
        while a and a[0].created_at + lifetime <= now:
            env = a[0]
            if env.state in (BUSY, INITIALIZING, HANDOFF):
                break  # retires on release; later entries are younger
            a.popleft()
            if env.state == IDLE:
                self._pools[env.function].remove(env)
                self._retire(env, LIFETIME)
                n += 1
        return n

    def next_deadline(self) -> float | None:
        """When `expire` next has work, or None: the emulator sleeps until then."""
        q = self._idle_queue
        while q and not (q[0][1].state == IDLE and q[0][1].idle_token == q[0][2]):
            q.popleft()
        a = self._age_queue
        while a and a[0].state == DEAD:
            a.popleft()
        times = []
        h = self._handoff
        while h and h[0][1].state != HANDOFF:
            h.popleft()
        if h:
            times.append(h[0][0])
        if q:
            times.append(q[0][0])
        if a and a[0].state == IDLE:
            times.append(a[0].created_at + self.config.max_lifetime_s)
        times += [t for t in (fleet.next_deadline() for fleet in self.managed.values()) if t is not None]
        return min(times) if times else None

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
        keep_alive = self.config.keep_alive_s
        lifetime = self.config.max_lifetime_s
        take, rng = pool.take, self.rng
        while True:
            env = take(rng, router)
            if env is None:
                return None
            # Deadlines are enforced here too, so placement never depends on
            # how punctually the driver calls `expire`.
            if now - env.idle_since >= keep_alive and not env.provisioned:
                self._retire(env, KEEP_ALIVE)
            elif now - env.created_at >= lifetime:
                self._retire(env, LIFETIME)
            else:
                return env

    def _create(self, spec: FunctionSpec, router: int, now: float) -> Environment:
        if not self.scale_rate.take(spec.name, now):
            self.counter.refuse(SCALE_LIMIT, spec.name, self.config.scale_limit)
        cap = self.config.max_environments
        if cap is not None and len(self.live) >= cap and not self._evict_one():
            self.counter.refuse(ACCOUNT_LIMIT, spec.name, cap)
        env_id = log_stream_name(now + self.wall_offset, spec.version, self.rng.getrandbits(128))
        env = Environment(env_id, spec.name, spec.version, router, now)
        self.live[env_id] = env
        self._age_queue.append(env)
        return env

    def _evict_one(self) -> bool:
        """Reclaim the longest-idle environment of any function."""
        for _deadline, env, token in self._idle_queue:
            if env.state == IDLE and env.idle_token == token:
                self._pools[env.function].remove(env)
                self._retire(env, EVICTED)
                return True
        return False

    def _retire(self, env: Environment, reason: str) -> None:
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
            # AWS keeps the allocated number: a provisioned environment that ends is replaced
            # as of the latest time known here (created_at order is lifetime order in _age_queue)
            now = max(env.last_used, self._age_queue[-1].created_at if self._age_queue else 0.0)
            if reason == LIFETIME:
                now = max(now, env.created_at + self.config.max_lifetime_s)
            self.preinitialize(self.functions[env.function], now, provisioned=True)

    # -- pre-initialised environments --------------------------------------
    def provision(self, now: float) -> list[Environment]:
        """Each function's provisioned concurrency, initialised now (the driver's start); returns them.
        ConfigError if it is more than the account's concurrency or the cap on live environments."""
        total = sum(spec.provisioned_concurrency for spec in self.functions.values())
        for limit, name in (
            (self.config.account_concurrency, "account_concurrency"),
            (self.config.max_environments, "max_environments"),
        ):
            if limit is not None and total > limit:
                raise ConfigError(f"provisioned_concurrency: {total} environments in all, more than {name} {limit}")
        return [
            self.preinitialize(spec, now, provisioned=True)
            for spec in self.functions.values()
            for _ in range(spec.provisioned_concurrency)
        ]

    def preinitialize(self, spec: FunctionSpec, now: float, provisioned: bool = False) -> Environment:
        """A new environment whose init runs before any call needs it: its first call is a
        new-environment call, not a cold start. It takes no concurrency and no scale-out token while
        it initialises (AWS allocates provisioned concurrency apart from on-demand scaling)."""
        env_id = log_stream_name(now + self.wall_offset, spec.version, self.rng.getrandbits(128))
        env = Environment(env_id, spec.name, spec.version, self._pools[spec.name].route(self.rng), now)
        env.provisioned = provisioned
        if provisioned:
            env.init_type = PROVISIONED
        self.live[env_id] = env
        self._age_queue.append(env)
        if self.on_preinit is None:
            self.initialized(env, now)
        else:
            self.on_preinit(env)
        return env

    def initialized(self, env: Environment, now: float) -> None:
        """A pre-initialised environment's init is done: it waits, idle, for its first call."""
        if env.state == INITIALIZING:
            env.ready_at = now
            self._go_idle(env, now)
