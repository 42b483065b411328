"""One model of Lambda's scheduler, shared by the emulator and the simulator."""

from .concurrency import ACCOUNT_LIMIT, RESERVED_LIMIT, SCALE_LIMIT, Throttled
from .config import POLICIES, ConfigError, FunctionSpec, ModelConfig
from .environment import BUSY, DEAD, HANDOFF, IDLE, INITIALIZING, Environment
from .scheduler import Lease, Platform, UnknownFunction

__all__ = [
    "ACCOUNT_LIMIT",
    "RESERVED_LIMIT",
    "SCALE_LIMIT",
    "Throttled",
    "POLICIES",
    "ConfigError",
    "FunctionSpec",
    "ModelConfig",
    "BUSY",
    "DEAD",
    "HANDOFF",
    "IDLE",
    "INITIALIZING",
    "Environment",
    "Lease",
    "Platform",
    "UnknownFunction",
]
