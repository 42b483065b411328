"""An execution environment as the platform model sees it: state and clocks.

The drivers attach their own payload (`handle`): the emulator a real OS
process, the simulator the probe's session cache.
"""

from __future__ import annotations

import time
from enum import Enum

INITIALIZING = "initializing"
BUSY = "busy"
# Replied, but not yet free for another call (ModelConfig.busy_overhead_s).
HANDOFF = "handoff"
IDLE = "idle"
DEAD = "dead"


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
        "idle_token",
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
        # Bumped each time the environment goes idle, so stale keep-alive
        # entries (from an earlier idle spell) are recognised and skipped.
        self.idle_token = 0
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
        return {
            "id": self.id,
            "function": self.function,
            "state": self.state,
            "router": self.router,
            "invocations": self.invocations,
            "age_s": round(now - self.created_at, 3),
            "idle_s": round(now - self.idle_since, 3) if self.state == IDLE and self.idle_since is not None else None,
            "initialization_type": self.init_type,
        }

    def __repr__(self) -> str:
        return f"<Environment {self.id} {self.state} n={self.invocations}>"
