"""The emulator's default cap on live environments, derived from this machine.

Each environment is a real process, so the machine, not AWS's account limit,
bounds how many can live at once. With no `max_environments` in the config
the cap is the smallest of three, each with a safety factor of one half:

    memory:       available memory / memory one idle environment costs
    tasks:        free task slots (pid_max, threads-max, RLIMIT_NPROC, minus the
                  tasks already running) / threads one environment runs
    descriptors:  RLIMIT_NOFILE / descriptors the emulator holds per environment

The per-environment figures were measured with bench/environment_cost.py
(docs/emulator.md, "Machine cap"). A handler's own memory comes on top of an
idle environment's; `memory` (enforced per environment) bounds it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

SAFETY = 0.5


@dataclass(frozen=True)
class EnvironmentCost:
    memory_mb: float  # PSS of one idle environment process plus what the emulator holds for it
    tasks: int  # its threads: the pid limits count threads
    fds: int  # descriptors the emulator holds for it


# bench/environment_cost.py on this project's machine (Python 3.11, node 20, 17 idle
# environments of the bundled probe): median PSS 2.82 / 5.26 / 9.26 MB (USS 2.36 /
# 4.73 / 7.25, RSS 12.6 / 16.1 / 43.3), the emulator's own growth 0.02-0.05 MB and 4
# descriptors per environment; rounded up.
COSTS = {
    "builtin": EnvironmentCost(memory_mb=3.0, tasks=1, fds=4),
    "awslambdaric": EnvironmentCost(memory_mb=5.5, tasks=1, fds=4),
    "node": EnvironmentCost(memory_mb=9.5, tasks=11, fds=4),
}


@dataclass(frozen=True)
class MachineLimits:
    available_mb: float
    free_tasks: int | None  # None where it cannot be read (not Linux)
    fd_limit: int


@dataclass(frozen=True)
class MachineCap:
    cap: int
    decided_by: str  # "memory" | "tasks" | "descriptors"
    limits: MachineLimits
    cost: EnvironmentCost


def runtime_kind(fn) -> str:
    """Which COSTS entry a FunctionConfig's environments cost."""
    return "node" if fn.is_node else fn.runtime_client


def cost_of(functions) -> EnvironmentCost:
    """The costliest environment any of the functions runs: the cap must hold
    whichever function the environments belong to."""
    kinds = [environment_cost(fn) for fn in functions] or [COSTS["builtin"]]
    return max(kinds, key=lambda c: c.memory_mb)


def environment_cost(fn) -> EnvironmentCost:
    """One environment of the function: on Managed Instances, a Python one is K processes and a Node.js
    one runs a thread per worker on top (emulator/managed_sandbox.py)."""
    cost = COSTS[runtime_kind(fn)]
    k = fn.managed.get("per_environment_max_concurrency")
    if not k:
        return cost
    if fn.is_node:
        return EnvironmentCost(cost.memory_mb, cost.tasks + fn.managed.get("worker_count", 1), cost.fds)
    return EnvironmentCost(cost.memory_mb * k, cost.tasks * k, cost.fds * k)


def derive_cap(limits: MachineLimits, cost: EnvironmentCost) -> MachineCap:
    """Pure: the cap for these limits and this cost (at least 1)."""
    bounds = {
        "memory": SAFETY * limits.available_mb / cost.memory_mb,
        "descriptors": SAFETY * limits.fd_limit / cost.fds,
    }
    if limits.free_tasks is not None:
        bounds["tasks"] = SAFETY * limits.free_tasks / cost.tasks
    decided_by = min(bounds, key=bounds.__getitem__)
    return MachineCap(max(1, math.floor(bounds[decided_by])), decided_by, limits, cost)


def raise_fd_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (the kernel's
    nr_open when the hard one is unlimited); returns the soft limit now. The
    only copy: the front end's connections and each environment's descriptors
    both live in the emulator's process. Environment processes get Lambda's
    1,024 back (runtimes/zygote.py)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = _nr_open() if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        except (ValueError, OSError):
            pass  # left as it was: fewer connections and environments, nothing else changes
    return fd_limit()


def fd_limit() -> int:
    """This process's soft RLIMIT_NOFILE (an unlimited one as the kernel's nr_open)."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return _nr_open() if soft == resource.RLIM_INFINITY else soft


def _nr_open() -> int:
    """The kernel's ceiling for one process's fds (an unlimited hard limit cannot be the soft one)."""
    try:
        with open("/proc/sys/fs/nr_open") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 1 << 20


def read_limits() -> MachineLimits:
    """This process's limits as they stand (the service raises its fd limit first)."""
    import psutil

    return MachineLimits(
        available_mb=psutil.virtual_memory().available / 2**20, free_tasks=_free_tasks(), fd_limit=fd_limit()
    )


def _free_tasks() -> int | None:
    import resource

    try:
        with open("/proc/sys/kernel/pid_max") as fh:
            limit = int(fh.read())
        with open("/proc/sys/kernel/threads-max") as fh:
            limit = min(limit, int(fh.read()))
        with open("/proc/loadavg") as fh:  # "0.00 0.01 0.05 1/234 5678": 234 tasks exist
            running = int(fh.read().split()[3].split("/")[1])
    except (OSError, ValueError, IndexError):
        return None
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if nproc != resource.RLIM_INFINITY and os.geteuid() != 0:  # root is not held to RLIMIT_NPROC
        limit = min(limit, nproc)
    return max(0, limit - running)


def machine_cap(functions) -> MachineCap:
    return derive_cap(read_limits(), cost_of(functions))
