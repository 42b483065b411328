"""What one execution environment remembers between calls: its call count, its age and the sessions it has seen.

Stdlib only: it runs inside Lambda, in the wrapper's layer and in the probe (probe_lambda/handler.py imports
SessionCache, env_number and the session limits from here, so both count hits the same way).
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict

MAX_SESSION_LEN = 256
SESSION_HEADER = "x-affinity-session"


class SessionCache:
    """A bounded LRU with a TTL counted from when the session was cached.

    Time is passed in, so the simulator can drive the same cache on a
    virtual clock.
    """

    __slots__ = ("max_entries", "ttl_s", "_items")

    def __init__(self, max_entries: int = 10000, ttl_s: float = 900.0) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._items: OrderedDict = OrderedDict()

    def lookup(self, key: str, now: float):
        """Return (hit, age_s); a miss (or an expired entry) caches the key."""
        items = self._items
        stored = items.get(key)
        if stored is not None and now - stored < self.ttl_s:
            items.move_to_end(key)
            return True, now - stored
        items[key] = now
        items.move_to_end(key)
        while len(items) > self.max_entries:
            items.popitem(last=False)
        return False, None

    def __len__(self) -> int:
        return len(self._items)


def env_number(name: str, default: float, lo: float, hi: float) -> float:
    """A numeric setting: the default when unset, empty or not a number, else clamped to [lo, hi]."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    if value != value:  # NaN slips through min/max: treat it as unset
        return default
    return min(max(value, lo), hi)


def cache_from_env() -> SessionCache:
    """The session cache sized by AFFINITY_CACHE_SIZE and AFFINITY_CACHE_TTL_S."""
    return SessionCache(
        int(env_number("AFFINITY_CACHE_SIZE", 10000, 1, 1_000_000)),
        env_number("AFFINITY_CACHE_TTL_S", 900.0, 0.001, 86400.0),
    )


def is_session_key(value) -> bool:
    """A usable session key: a string of 1 to MAX_SESSION_LEN characters."""
    return isinstance(value, str) and 0 < len(value) <= MAX_SESSION_LEN


def env_id() -> str:
    """This environment's id: its log stream's name, as the probe reports it."""
    return os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "unknown")


class Environment:
    """Counts this environment's calls from its init (the module's import), in monotonic time."""

    __slots__ = ("init", "invocations", "cache")

    def __init__(self, cache: SessionCache, init: float | None = None) -> None:
        self.init = time.monotonic() if init is None else init
        self.invocations = 0
        self.cache = cache
