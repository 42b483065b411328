"""Lambda Managed Instances' options, for simulate and sweep (docs/model.md, "Managed Instances").

The function's (FunctionSpec) take the emulator config's key names in kebab case; the scaler's two are
model options (ModelConfig), given here and overriding `--model FILE` as the other model options do.
"""

from __future__ import annotations

import argparse

from ..platform import ModelConfig
from ..platform.distributions import duration_option as duration
from ..platform.managed import CACHE_SCOPES, MAX_ENV_CONCURRENCY, MAX_EXECUTION_ENVIRONMENTS

# (option, ModelConfig field, type), as options.MODEL_OPTIONS
MANAGED_MODEL_OPTIONS = (
    ("--managed-scale-interval", "managed_scale_interval_s", duration),
    ("--managed-target-utilisation", "managed_target_utilisation", float),
)
# option -> FunctionSpec field
FUNCTION_FIELDS = {
    "--env-concurrency": "per_environment_max_concurrency",
    "--min-execution-environments": "min_execution_environments",
    "--max-execution-environments": "max_execution_environments",
    "--cache-scope": "cache_scope",
    "--runtime": "runtime",
    "--worker-count": "worker_count",
}


def add_managed_options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options; returns their actions (a sweep may vary the numeric ones)."""
    d = ModelConfig()
    g = p.add_argument_group(
        "Lambda Managed Instances",
        "--env-concurrency K runs the function on Managed Instances: K calls at once per environment, "
        "environments scaled on utilisation, no cold starts (docs/model.md)",
    )
    return [
        g.add_argument(
            "--env-concurrency",
            type=int,
            metavar="K",
            help=f"PerExecutionEnvironmentMaxConcurrency, 1..{MAX_ENV_CONCURRENCY} (default none: on-demand Lambda)",
        ),
        g.add_argument(
            "--min-execution-environments",
            type=int,
            metavar="N",
            help=f"FunctionScalingConfig's minimum, 0..{MAX_EXECUTION_ENVIRONMENTS} (default 3, AWS's)",
        ),
        g.add_argument(
            "--max-execution-environments",
            type=int,
            metavar="N",
            help=f"FunctionScalingConfig's maximum, 0..{MAX_EXECUTION_ENVIRONMENTS} (default none: no bound)",
        ),
        g.add_argument(
            "--cache-scope",
            choices=CACHE_SCOPES,
            help="where a call's cache lives: one per environment, per worker thread or per process "
            "(default the runtime's: process for Python, worker for Node.js, environment for Java)",
        ),
        g.add_argument(
            "--runtime",
            metavar="NAME",
            help="the function's runtime as Lambda names it: python3.13+, nodejs22.x+ or java21+ "
            "(default none: the Python probe)",
        ),
        g.add_argument(
            "--worker-count",
            type=int,
            metavar="W",
            help="Node.js worker threads per environment, AWS_LAMBDA_NODEJS_WORKER_COUNT (default 1: one per vCPU)",
        ),
        g.add_argument(
            "--managed-scale-interval",
            type=duration,
            metavar="DURATION",
            help=f"how often the scaler acts (default {d.managed_scale_interval_s:g})",
        ),
        g.add_argument(
            "--managed-target-utilisation",
            type=float,
            metavar="U",
            help="share of the environments' slots the scaler aims to fill, 0..1 "
            f"(default {d.managed_target_utilisation:g})",
        ),
    ]
