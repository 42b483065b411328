"""Lifetimes, and environments initialised ahead of any call: the part of the platform model
(`Platform`, scheduler.py) that ends each environment's lifetime, starts its proactive replacement
ahead of that end, and makes provisioned concurrency's pre-initialised environments.

A mixin of `Platform`: its methods work on the platform's own state, declared below as the
platform sets it. Lifetime events (NOTICE: a replacement starts its init; END: a lifetime ends) sit
in a heap with the hand-offs' ends and are handled in time order before anything the model is asked
at or after their time (`_advance`), so what happens never depends on how often a driver calls
`expire`. Pure, as the scheduler.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from heapq import heappop, heappush

from .concurrency import ConcurrencyCounter
from .config import ConfigError, FunctionSpec, ModelConfig
from .environment import DEAD, HANDOFF, IDLE, INITIALIZING, KEEP_ALIVE, LIFETIME, PROVISIONED, Environment
from .placement import IdlePool

# Lifetime events: a replacement starts its init (NOTICE), a lifetime ends (END).
NOTICE, END = 0, 1
# Proactive replacement: the replacement's init starts this long before its predecessor's lifetime
# ends, and at most this share of that lifetime before. Our assumption: AWS says only "about to be
# shut down" (docs/model.md); a minute puts its first call more than 10 s after its init, the gap by
# which the probe (and Datadog's tracer) tells a proactive init. In the model it matters only to the
# emulator, which starts the replacement's process then; the replacement takes calls from the end of
# its predecessor's lifetime.
REPLACEMENT_LEAD_S = 60.0
REPLACEMENT_LEAD_SHARE = 0.25


class Lifetimes:
    """Platform's lifetime events and pre-initialised environments (the module's docstring)."""

    # The platform's state and methods used here (scheduler.Platform sets and defines them).
    config: ModelConfig
    functions: dict[str, FunctionSpec]
    live: dict[str, Environment]
    counter: ConcurrencyCounter
    on_preinit: Callable[[Environment], None] | None
    _pools: dict[str, IdlePool[Environment]]
    _handoff: deque
    _draining: set[Environment]
    _events: list
    _next_event: float
    _seq: Iterator[int]
    _go_idle: Callable[[Environment, float], None]
    _retire: Callable[[Environment, str], None]
    _new_environment: Callable[..., Environment]

    def _advance(self, now: float) -> int:
        """Hand-offs ending and lifetime events due by `now`, in time order. Returns the environments
        lifetime events retired."""
        handoff, events = self._handoff, self._events
        n = 0
        while True:
            if events and events[0][0] <= now and not (handoff and handoff[0][0] < events[0][0]):
                at, _, env, kind = heappop(events)
                n += self._start_replacement(env, at) if kind == NOTICE else self._end_lifetime(env, at)
            elif handoff and handoff[0][0] <= now:
                self._settle_one(*handoff.popleft())
            else:
                break
        self._next_event = events[0][0] if events else math.inf
        return n

    def _settle_one(self, free_at: float, env: Environment) -> None:
        """Its hand-off ended at `free_at`: it goes idle (as of then)."""
        if env.state != HANDOFF:
            return  # killed meanwhile
        if free_at >= env.retire_at:
            self._retire(env, LIFETIME)  # _retire counts a hand-off's invocation done
        else:
            self.counter.done(env.function)
            self._go_idle(env, free_at)

    def _start_replacement(self, env: Environment, at: float) -> int:
        """NOTICE: `env`'s lifetime ends soon; its replacement starts its init now. Returns 1 if `env`
        turned out reclaimed by its keep-alive before (then nothing replaces it), else 0."""
        if env.state == DEAD:
            return 0
        if env.state == IDLE and env.expires_at <= at:
            self._pools[env.function].remove(env)
            self._retire(env, KEEP_ALIVE)
            return 1
        cap = self.config.max_environments
        # provisioned: the pool replaces its own; draining (a deploy's old version): nothing replaces it
        if not env.provisioned and env not in self._draining and (cap is None or len(self.live) < cap):
            spec = self.functions[env.function]
            env.replacement = self.preinitialize(spec, at, router=env.router, takes_over_at=env.retire_at)
        self._push_event(env.retire_at, env, END)
        return 0

    def _end_lifetime(self, env: Environment, at: float) -> int:
        """END: its replacement (if any) takes calls from now; `env` retires if idle (a busy one on
        release or at its hand-off's end). Returns the environments retired."""
        new = env.replacement
        if new is not None and new.state == INITIALIZING and new.ready_at is not None:
            self._go_idle(new, at)  # its init done (else `initialized` puts it in the pool when it is)
        if env.state != IDLE:
            return 0
        self._pools[env.function].remove(env)
        self._retire(env, KEEP_ALIVE if env.expires_at <= at else LIFETIME)
        return 1

    def _push_event(self, at: float, env: Environment, kind: int) -> None:
        heappush(self._events, (at, next(self._seq), env, kind))
        if at < self._next_event:
            self._next_event = at

    # -- pre-initialised environments --------------------------------------
    def provision(self, now: float, specs: Iterable[FunctionSpec] | None = None) -> list[Environment]:
        """Each function's provisioned concurrency (of `specs`, functions added since the driver's start:
        of every function), initialised now; returns them. ConfigError if every function's together is
        more than the account's concurrency or the cap on live environments."""
        total = sum(spec.provisioned_concurrency for spec in self.functions.values())
        for limit, name in (
            (self.config.account_concurrency, "account_concurrency"),
            (self.config.max_environments, "max_environments"),
        ):
            if limit is not None and total > limit:
                raise ConfigError(f"provisioned_concurrency: {total} environments in all, more than {name} {limit}")
        return [
            self.preinitialize(spec, now, provisioned=True)
            for spec in (self.functions.values() if specs is None else specs)
            for _ in range(spec.provisioned_concurrency)
        ]

    def preinitialize(
        self,
        spec: FunctionSpec,
        now: float,
        provisioned: bool = False,
        router: int | None = None,
        takes_over_at: float = -math.inf,
    ) -> Environment:
        """A new environment whose init runs before any call needs it: its first call is a
        new-environment call, not a cold start. It takes no concurrency and no scale-out token while
        it initialises (AWS allocates provisioned concurrency apart from on-demand scaling). It takes
        calls once its init is done, and not before `takes_over_at` (a proactive replacement: when its
        predecessor's lifetime ends)."""
        env = self._new_environment(spec, router, now, provisioned)
        if provisioned:
            env.init_type = PROVISIONED
        env.takes_over_at = takes_over_at
        if self.on_preinit is None:
            self.initialized(env, now)
        else:
            self.on_preinit(env)
        return env

    def initialized(self, env: Environment, now: float) -> None:
        """A pre-initialised environment's init is done: it waits, idle, for its first call (a
        replacement from its predecessor's lifetime's end, _end_lifetime)."""
        if env.state == INITIALIZING and not env.invocations:
            env.ready_at = now
            if now >= env.takes_over_at:
                self._go_idle(env, now)


def _twin_seeded(rng: random.Random) -> random.Random:
    """A generator seeded by what `rng` would draw next, leaving `rng` as it was."""
    twin = random.Random()
    twin.setstate(rng.getstate())
    return random.Random(twin.getrandbits(64))
