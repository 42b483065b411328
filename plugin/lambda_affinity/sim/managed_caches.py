"""The session caches inside one Managed Instances environment, as the simulator's probe holds them.

An environment takes K calls at once through K slots, each a runtime loop waiting on the Runtime API's
/next: a Python process (each with its own memory), or one of a Node.js worker thread's concurrent loops
(the K slots spread evenly over W workers, each worker with its own globals), or a thread of Java's one
process. The cache a call meets is its slot's: one per process, one per worker, or one for the whole
environment (`cache_scope`).

Which slot takes a call is our assumption (AWS documents none): the one that has waited longest on /next,
as the emulator's Runtime API hands an event to the oldest waiting connection. A slot that finishes asks
for its next event at the back of the line, so serial calls go round the slots in turn.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ..platform.config import FunctionSpec
from ..platform.managed import cache_count, default_cache_scope


class SlotCaches:
    __slots__ = ("_free", "_caches", "_count", "_new")

    def __init__(self, k: int, caches: int, new_cache: Any) -> None:
        self._free = deque(range(k))
        self._count = caches
        self._caches: dict[int, Any] = {}  # made on first use: K may be 1,600
        self._new = new_cache  # the probe's SessionCache, sized: simulate.py holds it

    def take(self) -> int:
        """The slot that takes the next call (the platform admitted it: one is free)."""
        return self._free.popleft()

    def give(self, slot: int) -> None:
        """The call on `slot` ended: it waits on /next again, behind the others."""
        self._free.append(slot)

    def cache(self, slot: int) -> Any:
        """The session cache the call on `slot` meets."""
        index = slot % self._count
        cache = self._caches.get(index)
        if cache is None:
            cache = self._caches[index] = self._new()
        return cache


def slot_caches_factory(spec: FunctionSpec, new_cache: Any):
    """A maker of each new environment's SlotCaches for the function `spec`; `new_cache()` makes one cache."""
    k = spec.per_environment_max_concurrency
    assert k is not None
    scope = spec.cache_scope or default_cache_scope(spec.runtime)
    count = cache_count(scope, k, spec.worker_count or 1)
    return lambda: SlotCaches(k, count, new_cache)
