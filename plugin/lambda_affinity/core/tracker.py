"""Per-user tallies of which environments served each user. Pure Python.

Every update is O(1): the running maximum is kept, never rescanned, and the
bounded counter table below evicts in O(1) too.

Memory per user is bounded whatever the number of environments a user meets:
one `UserTally` (slots) plus at most `max_envs` (default 64) per-environment
counters keyed by a small int from one interning table that all users share
(that table grows with the run's distinct environments, not per user).
Measured with tracemalloc on CPython 3.11, user key included: ~0.4 KB for a
user that met a handful of environments, ~2.5 KB at the 64-counter ceiling,
at most ~10 KB once overflowed (counter structure below, large counts),
however many environments follow. test_tracker.py holds it to these bounds.

Past `max_envs` environments the counters follow the space-saving algorithm
(Metwally, Agrawal, El Abbadi 2005): the newcomer takes over the smallest
counter plus one, so the counts still sum to n, each count over-estimates
by at most n/max_envs (so max-share by at most 1/max_envs), and a counter
that was never handed over (an environment met before the table filled and
never evicted) stays exact. The smallest counter
is found in O(1) with the array form of the algorithm's Stream-Summary:
counters kept sorted by count in a list, with the last position of each
count's block; an increment swaps the counter to the end of its block and
bumps it, which keeps the order. That structure is built once, when a user
first overflows, so the common case stays a plain dict increment. Past that
point `environments` counts arrivals of untracked environments, an upper
bound of the distinct ones.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from .schema import UserRow

DEFAULT_MAX_ENVS = 64

# One per-user row: the unit that summaries read and workers send to the master
# (core.schema.UserRow; these are its keys, in its order: the per-user CSV's columns).
ROW_FIELDS: tuple[str, ...] = tuple(UserRow.__annotations__)


class _Overflow:
    """Stream-Summary in array form for one user whose counters are full.

    `ids`/`cnt` are parallel lists sorted by count (ascending), `pos` maps an
    env index to its position, `block_end[c]` is the last position holding
    count c. The minimum is always at position 0.
    """

    __slots__ = ("ids", "cnt", "pos", "block_end")

    def __init__(self, counts: dict[int, int]) -> None:
        order = sorted(counts, key=counts.__getitem__)  # once per user, at the first overflow
        self.ids = order
        self.cnt = [counts[i] for i in order]
        self.pos = {e: p for p, e in enumerate(order)}
        self.block_end = {c: p for p, c in enumerate(self.cnt)}  # later positions win: the block's end

    def increment(self, p: int) -> int:
        """Add one to the counter at position p; returns its new count."""
        ids, cnt, block_end = self.ids, self.cnt, self.block_end
        c = cnt[p]
        q = block_end[c]
        if q != p:  # move the counter to the end of its block, keeping the order sorted
            a, b = ids[p], ids[q]
            ids[p], ids[q] = b, a
            self.pos[b] = p
            self.pos[a] = q
        cnt[q] = c + 1
        if q > 0 and cnt[q - 1] == c:
            block_end[c] = q - 1
        else:
            del block_end[c]
        if c + 1 not in block_end:
            block_end[c + 1] = q
        return c + 1

    def replace_min(self, newcomer: int) -> int:
        """Space-saving: the newcomer takes the smallest counter, plus one."""
        del self.pos[self.ids[0]]
        self.ids[0] = newcomer
        self.pos[newcomer] = 0
        return self.increment(0)


class UserTally:
    __slots__ = (
        "requests",
        "counts",
        "max_count",
        "warm_hits",
        "cache_known",
        "environments",
        "cold_starts",
        "new_environment_calls",
        "switches",
        "last_env",
        "invalid",
        "overflow",
    )

    def __init__(self) -> None:
        self.requests = 0
        # env index -> count while the user has met at most max_envs environments
        self.counts: dict[int, int] | None = {}
        self.overflow: _Overflow | None = None
        self.max_count = 0
        self.warm_hits = 0
        self.cache_known = 0
        self.environments = 0
        self.cold_starts = 0
        self.new_environment_calls = 0
        self.switches = 0
        self.last_env = -1
        self.invalid = 0

    @property
    def max_share(self) -> float | None:
        return self.max_count / self.requests if self.requests else None

    @property
    def warm_rate(self) -> float | None:
        return self.warm_hits / self.cache_known if self.cache_known else None

    def env_counts(self) -> dict[int, int]:
        """Current counters (env index -> count), for inspection and tests."""
        if self.counts is not None:
            return dict(self.counts)
        o = self.overflow
        assert o is not None  # counts is None only once the tally moved to the overflow structure
        return {e: o.cnt[p] for e, p in o.pos.items()}


class Tracker:
    """Tallies for many users; `record` is the hot path."""

    def __init__(self, max_envs: int = DEFAULT_MAX_ENVS) -> None:
        if max_envs < 1:
            raise ValueError("max_envs must be >= 1")
        self.max_envs = max_envs
        self.users: dict[Hashable, UserTally] = {}
        self._env_index: dict[str, int] = {}
        self._env_ids: list[str] = []  # index -> env id
        self._envs_taken = 0
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

    def register(self, user: Hashable) -> UserTally:
        """A user that exists before its first reply: it counts as a user (with
        no rate) even if no valid reply ever comes, and rows keep start order."""
        t = self.tally(user)
        self.dirty.add(user)
        return t

    def record(
        self,
        user: Hashable,
        env_id: str,
        cold: bool | None = None,
        cache_hit: bool | None = None,
        new_environment: bool | None = None,
    ) -> UserTally:
        """One valid reply: `user` was served by `env_id`; `cold`: the call waited for the environment's init,
        `new_environment`: the environment's first call, its init done ahead (at most one of them is true)."""
        idx = self._env_index.get(env_id)
        if idx is None:
            idx = self._env_index[env_id] = len(self._env_ids)
            self._env_ids.append(env_id)
        t = self.users.get(user)
        if t is None:
            t = self.users[user] = UserTally()
        t.requests += 1
        counts = t.counts
        if counts is not None:
            c = counts.get(idx)
            if c is not None:
                c += 1
                counts[idx] = c
            elif len(counts) < self.max_envs:
                t.environments += 1
                c = counts[idx] = 1
            else:
                # first overflow: switch this user to the O(1) space-saving structure
                t.environments += 1
                t.overflow = _Overflow(counts)
                t.counts = None
                c = t.overflow.replace_min(idx)
        else:
            o = t.overflow
            assert o is not None  # counts is None only once the tally moved to the overflow structure
            p = o.pos.get(idx)
            if p is not None:
                c = o.increment(p)
            else:
                t.environments += 1
                c = o.replace_min(idx)
        if c > t.max_count:
            t.max_count = c
        if t.last_env != idx:
            if t.last_env >= 0:
                t.switches += 1
            t.last_env = idx
        if cold:
            t.cold_starts += 1
        elif new_environment:
            t.new_environment_calls += 1
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

    def row(self, user: Hashable) -> UserRow:
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
            "new_environment_calls": t.new_environment_calls,
            "switches": t.switches,
            "invalid": t.invalid,
        }

    def rows(self) -> list[UserRow]:
        return [self.row(u) for u in self.users]

    def take_changed(self) -> list[UserRow]:
        """Rows of users changed since the last call (for worker -> master)."""
        changed = [self.row(u) for u in self.dirty]
        self.dirty = set()
        return changed

    def take_new_envs(self) -> list[str]:
        """Environment ids first seen since the last call, so a master can
        count distinct environments across workers that share some."""
        new = self._env_ids[self._envs_taken :]
        self._envs_taken = len(self._env_ids)
        return new

    def env_ids(self) -> Iterable[str]:
        return iter(self._env_ids)

    def env_id(self, index: int) -> str:
        return self._env_ids[index]

    def absorb(self, other: Tracker) -> None:
        """Fold in another tracker's users (pooled runs: each run's users are its own,
        so none may be here already) and its environments, as if recorded here.
        `other` is consumed: its tallies move over."""
        index = []
        for env_id in other._env_ids:
            idx = self._env_index.get(env_id)
            if idx is None:
                idx = self._env_index[env_id] = len(self._env_ids)
                self._env_ids.append(env_id)
            index.append(idx)
        for user, t in other.users.items():
            if user in self.users:
                raise ValueError(f"user {user!r} is in both trackers")
            if t.counts is not None:
                t.counts = {index[e]: c for e, c in t.counts.items()}
            else:
                o = t.overflow
                assert o is not None
                o.ids = [index[e] for e in o.ids]
                o.pos = {index[e]: p for e, p in o.pos.items()}
            if t.last_env >= 0:
                t.last_env = index[t.last_env]
            self.users[user] = t
            self.dirty.add(user)

    def reset(self) -> None:
        self.users.clear()
        self._env_index.clear()
        self._env_ids = []
        self._envs_taken = 0
        self.dirty = set()


class OutcomeRecorder(Tracker):
    """A tracker that also keeps each call's outcome in arrival order: (env_id, cold, cache_hit), or None
    for an invalid reply. A replay with a fixed round trip answers arrivals in order, so the i-th outcome
    is the i-th arrival's: how the simulator writes a trace with outcomes of a known model."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: list[tuple[str, bool | None, bool | None] | None] = []

    def record(
        self,
        user: Hashable,
        env_id: str,
        cold: bool | None = None,
        cache_hit: bool | None = None,
        new_environment: bool | None = None,
    ) -> UserTally:
        self.outcomes.append((env_id, cold, cache_hit))
        return super().record(user, env_id, cold, cache_hit, new_environment)

    def record_invalid(self, user: Hashable) -> UserTally:
        self.outcomes.append(None)
        return super().record_invalid(user)
