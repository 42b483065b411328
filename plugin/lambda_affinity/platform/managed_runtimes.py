"""Managed Instances' limits and runtimes, as AWS documents them (docs/model.md, "Managed Instances").

Apart from managed.py so that config.py validates a FunctionSpec with them without importing the fleet.
"""

from __future__ import annotations

import re

# AWS: PerExecutionEnvironmentMaxConcurrency is at most 1,600; FunctionScalingConfig 0-15,000.
MAX_ENV_CONCURRENCY = 1600
MAX_EXECUTION_ENVIRONMENTS = 15000
CACHE_SCOPES = ("environment", "worker", "process")
# AWS's Managed Instances runtimes: Python 3.13+, Node.js 22+, Java 21+ (and .NET 8+, not run here).
_RUNTIME = re.compile(r"^(?:python3\.(\d+)|nodejs(\d+)\.x|java(\d+))$")
_FLOORS = ("python", 13), ("nodejs", 22), ("java", 21)
RUNTIMES_TEXT = "python3.13 or later, nodejs22.x or later, java21 or later"


def runtime_family(runtime: str | None) -> str | None:
    """python, nodejs or java for a Managed Instances runtime; None for anything else."""
    m = _RUNTIME.match(runtime or "")
    if m is None:
        return None
    for (family, floor), version in zip(_FLOORS, m.groups(), strict=True):
        if version is not None:
            return family if int(version) >= floor else None
    return None


def runtime_problem(runtime: str) -> str | None:
    """Why `runtime` cannot run on Managed Instances, or None when it can."""
    if runtime_family(runtime) is not None:
        return None
    return f"{runtime} does not run on Lambda Managed Instances (AWS offers {RUNTIMES_TEXT})"


def default_cache_scope(runtime: str | None) -> str:
    """Where module-level state lives, as AWS runs each runtime: Python runs each concurrent request in a
    process of its own, Node.js in worker threads with their own globals, Java in one shared process.
    No runtime: the simulator's probe, which is the Python one."""
    family = runtime_family(runtime) if runtime else "python"
    return {"python": "process", "nodejs": "worker"}.get(family or "", "environment")


def cache_count(scope: str, k: int, workers: int) -> int:
    """How many separate caches an environment holds: K processes, W workers, or one."""
    return k if scope == "process" else min(workers, k) if scope == "worker" else 1
