"""An execution environment as the platform model sees it: state and clocks.

The drivers attach their own payload (`handle`): the emulator a real OS
process, the simulator the probe's session cache.
"""

from __future__ import annotations

import math
import time
from enum import Enum

INITIALIZING = "initializing"
BUSY = "busy"
# Replied, but not yet free for another call (ModelConfig.busy_overhead_s).
HANDOFF = "handoff"
IDLE = "idle"
DEAD = "dead"


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

# AWS_LAMBDA_INITIALIZATION_TYPE's values (AWS docs, "Defined runtime environment variables").
ON_DEMAND = "on-demand"
PROVISIONED = "provisioned-concurrency"
SNAP_START = "snap-start"


def log_stream_name(now_epoch: float, version: str, bits: int) -> str:
    """AWS's format: `2020/03/27/[$LATEST]` followed by 32 hex digits."""
    day = time.strftime("%Y/%m/%d", time.gmtime(now_epoch))
    return f"{day}/[{version}]{bits:032x}"


class Start(Enum):
    """How an invocation met its environment; the outputs count each kind apart."""

    WARM = "warm"  # an environment that has served calls before
    # The call waited for an init (on-demand scale-out): the user-facing cold start.
    COLD = "cold"
    # The first call on an environment whose init was already done (provisioned
    # concurrency, proactive replacement, Managed Instances): no wait, but an empty cache.
    NEW_ENVIRONMENT = "new-environment"


class Environment:
    __slots__ = (
        "id",
        "function",
        "version",
        "router",
        "state",
        "created_at",
        "ready_at",
        "idle_since",
        "last_used",
        "invocations",
        "expires_at",
        "queued_at",
        "retire_at",
        "replacement",
        "takes_over_at",
        "dead_reason",
        "handle",
        "provisioned",
        "init_type",
    )

    def __init__(self, env_id: str, function: str, version: str, router: int, now: float) -> None:
        self.id = env_id
        self.function = function
        self.version = version
        self.router = router
        self.state = INITIALIZING
        self.created_at = now
        self.ready_at: float | None = None
        self.idle_since: float | None = None
        self.last_used = now
        self.invocations = 0
        # When its keep-alive ends (idle only): idle_since plus the keep-alive this idle spell drew.
        self.expires_at = 0.0
        # The deadline of its entry in the platform's keep-alive queue (None: no entry). Never later
        # than expires_at while idle: the queue is checked lazily (platform.scheduler).
        self.queued_at: float | None = None
        # created_at plus the maximum lifetime it drew when it was made (inf: none, Managed Instances).
        self.retire_at = math.inf
        # The environment initialised ahead to take its place (proactive replacement), once made.
        self.replacement: Environment | None = None
        # A replacement takes calls from here (its predecessor's lifetime's end), its init done or not.
        self.takes_over_at = -math.inf
        self.dead_reason: str | None = None
        self.handle = None
        # One of the provisioned-concurrency pool's: never reclaimed idle, replaced when it retires.
        self.provisioned = False
        # AWS_LAMBDA_INITIALIZATION_TYPE of its init: on-demand, provisioned-concurrency, snap-start.
        self.init_type = ON_DEMAND

    @property
    def alive(self) -> bool:
        return self.state != DEAD

    def describe(self, now: float) -> dict:
        """A JSON-ready view for introspection endpoints."""
        since = self.idle_since if self.state == IDLE else None
        return {
            "id": self.id,
            "function": self.function,
            "state": self.state,
            "router": self.router,
            "invocations": self.invocations,
            "age_s": round(now - self.created_at, 3),
            "idle_s": round(now - since, 3) if since is not None else None,
            # what it drew: its maximum lifetime, and its current idle spell's keep-alive
            "lifetime_s": round(self.retire_at - self.created_at, 3) if self.retire_at < math.inf else None,
            "keep_alive_s": round(self.expires_at - since, 3) if since is not None else None,
            "initialization_type": self.init_type,
        }

    def __repr__(self) -> str:
        return f"<Environment {self.id} {self.state} n={self.invocations}>"
