"""The emulator's environment cap derived from the machine's limits (machine.derive_cap), in-process."""

from __future__ import annotations

from lambda_affinity.emulator import machine
from lambda_affinity.emulator.config import config_from_mapping
from lambda_affinity.emulator.machine import EnvironmentCost, MachineLimits, derive_cap

COST = EnvironmentCost(memory_mb=4.0, tasks=2, fds=4)


# -- the formula (pure) ------------------------------------------------------------
def test_the_cap_is_half_of_the_tightest_machine_limit():
    by_memory = derive_cap(MachineLimits(available_mb=800, free_tasks=10_000, fd_limit=10_000), COST)
    assert (by_memory.cap, by_memory.decided_by) == (100, "memory")
    by_tasks = derive_cap(MachineLimits(available_mb=80_000, free_tasks=300, fd_limit=10_000), COST)
    assert (by_tasks.cap, by_tasks.decided_by) == (75, "tasks")
    by_fds = derive_cap(MachineLimits(available_mb=80_000, free_tasks=10_000, fd_limit=1024), COST)
    assert (by_fds.cap, by_fds.decided_by) == (128, "descriptors")


def test_unknown_task_limits_are_skipped_and_the_cap_is_at_least_one():
    assert derive_cap(MachineLimits(available_mb=800, free_tasks=None, fd_limit=10_000), COST).cap == 100
    assert derive_cap(MachineLimits(available_mb=1, free_tasks=0, fd_limit=0), COST).cap == 1


def test_the_costliest_runtime_among_the_functions_sets_the_cost(tmp_path):
    cfg = config_from_mapping(
        {
            "functions": [
                {"name": "a"},
                {"name": "b", "runtime": "nodejs20.x"},
                {"name": "c", "runtime_client": "awslambdaric"},
            ]
        },
        base_dir=str(tmp_path),
    )
    assert machine.cost_of(cfg.functions) == machine.COSTS["node"]
    assert machine.cost_of(cfg.functions[:1]) == machine.COSTS["builtin"]
