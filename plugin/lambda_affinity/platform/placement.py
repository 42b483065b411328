"""Placement policies: which idle environment an invocation lands on.

Each pool holds one function's idle environments and supports O(1) add,
take and remove (removal is needed when keep-alive or lifetime reclaims an
environment from the middle of the pool).

- mru: the most recently released environment (a stack). Concentrates load
  on few environments, so a user meets the same one very often.
- lru: the least recently released one (a queue). Round-robins over all.
- random: any idle environment, uniformly.
- partitioned: several routers (AWS's sandbox-reuse patent, US 11,144,359:
  the front end picks a worker manager (semi-)randomly; if that manager holds
  no idle sandbox, it tries another before any new sandbox is made). An
  invocation goes to a random router, takes that router's idle environment if
  it has one, else one of the next routers'; a cold start happens only when no
  router holds an idle environment, and the new one belongs to the router
  first asked.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T", bound=Hashable)


class IdlePool(Protocol[T]):
    def route(self, rng: random.Random) -> int: ...
    def add(self, item: T) -> None: ...
    def take(self, rng: random.Random, router: int = 0) -> T | None: ...
    def remove(self, item: T) -> None: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[T]: ...


class _OrderedPool:
    """Idle environments in release order; MRU takes the newest, LRU the oldest."""

    __slots__ = ("_items", "_newest")

    def __init__(self, newest: bool) -> None:
        self._items: OrderedDict = OrderedDict()
        self._newest = newest

    def route(self, rng: random.Random) -> int:
        return 0  # one pool: one router

    def add(self, item) -> None:
        self._items[item] = None

    def take(self, rng: random.Random, router: int = 0):
        if not self._items:
            return None
        return self._items.popitem(last=self._newest)[0]

    def remove(self, item) -> None:
        self._items.pop(item, None)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        return iter(self._items)


class MruPool(_OrderedPool):
    def __init__(self) -> None:
        super().__init__(newest=True)


class LruPool(_OrderedPool):
    def __init__(self) -> None:
        super().__init__(newest=False)


class RandomPool:
    """Uniform choice with swap-remove: a list plus each item's position."""

    __slots__ = ("_items", "_pos")

    def __init__(self) -> None:
        self._items: list = []
        self._pos: dict = {}

    def route(self, rng: random.Random) -> int:
        return 0

    def add(self, item) -> None:
        if item in self._pos:
            return
        self._pos[item] = len(self._items)
        self._items.append(item)

    def take(self, rng: random.Random, router: int = 0):
        if not self._items:
            return None
        item = self._items[int(rng.random() * len(self._items))]
        self.remove(item)
        return item

    def remove(self, item) -> None:
        i = self._pos.pop(item, None)
        if i is None:
            return
        last = self._items.pop()
        if i < len(self._items):
            self._items[i] = last
            self._pos[last] = i

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        return iter(list(self._items))


_SIMPLE: dict[str, Callable[[], IdlePool]] = {"mru": MruPool, "lru": LruPool, "random": RandomPool}


class PartitionedPool:
    """Routers, each with its own idle pool, and the patent's retry step.

    `route(rng)` picks the router for an incoming invocation; `take` looks in
    that router's pool first, then in the others in turn (router + 1, + 2, ...),
    so no invocation cold-starts while any router holds an idle environment.
    Items carry their router in `item.router` (set by the platform when it
    creates the environment).
    """

    __slots__ = ("_pools", "routers", "_count")

    def __init__(self, routers: int, inner: str = "mru") -> None:
        self.routers = routers
        self._pools = [_SIMPLE[inner]() for _ in range(routers)]
        self._count = 0  # idle items over all routers: a cold start needs no scan

    def route(self, rng: random.Random) -> int:
        return int(rng.random() * self.routers)

    def add(self, item) -> None:
        pool = self._pools[item.router]
        before = len(pool)
        pool.add(item)
        self._count += len(pool) - before

    def take(self, rng: random.Random, router: int = 0):
        if not self._count:
            return None
        pools, n = self._pools, self.routers
        for step in range(n):
            item = pools[(router + step) % n].take(rng)
            if item is not None:
                self._count -= 1
                return item
        return None

    def remove(self, item) -> None:
        pool = self._pools[item.router]
        before = len(pool)
        pool.remove(item)
        self._count -= before - len(pool)

    def __len__(self) -> int:
        return self._count

    def __iter__(self):
        for p in self._pools:
            yield from list(p)


def make_pool(policy: str, routers: int = 1, router_policy: str = "mru") -> IdlePool:
    if policy == "partitioned":
        return PartitionedPool(routers, router_policy)
    try:
        return _SIMPLE[policy]()
    except KeyError:
        raise ValueError(f"unknown placement policy {policy!r}") from None


class ProvisionedFirst:
    """A function's idle environments when it has provisioned concurrency: its provisioned ones are
    taken before any on-demand one (AWS: calls beyond the provisioned environments "spill over" to
    on-demand ones). Items say which they are in `item.provisioned`; each part keeps the policy."""

    __slots__ = ("provisioned", "on_demand")

    def __init__(self, provisioned: IdlePool, on_demand: IdlePool) -> None:
        self.provisioned = provisioned
        self.on_demand = on_demand

    def route(self, rng: random.Random) -> int:
        return self.on_demand.route(rng)

    def add(self, item) -> None:
        (self.provisioned if item.provisioned else self.on_demand).add(item)

    def take(self, rng: random.Random, router: int = 0):
        item = self.provisioned.take(rng, router)
        return item if item is not None else self.on_demand.take(rng, router)

    def remove(self, item) -> None:
        (self.provisioned if item.provisioned else self.on_demand).remove(item)

    def __len__(self) -> int:
        return len(self.provisioned) + len(self.on_demand)

    def __iter__(self):
        yield from self.provisioned
        yield from self.on_demand
