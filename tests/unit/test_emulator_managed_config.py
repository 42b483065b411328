"""The emulator config's Managed Instances keys: AWS's runtimes and ranges, each refusal one precise line."""

from __future__ import annotations

import pytest

from lambda_affinity.emulator.config import config_from_mapping, probe_folder
from lambda_affinity.platform import ConfigError


def load(tmp_path, **function):
    return config_from_mapping({"functions": [{"name": "mi", **function}]}, base_dir=str(tmp_path))


def test_a_managed_function_maps_onto_its_spec(tmp_path):
    cfg = load(
        tmp_path,
        runtime="nodejs22.x",
        code=probe_folder(node=True),
        handler="probe.handler",
        per_environment_max_concurrency=16,
        max_execution_environments=4,
        environment={"AWS_LAMBDA_NODEJS_WORKER_COUNT": "2"},
    )
    spec = cfg.functions[0].spec()
    assert (spec.per_environment_max_concurrency, spec.max_execution_environments) == (16, 4)
    assert (spec.runtime, spec.cache_scope, spec.worker_count) == ("nodejs22.x", "worker", 2)
    python = load(tmp_path, runtime="python3.13", per_environment_max_concurrency=4).functions[0].spec()
    assert (python.cache_scope, python.worker_count) == ("process", None)
    assert load(tmp_path).functions[0].spec().per_environment_max_concurrency is None  # on-demand, as before


@pytest.mark.parametrize(
    "function, message",
    [
        (
            {"runtime": "python3.12", "per_environment_max_concurrency": 4},
            "functions[0].runtime: python3.12 does not run on Lambda Managed Instances "
            "(AWS offers python3.13 or later, nodejs22.x or later, java21 or later)",
        ),
        (
            {"runtime": "nodejs20.x", "per_environment_max_concurrency": 4},
            "functions[0].runtime: nodejs20.x does not run on Lambda Managed Instances",
        ),
        (
            {"runtime": "python3.13", "min_execution_environments": 2},
            "functions[0].min_execution_environments: applies to Managed Instances only: "
            "set per_environment_max_concurrency too",
        ),
        (
            {"runtime": "python3.13", "per_environment_max_concurrency": 1601},
            "functions[0].per_environment_max_concurrency: must be <= 1600, got 1601",
        ),
        (
            {"runtime": "python3.13", "per_environment_max_concurrency": 4, "cache_scope": "environment"},
            "functions[0].cache_scope: python3.13 runs on Managed Instances with one cache per process "
            "(as AWS runs it), not per 'environment'",
        ),
        (
            {
                "runtime": "python3.13",
                "per_environment_max_concurrency": 4,
                "min_execution_environments": 9,
                "max_execution_environments": 2,
            },
            "functions[0].min_execution_environments: 9 is above max_execution_environments 2",
        ),
        (
            {
                "runtime": "nodejs22.x",
                "per_environment_max_concurrency": 4,
                "environment": {"AWS_LAMBDA_NODEJS_WORKER_COUNT": "many"},
            },
            "functions[0].environment.AWS_LAMBDA_NODEJS_WORKER_COUNT: expected a whole number of worker threads "
            "from 1 to 64, got 'many'",
        ),
    ],
)
def test_refusals_name_the_key(tmp_path, function, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, **function)
    assert str(info.value).startswith(message)


def test_the_machine_cap_counts_a_managed_environment_s_processes(tmp_path):
    from lambda_affinity.emulator.machine import COSTS, cost_of

    python = load(tmp_path, runtime="python3.13", per_environment_max_concurrency=8).functions
    assert cost_of(python).memory_mb == 8 * COSTS["builtin"].memory_mb
    assert cost_of(python).tasks == 8 * COSTS["builtin"].tasks
    on_demand = load(tmp_path).functions
    assert cost_of(on_demand) == COSTS["builtin"]
