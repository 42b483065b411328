"""The emulator config's Lambda Managed Instances keys (docs/emulator.md), checked as AWS would:

functions:
  - name: probe-mi
    runtime: python3.13                   # python3.13+ or nodejs22.x+ (Java: not run here)
    per_environment_max_concurrency: 4    # PerExecutionEnvironmentMaxConcurrency, 1..1600
    min_execution_environments: 3         # FunctionScalingConfig, 0..15000 (default 3)
    max_execution_environments: 10       # (default: no bound)
    cache_scope: process                  # optional; must be the runtime's own (process, worker)
    environment: {AWS_LAMBDA_NODEJS_WORKER_COUNT: 2}   # Node.js worker threads (default 1)
"""

from __future__ import annotations

from typing import Any

from ..platform import ConfigError, FunctionSpec
from ..platform.managed import default_cache_scope, runtime_problem

MANAGED_KEYS = (
    "per_environment_max_concurrency",
    "min_execution_environments",
    "max_execution_environments",
    "cache_scope",
)
WORKER_COUNT_VAR = "AWS_LAMBDA_NODEJS_WORKER_COUNT"


def managed_settings(raw: dict, where: str, runtime: str, client: str, environment: dict) -> dict:
    """The function's Managed Instances settings (FunctionSpec's field names), or {} when it has none.
    ConfigError names the key."""
    given = {key: raw[key] for key in MANAGED_KEYS if raw.get(key) is not None}
    if not given:
        return {}
    if "per_environment_max_concurrency" not in given:
        key = next(iter(given))
        raise ConfigError(f"{where}.{key}: applies to Managed Instances only: set per_environment_max_concurrency too")
    problem = runtime_problem(runtime)
    if problem:
        raise ConfigError(f"{where}.runtime: {problem}")
    if client != "builtin":
        raise ConfigError(f"{where}.runtime_client: Managed Instances run here with the builtin client only")
    own = default_cache_scope(runtime)
    if given.get("cache_scope", own) != own:
        raise ConfigError(
            f"{where}.cache_scope: {runtime} runs on Managed Instances with one cache per {own} "
            f"(as AWS runs it), not per {given['cache_scope']!r}"
        )
    settings: dict[str, Any] = {**given, "runtime": runtime, "cache_scope": own}
    if runtime.startswith("nodejs"):
        settings["worker_count"] = worker_count(environment, f"{where}.environment.{WORKER_COUNT_VAR}")
    try:
        FunctionSpec("check", **settings)
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None
    return settings


def worker_count(environment: dict, where: str) -> int:
    """Node.js worker threads per environment: AWS_LAMBDA_NODEJS_WORKER_COUNT, else 1 (one per vCPU)."""
    text = environment.get(WORKER_COUNT_VAR)
    if text is None:
        return 1
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise ConfigError(f"{where}: expected a whole number of worker threads from 1 to 64, got {text!r}")
    return int(text)
