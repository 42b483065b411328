"""Per-user tallies of which environments served each user. Pure Python.

Every update is O(1): the running maximum is kept, never rescanned.

Memory per user is bounded: at most `max_envs` (default 64) per-environment
counters, keyed by a small int shared through one interning table. When a
user meets more environments than that, the counters follow the
space-saving algorithm (Metwally et al.): the smallest counter is handed to
the newcomer, so every count over-estimates by at most n/max_envs, and the
max-share is exact whenever the top environment's share is above 1/max_envs.
Past that point `environments` counts arrivals of untracked environments, an
upper bound of the distinct ones.
"""
from __future__ import annotations

from typing import Hashable, Iterable

DEFAULT_MAX_ENVS = 64

# One per-user row: the unit that summaries read and workers send to the master.
ROW_FIELDS = (
    "user", "requests", "max_count", "max_share", "warm_hits", "cache_known",
    "environments", "cold_starts", "switches", "invalid",
)


class UserTally:
    __slots__ = (
        "requests", "counts", "max_count", "warm_hits", "cache_known",
        "environments", "cold_starts", "switches", "last_env", "invalid",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.counts: dict[int, int] = {}
        self.max_count = 0
        self.warm_hits = 0
        self.cache_known = 0
        self.environments = 0
        self.cold_starts = 0
        self.switches = 0
        self.last_env = -1
        self.invalid = 0

    @property
    def max_share(self) -> float | None:
        return self.max_count / self.requests if self.requests else None

    @property
    def warm_rate(self) -> float | None:
        return self.warm_hits / self.cache_known if self.cache_known else None


class Tracker:
    """Tallies for many users; `record` is the hot path."""

    def __init__(self, max_envs: int = DEFAULT_MAX_ENVS) -> None:
        if max_envs < 1:
            raise ValueError("max_envs must be >= 1")
        self.max_envs = max_envs
        self.users: dict[Hashable, UserTally] = {}
        self._env_index: dict[str, int] = {}
        self.dirty: set = set()

    @property
    def environments(self) -> int:
        """Distinct environments seen by any user."""
        return len(self._env_index)

    def tally(self, user: Hashable) -> UserTally:
        t = self.users.get(user)
        if t is None:
            t = self.users[user] = UserTally()
        return t

    def record(self, user: Hashable, env_id: str, cold: bool | None = None, cache_hit: bool | None = None) -> UserTally:
        """One valid reply: `user` was served by `env_id`."""
        idx = self._env_index.get(env_id)
        if idx is None:
            idx = self._env_index[env_id] = len(self._env_index)
        t = self.users.get(user)
        if t is None:
            t = self.users[user] = UserTally()
        t.requests += 1
        counts = t.counts
        c = counts.get(idx)
        if c is None:
            t.environments += 1
            if len(counts) >= self.max_envs:
                # space-saving: the newcomer inherits the smallest counter
                victim = min(counts, key=counts.__getitem__)
                c = counts.pop(victim)
            else:
                c = 0
        c += 1
        counts[idx] = c
        if c > t.max_count:
            t.max_count = c
        if t.last_env != idx:
            if t.last_env >= 0:
                t.switches += 1
            t.last_env = idx
        if cold:
            t.cold_starts += 1
        if cache_hit is not None:
            t.cache_known += 1
            if cache_hit:
                t.warm_hits += 1
        self.dirty.add(user)
        return t

    def record_invalid(self, user: Hashable) -> UserTally:
        """A reply that is not a valid probe reply: counted, never in a rate."""
        t = self.tally(user)
        t.invalid += 1
        self.dirty.add(user)
        return t

    def row(self, user: Hashable) -> dict:
        t = self.users[user]
        return {
            "user": str(user),
            "requests": t.requests,
            "max_count": t.max_count,
            "max_share": t.max_share,
            "warm_hits": t.warm_hits,
            "cache_known": t.cache_known,
            "environments": t.environments,
            "cold_starts": t.cold_starts,
            "switches": t.switches,
            "invalid": t.invalid,
        }

    def rows(self) -> list[dict]:
        return [self.row(u) for u in self.users]

    def take_changed(self) -> list[dict]:
        """Rows of users changed since the last call (for worker -> master)."""
        changed = [self.row(u) for u in self.dirty]
        self.dirty = set()
        return changed

    def env_ids(self) -> Iterable[str]:
        return self._env_index.keys()

    def reset(self) -> None:
        self.users.clear()
        self._env_index.clear()
        self.dirty = set()
