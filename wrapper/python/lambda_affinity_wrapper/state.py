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


# How Lambda initialised this environment (AWS_LAMBDA_INITIALIZATION_TYPE): on-demand, provisioned-concurrency,
# snap-start, lambda-managed-instances. The last two of PREINITIALISED never put an init on a call's path (AWS docs:
# provisioned concurrency initialises ahead; Managed Instances start environments ahead and throttle, never cold start).
PREINITIALISED = frozenset({"provisioned-concurrency", "lambda-managed-instances"})
# An on-demand environment whose first call comes this long after its init was initialised ahead (proactive
# initialisation): the rule and threshold of Datadog's tracer (datadog_lambda/cold_start.py, > 10 s; Stuyvenberg
# 2023). A call that waited for init comes within the init's own milliseconds. AFFINITY_PROACTIVE_GAP_MS overrides it.
PROACTIVE_GAP_MS = 10_000.0


def init_type() -> str | None:
    """AWS_LAMBDA_INITIALIZATION_TYPE as Lambda set it, or None when unset (an old runtime, a hand-run handler)."""
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") or None


def waited_for_init(kind: str | None, since_init_s: float, gap_s: float) -> bool:
    """Did an environment's first call wait for its init (a user-facing cold start)? False: it was initialised
    ahead (provisioned, Managed Instances, or an on-demand init `gap_s` or more before the call: proactive).
    A SnapStart restore runs on the call's path, and its init clock started at the snapshot, so it is cold."""
    if kind in PREINITIALISED:
        return False
    if kind == "snap-start":
        return True
    return since_init_s < gap_s


class Environment:
    """Counts this environment's calls from its init (the module's import), in monotonic time."""

    __slots__ = ("init", "invocations", "cache", "init_type", "gap_s")

    def __init__(self, cache: SessionCache, init: float | None = None) -> None:
        self.init = time.monotonic() if init is None else init
        self.invocations = 0
        self.cache = cache
        self.init_type = init_type()
        self.gap_s = env_number("AFFINITY_PROACTIVE_GAP_MS", PROACTIVE_GAP_MS, 0.0, 86_400_000.0) / 1000.0

    def start(self, now: float) -> tuple[bool, bool]:
        """(cold, new_environment) of the call being counted: at most one is true, and only on the first call."""
        if self.invocations != 1:
            return False, False
        cold = waited_for_init(self.init_type, now - self.init, self.gap_s)
        return cold, not cold
